"""Runs cases through adapters, each in its own worker process, and writes results.jsonl.

Frameworks never share a process (Keras fixes its backend at import; TensorFlow,
torch and JAX fight over thread pools).  A worker that crashes or hangs costs
the case in flight, which is recorded as an `error` saying so; a new worker
takes the remaining cases.  Every record is appended and flushed as soon as its
case finishes, so an interrupted run keeps everything it finished.
"""
from __future__ import annotations

import json
import math
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from conformance.adapter import adapter_name, import_adapter
from conformance.cases.case import parse_case
from conformance.evaluate import checks_for, record
from conformance.reports.results import write_jsonl

# Workers run one thread each: --jobs decides parallelism, and thread pools of
# several frameworks on two cores only fight.  Reductions of the sizes in the
# suites are single-threaded in every framework anyway.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",
}
LOAD_TIMEOUT_S = 300.0  # importing a framework cold can take tens of seconds on a busy machine
DEFAULT_CASE_TIMEOUT_S = 120.0  # one case, compilation included


@dataclass(frozen=True)
class AdapterRef:
    ref: str  # as the user gave it: a built-in name or package.module:ClassName
    name: str
    env: dict = field(default_factory=dict)


def worker_env(adapter: AdapterRef) -> dict:
    """The environment of an adapter's worker process."""
    env = {**os.environ, **WORKER_ENV, **adapter.env}
    # Whatever the parent could import (a user's adapter module), the worker can.
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
    return env


def resolve(refs: list[str]) -> list[AdapterRef]:
    """Import each adapter's class (not its framework) to learn its name and env."""
    out, seen = [], set()
    for ref in refs:
        cls = import_adapter(ref)
        name = adapter_name(cls, ref)
        if name not in seen:
            seen.add(name)
            out.append(AdapterRef(ref, name, dict(getattr(cls, "env", {}) or {})))
    return out


