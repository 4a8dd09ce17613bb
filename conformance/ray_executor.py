"""`conformance run --executor ray [--ray-address ADDR]`: the runner's workers as Ray actors.

The same cases, adapters, records and fault handling as the local runner: it splits the work
into tasks (chunks of one adapter's cases) and drives each from one thread, holding a worker per
thread that it reuses for the next task of the same worker group, but here a worker is a Ray
actor (`Serve`), placed by Ray on any node, instead of a local process.  Its generator method
yields the worker protocol's messages ("ready", one "done" per case, "end"), which stream back
to the driver and are appended to results.jsonl as they arrive.  An actor that dies (a segfault,
its process killed) or stays silent past the case timeout (then killed with `ray.kill`) costs
the case in flight, as a local worker's would; the runner gives the rest to a new actor.  A dying
actor may lose its last messages, so the cases after the last one that arrived run again on an
actor that waits for the driver after each (`RayWorker.send`): the first of them that kills it
is the case charged.  A silent actor has had the whole timeout to deliver what it sent, so its
case in flight is the one after the last message.  Ray
itself restarts and retries nothing: a retried case would run twice, and a case that kills its
process would kill every retry.

The adapter's environment travels as the actor's runtime environment (`env_vars`).  An actor
asks for one CPU, and the driver runs as many at once as the cluster has CPUs (or --jobs).
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from conformance.adapter_refs import WORKER_ENV, AdapterRef
from conformance.errors import UsageError
from conformance.procs import POLL_S, WorkerExited, WorkerSilent, WorkerStopped

# Cases per task: small enough that a cluster's CPUs all get work from the exhaustive suite's
# 36,608 cases per adapter, large enough that one adapter's compilations are reused.
CASES_PER_TASK = 500


class Serve:
    """The Ray actor that is a worker: it loads each adapter once and runs tasks of its cases."""

    def __init__(self):
        self.loaded: dict[str, tuple] = {}  # ref -> (adapter, ready message)

    def serve(self, ref: str, case_ids: list[str], log: str):
        """One task: the worker protocol's messages, as JSON text: what crosses to the driver is
        what the local protocol carries, never a framework's objects (a Keras list subclass in a
        layer's defaults cannot be unpickled without Keras)."""
        from conformance.worker import log_to, task_messages

        if os.path.isdir(os.path.dirname(log)):  # on the driver's machine: the task's output to its log
            log_to(log)
        for message in task_messages(self.loaded, ref, case_ids):
            yield json.dumps(message)


def task_env(adapter: AdapterRef) -> dict[str, str]:
    """The actor's environment: the local worker's, less what the driver's shell holds."""
    from conformance.adapter_refs import worker_env

    env = {**WORKER_ENV, **adapter.env}
    env["PYTHONPATH"] = worker_env(adapter)["PYTHONPATH"]  # where the driver finds a user's adapter module
    return env


class RayWorker:
    """A Serve actor, driven like a local WorkerProcess: `send` gives it a task, `message` reads
    the task's messages, `kill` kills the actor's process."""

    tmp = None
    careful = True

    def __init__(self, actor_class, adapter: AdapterRef, stop: threading.Event):
        import ray

        self.ray, self.stop, self.gen = ray, stop, None
        self.actor = actor_class.options(runtime_env={"env_vars": task_env(adapter)}).remote()
        self.dead = False

    def send(self, message: dict) -> None:
        # An actor's messages reach the driver asynchronously: one that dies may take the last few
        # with it, so its case in flight is unknown (WorkerExited.exact is False) and the runner
        # gives the cases without a record to a careful worker.  That one has a backpressure of one
        # message: it starts a case only once the driver holds the message before it, so it loses
        # none.  Careful always would cost a round trip per case (0.60 ms per message against
        # 0.16 ms, measured here); this way only the cases after a crash pay it.
        self.careful = message.get("careful", False)
        options = {"_generator_backpressure_num_objects": 1} if self.careful else {}
        self.gen = self.actor.serve.options(**options).remote(message["adapter"], message["cases"], message["log"])

    def alive(self) -> bool:
        return not self.dead

    def message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            if self.stop.is_set():
                raise WorkerStopped()
            ready, _ = self.ray.wait([self.gen], timeout=POLL_S)
            if ready:
                try:
                    return json.loads(self.ray.get(next(self.gen)))
                except StopIteration:
                    raise WorkerExited(0) from None
                except self.ray.exceptions.RayError as exc:
                    self.dead = True
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise WorkerExited(None, f"the Ray actor died: {type(exc).__name__}: {first[:200]}",
                                       exact=self.careful) from None
            if time.monotonic() >= deadline:
                raise WorkerSilent()

    def kill(self) -> None:
        self.dead = True
        try:
            self.ray.kill(self.actor, no_restart=True)  # its process, with the case it was running
        except Exception:  # already gone
            pass


def _temp_dir() -> str:
    """Where a local Ray instance keeps its session: under TMPDIR as Ray does, unless that path is
    too long for the sockets Ray makes there (107 bytes for an AF_UNIX path; Ray adds ~70)."""
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), "ray")
    return folder if len(folder) <= 36 else "/tmp/ray"


def _check_reachable(address: str | None, timeout_s: float = 10.0) -> None:
    """UsageError unless HOST:PORT (or ray://HOST:PORT) accepts a connection: Ray itself retries
    an address with nothing behind it for minutes."""
    import re
    import socket

    m = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:([0-9]+)", address or "")
    if not m:
        return  # none (a local instance), "auto", or a form Ray parses itself
    try:
        socket.create_connection((m[1], int(m[2])), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the cluster "
                         "(ray start --head) or give its address") from None


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
        _check_reachable(address)
        # A local instance starts no idle workers: an actor with a runtime environment of its own never
        # uses one, and their start (~0.6 s of a CPU each, measured) competes with the first tasks.
        local = {} if address else {"num_cpus": jobs, "_temp_dir": _temp_dir(),
                                    "_system_config": {"enable_worker_prestart": False,
                                                       "prestart_worker_first_driver": False}}
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     configure_logging=False, **local)
        except Exception as exc:  # an unreachable cluster, a malformed address
            raise UsageError(f"--executor ray: cannot connect to Ray"
                             f"{f' at {address}' if address else ''}: {type(exc).__name__}: {exc}") from None
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._actor = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(Serve)

    def start(self, adapter: AdapterRef, log: Path, stop: threading.Event) -> RayWorker:
        return RayWorker(self._actor, adapter, stop)

    def close(self) -> None:
        self.ray.shutdown()
