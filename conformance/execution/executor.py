"""The executor interface: where a run's worker processes live.

The runner (runner.py) splits the work into tasks and drives each from one of its threads; for a
task it asks its executor for a worker (`start`), sends it the task and reads its messages
(protocol.py).  A worker is a `procs.WorkerProcess` or an object with the same methods (`send`,
`message`, `alive`, `kill`, and `tmp`, its temporary folder or None).  `LocalExecutor` starts
worker processes on this machine; `ray_executor.RayExecutor` starts the same processes under
Ray actors on a cluster's nodes.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

from conformance.execution.adapter_refs import AdapterRef, worker_argv, worker_env
from conformance.execution.outdir import STALE_PREFIX
from conformance.execution.procs import WorkerProcess

WORKER_ARGV = (sys.executable, "-m", "conformance.execution.worker", "--serve")


class Executor:
    """What the runner and `conformance run` need of an executor."""

    cases_per_task: int | None = None  # at most this many cases per task (None: as many as balance allows)
    lost: str | None = None  # why what the workers run on went away mid-run (a Ray cluster), else None

    def connect(self) -> None:
        """Start or join what the workers run on; called once the output folder is known usable."""

    @property
    def connected(self) -> bool:
        return True

    @property
    def cpus(self) -> int:
        """How many tasks can run at once (the default --jobs)."""
        raise NotImplementedError

    def start(self, adapter: AdapterRef, log: Path, stop: threading.Event):
        """A new worker for `adapter`'s tasks, its stderr into `log`; `stop` set: the run is stopping."""
        raise NotImplementedError

    def watch(self, on_lost) -> None:
        """Call `on_lost()` (from any thread) if what the workers run on goes away during the run,
        with `lost` saying why: the run then stops as on a signal, keeping what finished."""

    def where(self) -> str:
        """Where the run's workers run, for its first progress line ("" for this machine)."""
        return ""

    def summary(self) -> str:
        """What the executor used, for the run's last progress line ("" for nothing to add)."""
        return ""

    def close(self) -> None:
        """Release what `connect` started; the runner has killed its workers."""


class LocalExecutor(Executor):
    """Worker processes on this machine, each a session of its own (procs.py)."""

    @property
    def cpus(self) -> int:
        return os.cpu_count() or 1

    def start(self, adapter: AdapterRef, log: Path, stop: threading.Event) -> WorkerProcess:
        # The worker's own temporary files (save/load checks) live in a folder of the output
        # folder's, which goes away with the worker, even one killed in the middle of a case.
        tmp = tempfile.mkdtemp(dir=log.parent, prefix=STALE_PREFIX)
        worker = WorkerProcess(worker_argv(adapter, "--serve"), worker_env(adapter) | {"TMPDIR": tmp}, log, stop)
        worker.tmp = tmp
        return worker