class ResultsWriter:
    """Appends JSON lines under a lock and flushes each batch."""

    def __init__(self, path: Path):
        self._file = open(path, "w")
        self._lock = threading.Lock()

    def write(self, records: list[dict]) -> None:
        with self._lock:
            for r in records:
                self._file.write(json.dumps(r) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class Progress:
    """A bar on a terminal; one quiet line per finished worker task elsewhere (CI logs)."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.tty = stream.isatty()
        self._lock = threading.Lock()
        self.start = time.monotonic()

    def advance(self, k: int = 1) -> None:
        with self._lock:
            self.done += k
            if self.tty:
                frac = self.done / max(self.total, 1)
                bar = "#" * int(30 * frac)
                self.stream.write(f"\r[{bar:<30}] {self.done}/{self.total} cases  {time.monotonic() - self.start:5.1f}s")
                self.stream.flush()

    def task_done(self, line: str) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r" + " " * 70 + "\r")
            self.stream.write(line + "\n")
            self.stream.flush()


@dataclass
class _Task:
    adapter: AdapterRef
    case_ids: list[str]
    part: int


def _reader(stream, q: queue.Queue) -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(t.strip() for t in text[-lines:])[:400]


def _kill(proc: subprocess.Popen) -> None:
    """Kill the worker's whole process group: frameworks may have started helpers."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Runner:
    def __init__(self, out_dir: Path, jobs: int, case_timeout: float, progress: Progress | None = None, xfail=None):
        self.out_dir = out_dir
        self.jobs = max(1, jobs)
        self.case_timeout = case_timeout
        self.progress = progress
        self.xfail = xfail
        self.logs = out_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.writer = ResultsWriter(out_dir / "results.jsonl")
        self._announced: set[str] = set()
        self._lock = threading.Lock()

    # -- scheduling ----------------------------------------------------------------
    def run(self, adapters: list[AdapterRef], cases: list) -> None:
        # With fewer adapters than jobs, split each adapter's cases so every job has
        # work; whole compile-key groups go to one part, so compiled functions are reused.
        parts = max(1, math.ceil(self.jobs / max(len(adapters), 1)))
        groups: dict[tuple, list[str]] = {}
        for c in cases:
            groups.setdefault(c.compile_key, []).append(c.id)
        buckets: list[list[str]] = [[] for _ in range(min(parts, max(len(groups), 1)))]
        for ids in sorted(groups.values(), key=len, reverse=True):
            min(buckets, key=len).extend(ids)
        tasks = [_Task(a, ids, k) for a in adapters for k, ids in enumerate(buckets)]
        try:
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                for f in [pool.submit(self._run_task, t) for t in tasks]:
                    f.result()
        finally:
            self.writer.close()

    # -- one task: a worker, restarted after each crash or hang ------------------------
    def _spawn(self, task: _Task, cases_file: str, log: Path) -> subprocess.Popen:
        with open(log, "ab") as stderr:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "conformance.worker", task.adapter.ref, cases_file],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=worker_env(task.adapter),
                text=True,
                start_new_session=True,
            )

    def _error_records(self, task: _Task, case_id: str, message: str) -> list[dict]:
        case = parse_case(case_id)
        return [record(case, task.adapter.name, check, "error", message) for check in checks_for(case)]

    def _announce(self, task: _Task, ready: dict) -> None:
        with self._lock:
            if task.adapter.name in self._announced:
                return
            self._announced.add(task.adapter.name)
        self.writer.write([{
            "record": "adapter",
            "adapter": task.adapter.name,
            "ref": task.adapter.ref,
            "env": task.adapter.env,
            "versions": ready.get("versions", {}),
            "claims": ready.get("claims", []),
            "defaults": ready.get("defaults", {}),
            "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
        }])

    def _run_task(self, task: _Task) -> None:
        remaining = list(task.case_ids)
        log = self.logs / f"{task.adapter.name}.{task.part}.log"
        counts: dict[str, int] = {}
        start = time.monotonic()
        restarts = 0

        def emit(records: list[dict]) -> None:
            if self.xfail:
                records = self.xfail.apply(records)
            self.writer.write(records)
            for r in records:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
            if self.progress:
                self.progress.advance()

        with tempfile.TemporaryDirectory() as tmp:
            while True:
                cases_file = os.path.join(tmp, "cases.txt")
                Path(cases_file).write_text("\n".join(remaining) + "\n")
                proc = self._spawn(task, cases_file, log)
                lines: queue.Queue = queue.Queue()
                threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
                outcome = self._drive(task, proc, lines, remaining, emit, log)
                if outcome in ("finished", "load_failed") or not remaining:
                    break
                restarts += 1
        if self.progress:
            summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
            extra = f", {restarts} worker restart(s)" if restarts else ""
            self.progress.task_done(
                f"{task.adapter.name}[{task.part}]: {len(task.case_ids)} cases ({summary}) in "
                f"{time.monotonic() - start:.1f}s{extra}; log {log}"
            )

    def _drive(self, task, proc, lines, remaining, emit, log) -> str:
        """Feed one worker until it finishes, fails to load, crashes or hangs."""
        ready = False
        try:
            while True:
                timeout = self.case_timeout if ready else LOAD_TIMEOUT_S
                try:
                    line = lines.get(timeout=timeout)
                except queue.Empty:
                    _kill(proc)
                    if not ready:
                        self._fail_all(task, remaining, emit, f"worker did not load within {timeout:.0f}s", log)
                        return "load_failed"
                    case_id = remaining.pop(0)
                    emit(self._error_records(task, case_id, f"case timed out after {timeout:.0f}s; worker killed and restarted"))
                    return "hung"
                if line is None:  # EOF: the worker exited
                    code = proc.wait()
                    if not remaining:
                        return "finished"
                    if not ready:
                        self._fail_all(task, remaining, emit, f"worker died while loading ({_describe_exit(code)})", log)
                        return "load_failed"
                    case_id = remaining.pop(0)
                    emit(self._error_records(
                        task, case_id,
                        f"worker crashed on this case ({_describe_exit(code)}); last log lines: {_tail(log)}",
                    ))
                    return "crashed"
                message = json.loads(line)
                event = message.get("event")
                if event == "ready":
                    ready = True
                    self._announce(task, message)
                elif event == "load_error":
                    self._fail_all(task, remaining, emit, f"adapter failed to load: {message.get('message')}", log)
                    return "load_failed"
                elif event == "done":
                    if remaining and remaining[0] == message["case"]:
                        remaining.pop(0)
                    emit(message["records"])
        finally:
            if proc.poll() is None:
                _kill(proc)

    def _fail_all(self, task, remaining, emit, message, log) -> None:
        tail = _tail(log)
        full = f"{message}; log {log}" + (f": {tail}" if tail else "")
        while remaining:
            emit(self._error_records(task, remaining.pop(0), full))


