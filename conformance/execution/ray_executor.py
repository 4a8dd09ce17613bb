"""`conformance run --executor ray [--ray-address ADDR]`: the runner's workers on Ray.

The same cases, adapters, records and fault handling as the local runner: it splits the work
into tasks (chunks of one adapter's cases) and drives each from one thread, holding a worker per
thread that it reuses for the next task of the same worker group.  Here each driver thread has a
Ray actor (`Slot`, one CPU), placed by Ray on any node, and its workers are the local runner's
worker processes (`procs.WorkerProcess`, `python -m conformance.execution.worker --serve`), started by
that actor on its node with the adapter's environment (`task_env`) on top of the node's.  The
actor's generator method passes the worker protocol's messages on as they come ("ready", one
"done" per case, "end"); they stream back to the driver and are appended to results.jsonl as
they arrive.

Why a worker process under an actor rather than an actor per adapter with the environment as
its Ray runtime environment (the first design): an actor with a runtime environment of its own
starts a new Ray worker process, ~0.6 s of a CPU each (measured here), once per worker group and
again after every crash, where a worker process costs ~0.05 s; and a worker's pipe delivers every
message it wrote before it died, so a crash is attributed exactly, as in the local runner.

Faults: a worker that crashes costs the case in flight, recorded as the local runner records it
("worker crashed (killed by SIGKILL)"); one that stays silent past --timeout is killed through its
actor (`Slot.kill`, on another of the actor's threads) and costs its case; the actor stays for the
next worker.  An actor that dies itself (a lost node) may take its last messages with it, so the
cases without a record run again on a new actor in careful mode, one case at a time, each once the
driver holds the previous one's message: the case that kills that actor is the one charged.
Ray itself restarts and retries nothing: a retried case would run twice, and a case that kills
its process would kill every retry.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from conformance.execution import protocol
from conformance.execution.adapter_refs import WORKER_ENV, AdapterRef
from conformance.execution.executor import Executor
from conformance.errors import UsageError
from conformance.execution.outdir import STALE_PREFIX
from conformance.execution.procs import POLL_S, WorkerExited, WorkerGarbled, WorkerProcess, WorkerSilent, WorkerStopped

# Cases per task: small enough that a cluster's CPUs all get work from the exhaustive suite's
# 36,608 cases per adapter, large enough that one adapter's compilations are reused.
CASES_PER_TASK = 500
# How long a Slot waits on its worker before giving up on it: longer than any --timeout the driver
# would use, which times each case itself and kills the worker through the actor.
WORKER_SILENCE_S = 7 * 24 * 3600.0


class Slot:
    """The Ray actor a driver thread runs its tasks on: it holds one worker process at a time, a
    local `WorkerProcess` on the actor's node started with the adapter's environment, and streams
    that worker's messages to the driver.  What crosses to the driver is the worker protocol's JSON
    text, never a framework's objects (a Keras list subclass in a layer's defaults cannot be
    unpickled without Keras).  `kill` runs beside a `serve` in flight (max_concurrency), as the
    driver's answer to a hang."""

    def __init__(self):
        self.worker: WorkerProcess | None = None
        self.token: str | None = None  # which of the driver's RayWorkers the held worker is
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def serve(self, env: dict, message: dict, token: str):
        """One task on the worker `token` names: the held one, or a new one in its place."""
        logs = os.path.dirname(message["log"])
        here = os.path.isdir(logs)  # the driver's machine: its logs folder is this one's
        with self.lock:
            if self.token != token or self.worker is None:
                self._kill()
                self._start(env, logs if here else None)
                self.token = token
            worker = self.worker  # a later serve may replace it once this one is abandoned
        if not here:  # another node: the task's output stays on this one
            message = {**message, "log": os.path.join(worker.tmp, "task.log")}
        # Careful (after this slot's predecessor died with the task): the worker gets one case at a
        # time, the next once the driver holds the last one's message (the generator's backpressure
        # holds each yield until then), so a case that kills this actor is the one in flight.  The
        # first part has no case: the driver holds "ready" before any case runs, else a first case
        # that kills the actor would look like a failed load and cost every case of the task.
        cases = message["cases"]
        parts = [[], *([case] for case in cases)] if message.get("careful") else [cases]
        for k, part in enumerate(parts):
            worker.send({**message, "cases": part})
            while True:
                try:
                    reply = worker.message(timeout=WORKER_SILENCE_S)  # the driver times cases itself
                except WorkerExited as exc:
                    yield json.dumps(protocol.exited(exc.code))
                    return
                except (WorkerGarbled, WorkerSilent, WorkerStopped) as exc:
                    yield json.dumps(protocol.garbled(str(exc)))
                    return
                event = reply.get("event")
                if event == protocol.READY and k > 0:  # one task to the driver: one "ready", one "end"
                    continue
                if event == protocol.END and k < len(parts) - 1:
                    break
                yield json.dumps(reply)
                if event in (protocol.END, protocol.LOAD_ERROR):
                    return

    def _start(self, env: dict, logs: str | None) -> None:
        """On the driver's machine the worker's temporary folder is one of the run's (in its logs
        folder, as a local worker's), which the driver removes at the end even if this actor is
        killed before it can."""
        import tempfile

        tmp = tempfile.mkdtemp(dir=logs, prefix=STALE_PREFIX)
        argv = [sys.executable, "-m", "conformance.execution.worker", "--serve"]
        self.worker = WorkerProcess(argv, {**os.environ, **env, "TMPDIR": tmp}, Path(tmp) / "worker.log", self.stop)
        self.worker.tmp = tmp

    def kill(self, token: str | None = None) -> None:
        """Kill the held worker (if it is still `token`'s; None: whichever) with what it started.
        Calls to a threaded actor may run out of order: a kill that arrives after the next
        worker's serve must not kill that one."""
        with self.lock:
            if token is None or token == self.token:
                self._kill()

    def _kill(self) -> None:
        worker, self.worker, self.token = self.worker, None, None
        if worker is not None:
            worker.kill()
            shutil.rmtree(worker.tmp, ignore_errors=True)


