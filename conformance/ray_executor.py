"""`conformance run --executor ray [--ray-address ADDR]`: the runner's tasks as Ray tasks.

The same cases, adapters, records and fault handling as the local runner: the runner still
splits the work into tasks (each a chunk of one adapter's cases) and drives each with one
thread, but a task's worker is a Ray generator task (`serve`) instead of a local process.  It
yields the worker protocol's messages ("ready", one "done" per case, "end"), which stream back
to the driver and are appended to results.jsonl as they arrive.  A Ray task that dies (a
segfault, a worker killed) or stays silent past the case timeout (then cancelled with force,
which kills its process) costs the case in flight, as a local worker's would; the runner
submits the rest again.  Ray itself retries nothing (`max_retries=0`): a retried case would
run twice, and a case that kills its process would kill every retry.

The adapter's environment travels as the task's runtime environment (`env_vars`), so Ray
starts and reuses worker processes per environment and worker group: a Ray worker keeps the
adapters it loaded (`_LOADED`), and the adapters of one group share it, as local workers do.
"""
from __future__ import annotations

import os
import threading
import time

from conformance.adapter_refs import WORKER_ENV, AdapterRef, share_key
from conformance.errors import UsageError
from conformance.procs import POLL_S, WorkerExited, WorkerSilent, WorkerStopped

# Cases per Ray task: small enough that a cluster's CPUs all get work from the exhaustive
# suite's ~27,000 cases per adapter, large enough that one adapter's compilations are reused.
CASES_PER_TASK = 500
_LOADED: dict[str, tuple] = {}  # in a Ray worker process: ref -> (adapter, ready message)


def serve(ref: str, case_ids: list[str], log: str):
    """The Ray task: load the adapter once per Ray worker process, then yield its messages."""
    from conformance.worker import evaluate_safely, load_adapter, ready_message

    if os.path.isdir(os.path.dirname(log)):  # the driver's machine: the task's output to its log
        from conformance.worker import _log_to

        _log_to(log)
    if ref not in _LOADED:
        try:
            adapter, versions = load_adapter(ref)
        except BaseException as exc:
            yield {"event": "load_error", "message": f"{type(exc).__name__}: {exc}"}
            return
        versions.setdefault("python", __import__("platform").python_version())
        _LOADED[ref] = adapter, ready_message(adapter, versions)
    adapter, ready = _LOADED[ref]
    yield ready
    for case_id in case_ids:
        yield {"event": "done", "case": case_id, "records": evaluate_safely(adapter, case_id)}
    yield {"event": "end"}


def task_env(adapter: AdapterRef) -> dict[str, str]:
    """The Ray task's environment: the local worker's, less what the driver's shell holds, plus
    its share key, so Ray never puts adapters of different worker groups in one process."""
    from conformance.adapter_refs import worker_env

    env = {**WORKER_ENV, **adapter.env, "CONFORMANCE_SHARE_KEY": repr(share_key(adapter))}
    env["PYTHONPATH"] = worker_env(adapter)["PYTHONPATH"]  # where the driver finds a user's adapter module
    return env


class RayWorker:
    """One Ray task, driven like a local WorkerProcess (`message`, `kill`, `alive`)."""

    tmp = None

    def __init__(self, remote, adapter: AdapterRef, case_ids: list[str], log: str, stop: threading.Event):
        import ray

        self.ray, self.stop, self.finished = ray, stop, False
        self.gen = remote.options(runtime_env={"env_vars": task_env(adapter)}).remote(adapter.ref, case_ids, log)

    def send(self, message: dict) -> None:
        """The task was given its cases when it was submitted."""

    def alive(self) -> bool:
        return not self.finished

    def message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            if self.stop.is_set():
                raise WorkerStopped()
            ready, _ = self.ray.wait([self.gen], timeout=POLL_S)
            if ready:
                try:
                    return self.ray.get(next(self.gen))
                except StopIteration:
                    self.finished = True
                    raise WorkerExited(0) from None
                except self.ray.exceptions.RayError as exc:
                    self.finished = True
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise WorkerExited(None, f"the Ray task died: {type(exc).__name__}: {first[:200]}") from None
            if time.monotonic() >= deadline:
                raise WorkerSilent()

    def kill(self) -> None:
        if not self.finished:
            self.finished = True
            try:
                self.ray.cancel(self.gen, force=True)  # kills the Ray worker process running it
            except Exception:  # already finished or gone
                pass


class RayExecutor:
    """A connection to Ray (a local instance it starts, or a cluster at `address`)."""

    cases_per_task = CASES_PER_TASK

    def __init__(self, address: str | None, jobs: int | None):
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'rmsnorm-conformance[ray]'") from None
        import logging

        self.ray, self.address = ray, address
        try:
            ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
        except Exception as exc:  # an unreachable cluster, a malformed address
            raise UsageError(f"--executor ray: cannot connect to Ray"
                             f"{f' at {address}' if address else ''}: {type(exc).__name__}: {exc}") from None
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Backpressure of one message: the task starts a case only once the driver holds the message
        # before it, so a task that dies loses no message, and its case in flight is the next one.
        self._remote = ray.remote(num_cpus=1, max_retries=0, _generator_backpressure_num_objects=1)(serve)

    def start(self, adapter: AdapterRef, case_ids: list[str], log: str, stop: threading.Event) -> RayWorker:
        return RayWorker(self._remote, adapter, case_ids, log, stop)

    def close(self) -> None:
        self.ray.shutdown()