def probe(refs: list[str], timeout: float = LOAD_TIMEOUT_S) -> dict[str, tuple[bool, str]]:
    """Load each adapter in its own worker, with no cases: importable? which versions?"""
    import concurrent.futures

    def one(ref: str) -> tuple[bool, str]:
        try:
            (adapter,) = resolve([ref])
        except Exception as exc:
            return False, str(exc)
        with tempfile.TemporaryDirectory() as tmp:
            cases_file = os.path.join(tmp, "cases.txt")
            Path(cases_file).write_text("")
            env = worker_env(adapter)
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "conformance.worker", ref, cases_file],
                    capture_output=True, text=True, env=env, timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                return False, f"did not load within {timeout:.0f}s"
        for line in done.stdout.splitlines():
            message = json.loads(line)
            if message.get("event") == "ready":
                return True, ", ".join(f"{k} {v}" for k, v in sorted(message["versions"].items()))
            if message.get("event") == "load_error":
                return False, message["message"]
        return False, f"worker {_describe_exit(done.returncode)}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(refs, pool.map(one, refs)))


def fuzz_adapters(adapters: list[AdapterRef], seed: int, budget: int, seconds: float | None, out: Path) -> dict:
    """Fuzz each adapter in its own process; write OUT/fuzz.toml (replayable) and results.jsonl.

    With `seconds`, fuzz in rounds of `budget` examples (seeds seed, seed+1, ...)
    until the time is spent or a failure is found.
    """
    found, lines, ids = {}, [], []
    for a in adapters:
        env = worker_env(a)
        start, round_, tried, result = time.monotonic(), 0, 0, None
        while True:
            p = subprocess.run([sys.executable, "-m", "conformance.fuzz", a.ref, str(seed + round_), str(budget)],
                               capture_output=True, text=True, env=env)
            if p.returncode:
                tail = " | ".join(p.stderr.strip().splitlines()[-2:])
                found[a.name] = (tried, None, f"fuzz worker {_describe_exit(p.returncode)}: {tail}")
                break
            result = json.loads(p.stdout.strip().splitlines()[-1])
            tried += result["tried"]
            round_ += 1
            if result["case"] or seconds is None or time.monotonic() - start >= seconds:
                break
        if result and result["case"]:
            bad = [r for r in result["records"] if r["status"] in ("fail", "error")]
            found[a.name] = (tried, result["case"], bad[0]["message"])
            ids.append(result["case"])
            lines += result["records"]
        elif a.name not in found:
            found[a.name] = (tried, None, "")
    write_jsonl(out / "results.jsonl", lines)
    (out / "fuzz.toml").write_text(
        f"# minimal failing cases found by `conformance fuzz --seed {seed}`\n"
        f"name = \"fuzz-seed-{seed}\"\ncases = [{', '.join(json.dumps(i) for i in ids)}]\n"
    )
    return found
