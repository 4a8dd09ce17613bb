"""The Ray side of a worker: the `Slot` actor a driver thread runs its tasks on, and `RayWorker`,
the driver's handle on it with a local `WorkerProcess`'s methods (send, message, alive, kill), so
the runner treats it as any other worker (executor.py).
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
from conformance.execution.outdir import STALE_PREFIX
from conformance.execution.procs import (
    POLL_S,
    WorkerExited,
    WorkerGarbled,
    WorkerProcess,
    WorkerSilent,
    WorkerStopped,
)

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

    def __init__(self, slot, adapter: AdapterRef, stop: threading.Event, ray, on_slot_death, gone=lambda: False):
        import uuid

        self.ray, self.slot, self.stop, self.gen = ray, slot, stop, None
        self.env, self.token = task_env(adapter), uuid.uuid4().hex
        self.dead, self.on_slot_death, self.gone = False, on_slot_death, gone

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
                    if self.gone():  # the whole cluster, not this actor: the run stops, no case is charged
                        raise WorkerStopped() from None
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