def task_env(adapter: AdapterRef) -> dict[str, str]:
    """The worker's environment on top of the node's: the local worker's, less what the driver's
    shell holds."""
    from conformance.execution.adapter_refs import worker_env

    env = {**WORKER_ENV, **adapter.env}
    env["PYTHONPATH"] = worker_env(adapter)["PYTHONPATH"]  # where the driver finds a user's adapter module
    return env


class RayWorker:
    """A worker process held by a driver thread's Slot actor, driven like a local WorkerProcess:
    `send` gives it a task, `message` reads the task's messages, `kill` kills the process (the
    actor stays, for the thread's next worker)."""

    tmp = None
    careful = True

    def __init__(self, slot, adapter: AdapterRef, stop: threading.Event, ray, on_slot_death):
        import uuid

        self.ray, self.slot, self.stop, self.gen = ray, slot, stop, None
        self.env, self.token = task_env(adapter), uuid.uuid4().hex
        self.dead, self.on_slot_death = False, on_slot_death

    def send(self, message: dict) -> None:
        # The actor's messages reach the driver asynchronously: an actor that dies itself may take
        # its last few with it (WorkerExited.exact is False), and the runner then gives the cases
        # without a record to a new actor, careful: the backpressure of one message holds each of
        # the actor's yields until the driver has the message, and Slot.serve hands the worker one
        # case at a time.  Careful always would cost a round trip per case; a worker that dies
        # under a live actor loses nothing (the actor reads its pipe to the end).
        self.careful = message.get("careful", False)
        options = {"_generator_backpressure_num_objects": 1} if self.careful else {}
        self.gen = self.slot.serve.options(**options).remote(self.env, message, self.token)

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
                    reply = json.loads(self.ray.get(next(self.gen)))
                except StopIteration:
                    self.dead = True
                    raise WorkerExited(0) from None
                except self.ray.exceptions.RayError as exc:
                    self.dead = True
                    self.on_slot_death(self.slot)
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise WorkerExited(None, f"the Ray actor died: {type(exc).__name__}: {first[:200]}",
                                       exact=self.careful) from None
                if reply.get("event") == protocol.EXITED:
                    self.dead = True
                    raise WorkerExited(reply.get("code"))
                if reply.get("event") == protocol.GARBLED:
                    self.dead = True
                    raise WorkerGarbled(reply.get("line", ""))
                return reply
            if time.monotonic() >= deadline:
                raise WorkerSilent()

    def kill(self) -> None:
        self.dead = True
        self.slot.kill.remote(self.token)  # in another of the actor's threads, beside a serve that may be stuck


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


class RayExecutor(Executor):
    """A connection to Ray (a local instance it starts, or a cluster at `address`)."""

    cases_per_task = CASES_PER_TASK

    def __init__(self, address: str | None, jobs: int | None):
        """Checks what can be checked before Ray starts (Ray installed, the address answers);
        `connect()` starts or joins it, once the output folder is known to be usable."""
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'rmsnorm-conformance[ray]'") from None
        self.ray, self.address, self.jobs = ray, address, jobs
        _check_reachable(address)
        self._slots = threading.local()  # each driver thread's Slot actor
        self._all: list = []
        self._logs: set[Path] = set()  # where workers on this machine kept their temporary folders
        self._lock = threading.Lock()

    def connect(self) -> None:
        import logging

        ray, address = self.ray, self.address
        local = {} if address else {"num_cpus": self.jobs, "_temp_dir": _temp_dir()}
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     configure_logging=False, **local)
        except Exception as exc:  # an unreachable cluster, a malformed address
            raise UsageError(f"--executor ray: cannot connect to Ray"
                             f"{f' at {address}' if address else ''}: {type(exc).__name__}: {exc}") from None
        self._cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # One CPU each: a slot runs one worker at a time.  A second and third thread in the actor
        # for `kill`, beside a `serve` that a hung case holds.
        self._slot_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0, max_concurrency=3)(Slot)

    @property
    def connected(self) -> bool:
        return self.ray.is_initialized()

    @property
    def cpus(self) -> int:
        return self._cpus

    def where(self) -> str:
        return f" on Ray ({self.address or 'a local instance'}, {self.cpus} CPUs)"

    def summary(self) -> str:
        return f" on {len(self._all)} Ray actor(s)"

    def start(self, adapter: AdapterRef, log: Path, stop: threading.Event) -> RayWorker:
        """A new worker for `adapter` on this driver thread's Slot (started on first use, or again
        after it died)."""
        slot = getattr(self._slots, "slot", None)
        with self._lock:
            self._logs.add(log.parent)
            if slot is None:
                slot = self._slots.slot = self._slot_class.remote()
                self._all.append(slot)
        return RayWorker(slot, adapter, stop, self.ray, self._slot_died)

    def _slot_died(self, slot) -> None:
        if getattr(self._slots, "slot", None) is slot:
            self._slots.slot = None

    def close(self) -> None:
        with self._lock:
            slots = list(self._all)
        for slot in slots:  # their workers with them: a worker's stdin pipe closes when its actor dies
            try:
                self.ray.kill(slot, no_restart=True)
            except Exception:  # already gone
                pass
        self.ray.shutdown()
        for logs in self._logs:  # the folders of workers whose actor was killed before it could remove them
            for stale in logs.glob(STALE_PREFIX + "*"):
                shutil.rmtree(stale, ignore_errors=True)
