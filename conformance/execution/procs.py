"""Worker processes, and making sure nothing a run starts outlives it (Linux: /proc, prctl).

Three mechanisms, each covering what the others cannot:
- a worker runs in its own session, so `kill_tree` can stop it with everything
  it started (its process group, and every descendant found in /proc, including
  ones an adapter moved to a new session);
- the CLI and each worker are child subreapers: a process an adapter started
  whose parent died is re-parented to them, not to init, so it stays findable
  as a descendant;
- a worker watches a pipe from its parent (`watch_parent`): when the parent
  dies, however it dies (SIGKILL included), the pipe reaches EOF and the worker
  kills its own descendants and exits.
"""
from __future__ import annotations

import ctypes
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
EXIT_PARENT_GONE = 70  # a worker that outlived its parent stops with this code
# After a worker exits, how long its last lines may take to arrive (a forked child
# of the adapter may still hold the pipe open, so EOF cannot be waited for).
DRAIN_S = 1.0
POLL_S = 0.2
PAUSE_S = 1.0  # a poll that returns this much late means this process was not running


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process instead of init (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _parents() -> dict[int, int]:
    """{pid: parent pid} of every process visible in /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        out[int(entry)] = int(fields[1])
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid` in the process tree, parents before children."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_descendants(pid: int) -> None:
    """Freeze the tree below `pid` (so nothing forks while we look), then kill it."""
    frozen: set[int] = set()
    for _ in range(50):
        new = [p for p in descendants(pid) if p not in frozen]
        if not new:
            break
        for p in new:
            _signal(p, signal.SIGSTOP)
        frozen.update(new)
    for p in frozen:
        _signal(p, signal.SIGKILL)


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill a worker, its process group and every descendant, and reap the worker."""
    kill_descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _signal(proc.pid, signal.SIGKILL)
    proc.wait()


def reap_strays(keep: set[int]) -> None:
    """Kill and reap this process's children that are not in `keep`, with what they started.

    Processes an adapter started end up here (we are a subreaper) when the worker
    that started them dies first."""
    me = os.getpid()
    for pid, parent in _parents().items():
        if parent == me and pid not in keep:
            kill_descendants(pid)
            _signal(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def watch_parent(fd: int = 0, on_line=None) -> None:
    """In a worker: when the parent's end of stdin closes, kill what we started and exit.
    Each complete line the parent writes meanwhile goes to `on_line` (a shared worker's tasks).

    Reads the raw descriptor: a thread blocked in sys.stdin's buffered reader holds
    its lock, and interpreter shutdown then aborts (SIGABRT) on it."""

    def watch():
        pending = b""
        while chunk := os.read(fd, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines if on_line else ():
                on_line(line.decode())
        kill_descendants(os.getpid())
        os._exit(EXIT_PARENT_GONE)

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerExited(Exception):
    """The worker process ended (`code` is its exit status).  `exact`: every message it sent
    before it ended has arrived, so its case in flight is the first one without a "done"."""

    def __init__(self, code: int | None, description: str | None = None, exact: bool = True):
        super().__init__(description or describe_exit(code))
        self.code = code
        self.exact = exact


class WorkerSilent(Exception):
    """No message within the time allowed."""


class WorkerGarbled(Exception):
    """A protocol line that is not a JSON object."""


class WorkerStopped(Exception):
    """The run is being stopped (a signal, or a fatal error elsewhere)."""


class WorkerProcess:
    """One worker: spawned in its own session, reading JSON lines from its private stdout.

    `stdin` is a pipe the worker only watches (see `watch_parent`); `stderr`
    goes to the log file."""

    tmp: str | None = None  # the worker's temporary folder, which the runner removes after it

    def __init__(self, argv: list[str], env: dict, log: Path, stop: threading.Event):
        self.stop = stop
        with open(log, "ab") as stderr:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                env=env, start_new_session=True,
            )
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def message(self, timeout: float) -> dict:
        """The next message; raises WorkerExited, WorkerSilent, WorkerGarbled or WorkerStopped."""
        deadline = time.monotonic() + timeout
        exited_at = None
        last = time.monotonic()
        while True:
            if self.stop.is_set():
                raise WorkerStopped()
            try:
                line = self._lines.get(timeout=POLL_S)
            except queue.Empty:
                now = time.monotonic()
                if now - last > POLL_S + PAUSE_S:  # we were stopped (SIGSTOP, a suspended laptop):
                    deadline += now - last - POLL_S  # that time is not the case's
                last = now
                if self.proc.poll() is not None:
                    exited_at = exited_at or now
                    if now - exited_at >= DRAIN_S:  # exited; a child of it may hold the pipe
                        raise WorkerExited(self.proc.returncode) from None
                elif now >= deadline:
                    raise WorkerSilent() from None
                continue
            if line is None:
                self._lines.put(None)  # EOF stays EOF
                raise WorkerExited(self.proc.wait())
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if not isinstance(message, dict):
                raise WorkerGarbled(line[:200].decode(errors="replace").strip())
            return message

    def send(self, message: dict) -> None:
        """One line to the worker's stdin; a worker that is gone shows as such in `message()`."""
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        kill_tree(self.proc)
        if self.proc.stdin:
            self.proc.stdin.close()
