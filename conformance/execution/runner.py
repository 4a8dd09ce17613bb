"""Runs cases through adapters in worker processes, and writes results.jsonl.

Frameworks never share a process (Keras fixes its backend at import; TensorFlow,
torch and JAX fight over thread pools); adapters of one framework may: those of
one worker group with the same environment are served by one worker, one task
after another, so torch or JAX is imported once (`--isolate-adapters` gives each
adapter its own).  A worker that crashes, hangs or garbles its protocol costs the
case in flight, which is recorded as an `error` saying so; a new worker takes the
remaining cases.  Every record is appended and flushed as soon as its case
finishes.  `stop()` (a signal, a write error) kills every worker at once and lets
the run end with what it finished.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from conformance.execution import protocol, schedule
from conformance.execution.executor import Executor, LocalExecutor
from conformance.execution.adapter_refs import LOAD_TIMEOUT_S, AdapterRef, resolve, share_key, worker_env
from conformance.cases.case import parse_case
from conformance.errors import UsageError
from conformance.checks.pipeline import error_records
from conformance.execution.procs import WorkerExited, WorkerGarbled, WorkerProcess, WorkerSilent, WorkerStopped, kill_tree

DEFAULT_CASE_TIMEOUT_S = 120.0  # one case, compilation included


class ResultsWriter:
    """Appends JSON lines under a lock and flushes each batch.  A write error (a full disk)
    is kept in `error` and stops the run through `on_error`: records are never half kept."""

    def __init__(self, path: Path, on_error, append: bool = False):
        self._file = open(path, "a" if append else "w")
        self._lock = threading.Lock()
        self._on_error = on_error
        self.error: OSError | None = None
        self.results_written = 0

    def write(self, records: list[dict]) -> None:
        with self._lock:
            if self.error:
                return
            try:
                self._file.write("".join(json.dumps(r) + "\n" for r in records))
                self._file.flush()
                self.results_written += sum(r.get("record") == "result" for r in records)
            except OSError as exc:
                self.error = exc
        if self.error:
            self._on_error()

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            self.error = self.error or exc


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


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(t.strip() for t in text[-lines:])[:400]


def split_tasks(adapters: list[AdapterRef], cases_by_adapter: dict[str, list], jobs: int,
                max_cases: int | None = None) -> list[_Task]:
    """With fewer adapters than jobs, split each adapter's cases so every job has work, and into
    parts of at most about `max_cases`; whole compile-key groups go to one part, so compiled
    functions are reused."""
    tasks = []
    for a in adapters:
        parts = max(1, math.ceil(jobs / max(len(adapters), 1)),
                    math.ceil(len(cases_by_adapter[a.name]) / max_cases) if max_cases else 1)
        groups: dict[tuple, list[str]] = {}
        for c in cases_by_adapter[a.name]:
            groups.setdefault(getattr(c, "compile_key", c.id), []).append(c.id)
        buckets: list[list[str]] = [[] for _ in range(min(parts, max(len(groups), 1)))]
        for ids in sorted(groups.values(), key=len, reverse=True):
            min(buckets, key=len).extend(ids)
        tasks += [_Task(a, ids, k) for k, ids in enumerate(buckets) if ids]
    return tasks


def _dispose(worker: WorkerProcess) -> None:
    """Kill a worker with what it started, and remove its temporary folder."""
    worker.kill()
    if worker.tmp:
        shutil.rmtree(worker.tmp, ignore_errors=True)


class Runner:
    def __init__(self, out_dir: Path, jobs: int, case_timeout: float, progress: Progress | None = None, xfail=None,
                 *, results_file: str = "results.jsonl", append: bool = False, previous_versions: dict | None = None,
                 share: bool = True, history: dict[str, float] | None = None, executor: Executor | None = None,
                 share_with_builtins: bool = False):
        self.out_dir = out_dir
        self.jobs = max(1, jobs)
        self.case_timeout = case_timeout
        self.progress = progress
        self.xfail = xfail
        self.logs = out_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.stopping = threading.Event()
        self.writer = ResultsWriter(out_dir / results_file, self.stop, append)
        # A resumed run's adapter records: versions must match, and are not written twice.
        self.previous_versions = previous_versions or {}
        self.version_mismatch: str | None = None
        self._announced: set[str] = set(self.previous_versions)
        self._lock = threading.Lock()
        self._workers: set[WorkerProcess] = set()
        # Adapters of one worker group share a worker process (adapter_refs.share_key); each thread
        # of the pool holds the worker of its last task until a task of another group comes.
        self.share = share
        self.share_with_builtins = share_with_builtins  # --share-with-builtins: built-ins and user adapters too
        self.executor = executor or LocalExecutor()  # where the workers run (executor.py)
        self._local = threading.local()
        self.worker_starts = 0
        self.history = history or {}  # seconds per case of each adapter in a previous run (schedule.py)
        self.seconds: dict[str, float] = {}  # this run's, per adapter: its tasks' wall time, summed
        self.cases_run: dict[str, int] = {}

    @property
    def wrote_results(self) -> bool:
        return self.writer.results_written > 0

    def stop(self) -> None:
        """Stop the run now: no new worker starts, every live one is killed with what it started."""
        self.stopping.set()
        with self._lock:
            workers = list(self._workers)
        for w in workers:
            w.kill()

    # -- scheduling ----------------------------------------------------------------
    def run(self, adapters: list[AdapterRef], cases: list, done: frozenset[tuple[str, str]] = frozenset()) -> None:
        """Run every (adapter, case) pair not in `done`."""
        todo = {a.name: [c for c in cases if (a.name, c.id) not in done] for a in adapters}
        self.executor.watch(self.stop)  # a Ray cluster lost mid-run stops the run like a signal
        tasks = split_tasks(adapters, todo, self.jobs, self.executor.cases_per_task)
        tasks = schedule.order(tasks, self.history, self._share_key if self.share else lambda a: a.name)
        try:
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                for f in [pool.submit(self._run_task, t) for t in tasks]:
                    f.result()
        finally:
            with self._lock:  # the workers the pool's threads still hold, idle
                workers, self._workers = list(self._workers), set()
            for w in workers:
                _dispose(w)
            self.writer.close()

    # -- one task: a worker, restarted after each crash or hang ------------------------
    def _error_records(self, task: _Task, case_id: str, message: str) -> list[dict]:
        return error_records(task.adapter.name, parse_case(case_id), message)

    def _announce(self, task: _Task, ready: dict) -> None:
        """The adapter's record, once per run; on --resume, its versions must be the run's."""
        name, versions = task.adapter.name, ready.get("versions", {})
        with self._lock:
            previous = self.previous_versions.get(name)
            if previous is not None and versions != previous:
                self.version_mismatch = f"{name} now loads {versions}, the run being resumed had {previous}"
            first = not self.version_mismatch and name not in self._announced
            self._announced.add(name)
        if self.version_mismatch:
            self.stop()
        elif first:  # outside the lock: a write error stops the run, which takes the lock
            self.writer.write([{
                "record": "adapter", "adapter": name, "ref": task.adapter.ref, "import_root": task.adapter.import_root,
                "env": task.adapter.env,
                "versions": versions, "claims": ready.get("claims", []), "defaults": ready.get("defaults", {}),
                "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
                "device": ready.get("device", "cpu"), "capabilities": ready.get("capabilities", []),
                **({"state_changes": ready["state_changes"]} if ready.get("state_changes") else {}),
            }])

    def _start(self, task: _Task, log: Path, remaining: list[str], careful: bool):
        """A worker given the task's remaining cases (None: stopping).  `careful`: after an exit that
        may have lost messages, a worker that can lose none (the Ray executor's is otherwise ahead)."""
        worker = self._worker_for(task, log)
        if worker is not None:
            worker.send(protocol.task(task.adapter.ref, remaining, str(log), careful))
        return worker

    def _worker_for(self, task: _Task, log: Path) -> WorkerProcess | None:
        """This thread's worker if it serves the task's group, else a new one (None: stopping)."""
        key = self._share_key(task.adapter) if self.share else ("alone", task.adapter.name, task.part)
        held = getattr(self._local, "held", None)
        # A worker whose process state an adapter changed (protocol.STATE_CHANGED) serves no other task.
        if held and held[0] == key and held[1].alive() and not getattr(held[1], "state_changed", False):
            return held[1]
        self._release()
        with self._lock:
            if self.stopping.is_set():
                return None
            worker = self.executor.start(task.adapter, log, self.stopping)
            self._workers.add(worker)
            self.worker_starts += 1
        self._local.held = (key, worker)
        return worker

    def _share_key(self, adapter: AdapterRef) -> tuple:
        return share_key(adapter, self.share_with_builtins)

    def _release(self) -> None:
        """Kill this thread's worker, if it has one, and remove its temporary folder."""
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held:
            with self._lock:
                self._workers.discard(held[1])
            _dispose(held[1])

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

        outcome = None
        try:
            while remaining and not self.stopping.is_set():
                worker = self._start(task, log, remaining, careful=outcome == "unsure")
                if worker is None:
                    break
                outcome = self._drive(task, worker, remaining, emit, log)
                if outcome in ("finished", "load_failed", "stopped"):
                    break
                self._release()  # it crashed or hung: a new worker takes the remaining cases
                restarts += 1
        finally:
            # Only a worker that finished its task cleanly serves the next one.
            if outcome != "finished" or not self.share or self.stopping.is_set():
                self._release()
        if not self.stopping.is_set():
            with self._lock:
                name = task.adapter.name
                self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - start
                self.cases_run[name] = self.cases_run.get(name, 0) + len(task.case_ids)
        if self.progress and not self.stopping.is_set():
            summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
            extra = f", {restarts} worker restart(s)" if restarts else ""
            self.progress.task_done(
                f"{task.adapter.name}[{task.part}]: {len(task.case_ids)} cases ({summary}) in "
                f"{time.monotonic() - start:.1f}s{extra}; log {log}"
            )

    def _drive(self, task, worker: WorkerProcess, remaining, emit, log) -> str:
        """Feed one worker until it finishes, fails to load, crashes, hangs or is stopped."""
        ready = False
        while True:
            timeout = self.case_timeout if ready else LOAD_TIMEOUT_S
            try:
                message = worker.message(timeout)
            except WorkerStopped:
                return "stopped"
            except WorkerSilent:
                return self._lose(task, ready, remaining, emit, log, "hung", f"worker did not load within {timeout:.0f}s",
                                  f"case timed out after {timeout:g}s; worker killed and restarted")
            except (WorkerExited, WorkerGarbled) as exc:
                if self.stopping.is_set():
                    return "stopped"
                if not remaining:
                    return "finished"
                if not getattr(exc, "exact", True):
                    return "unsure"  # which case it died on is unknown: a careful worker runs them again
                what = (f"wrote a line that is not a protocol message ({exc})" if isinstance(exc, WorkerGarbled)
                        else f"crashed ({exc})")
                return self._lose(task, ready, remaining, emit, log, "crashed", f"worker {what} while loading",
                                  f"worker {what} on this case; last log lines: {_tail(log)}")
            event = message.get("event")
            if event == protocol.READY:
                ready = True
                self._announce(task, message)
            elif event == protocol.LOAD_ERROR:
                self._fail_all(task, remaining, emit, f"adapter failed to load: {message.get('message')}", log)
                return "load_failed"
            elif event == protocol.DONE and remaining and remaining[0] == message.get("case"):
                remaining.pop(0)
                emit(message["records"])
            elif event == protocol.STATE_CHANGED:
                worker.state_changed = True  # this task's adapter changed the process: the next gets a new worker
                self._note_state_change(task, message)
            elif event == protocol.END:
                return "finished"

    def _note_state_change(self, task: _Task, message: dict) -> None:
        """One line saying what the adapter changed (the records and reports say it too)."""
        from conformance.execution.state import describe

        changes = message.get("changes") or []
        if self.progress and isinstance(changes, list):
            what = "; ".join(describe(c) + (f" (case {c['case']})" if c.get("case") else " (load)")
                             for c in changes[:5] if isinstance(c, dict))
            more = f"; {len(changes) - 5} more" if len(changes) > 5 else ""
            self.progress.task_done(f"{task.adapter.name}[{task.part}]: changed the worker's process state: {what}{more}; "
                                    "the worker is restarted for the next adapter")

    def _lose(self, task, ready: bool, remaining, emit, log, outcome: str, loading: str, on_case: str) -> str:
        """The worker is gone: before it was ready every remaining case errors, after, the case in flight."""
        if not ready:
            self._fail_all(task, remaining, emit, loading, log)
            return "load_failed"
        emit(self._error_records(task, remaining.pop(0), on_case))
        return outcome

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
        except UsageError as exc:
            return False, str(exc)
        with tempfile.TemporaryDirectory() as tmp:
            cases_file = os.path.join(tmp, "cases.txt")
            Path(cases_file).write_text("")
            worker = WorkerProcess([sys.executable, "-m", "conformance.execution.worker", ref, cases_file],
                                   worker_env(adapter), Path(tmp) / "log", threading.Event())
            try:
                message = worker.message(timeout)
            except WorkerSilent:
                return False, f"did not load within {timeout:.0f}s"
            except (WorkerExited, WorkerGarbled) as exc:
                return False, f"worker {exc}"
            finally:
                kill_tree(worker.proc)
        if message.get("event") == protocol.READY:
            return True, ", ".join(f"{k} {v}" for k, v in sorted(message["versions"].items()))
        return False, str(message.get("message"))

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(refs, pool.map(one, refs)))
