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

Ray failing: an address is asked before Ray starts whether a Ray cluster's GCS answers there
(`probe`, bounded; Ray's own connect retries for ~10 minutes whatever answers).  During the run
the GCS is asked every second (`watch`); a cluster that stops answering (its head lost, the local
instance killed) stops the run as a signal would, with `lost` saying why (exit 3 in
`conformance run`), before Ray would exit the process itself ("Failed to connect to GCS", a
minute on).  A local instance is always a new one of the run's own, with 127.0.0.1 as its node
(`_loopback_only`), so none of its servers listens on the machine's network address.
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
# An address given is asked once whether a Ray cluster's GCS answers there, for at most this long.
PROBE_TIMEOUT_S = 5.0
# During a run the GCS is asked every WATCH_S (each ask at most PROBE_S); LOST_S without an answer
# and the cluster is lost.
WATCH_S, PROBE_S, LOST_S = 1.0, 2.0, 5.0


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


def _temp_dir() -> str:
    """Where a local Ray instance keeps its session: under TMPDIR as Ray does, unless that path is
    too long for the sockets Ray makes there (107 bytes for an AF_UNIX path; Ray adds ~70)."""
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), "ray")
    return folder if len(folder) <= 36 else "/tmp/ray"


class Unanswered(Exception):
    """The GCS at an address did not answer as one (`why`: what happened instead)."""

    def __init__(self, why: str, hint: bool = True):
        super().__init__(why)
        self.why, self.hint = why, hint  # hint: say to start the cluster or give its address


def _split(address: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of HOST:PORT, [V6]:PORT or ray://HOST:PORT; None for "auto" and other forms."""
    import re

    m = re.fullmatch(r"(?:(ray)://)?(\[[^\]]+\]|[^:\[\]/]+):([0-9]{1,5})", address)
    return (m[1] or "", m[2], int(m[3])) if m else None


def _is_loopback(host: str) -> bool:
    import ipaddress

    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth_metadata() -> tuple:
    """The token header Ray's own clients send (token authentication on, a token found), else none."""
    try:
        from ray._raylet import AuthenticationTokenLoader

        loader = AuthenticationTokenLoader.instance()
        return tuple(loader.get_token_for_http_header().items()) if loader.has_token() else ()
    except Exception:  # another Ray's API: ask without a token
        return ()


def probe(target: str, timeout: float, client: bool = False):
    """Ask the GCS at HOST:PORT for its head node (NodeInfoGcsService.GetAllNodeInfo, the call Ray's
    own clients make), bounded by `timeout` seconds: its GcsNodeInfo (None: no head listed), or
    Unanswered.  Ray's own connection retries an address for ~10 minutes whatever answers there.
    `client`: a Ray Client server (ray://), which speaks gRPC but not the GCS's services."""
    import grpc
    from ray.core.generated import gcs_pb2, gcs_service_pb2 as pb

    request = pb.GetAllNodeInfoRequest(state_filter=gcs_pb2.GcsNodeInfo.ALIVE,
                                       node_selectors=[pb.GetAllNodeInfoRequest.NodeSelector(is_head_node=True)])
    channel = grpc.insecure_channel(target)
    try:
        call = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",
                                   request_serializer=pb.GetAllNodeInfoRequest.SerializeToString,
                                   response_deserializer=pb.GetAllNodeInfoReply.FromString)
        reply = call(request, timeout=timeout, metadata=_auth_metadata())
    except grpc.RpcError as exc:
        code, details = exc.code(), (exc.details() or "").strip()
        if client and code == grpc.StatusCode.UNIMPLEMENTED:
            return None  # a gRPC server answered (a Ray Client server has no GCS service)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise Unanswered(f"no answer as a Ray cluster within {timeout:g}s (a port that accepts connections "
                             "but is not a Ray cluster's GCS?)") from None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            if not _auth_metadata():
                raise Unanswered("the cluster uses token authentication: run with RAY_AUTH_MODE=token and its token "
                                 "in ~/.ray/auth_token or RAY_AUTH_TOKEN", hint=False) from None
            raise Unanswered(f"the cluster refuses this machine's Ray token ({details[:120]})", hint=False) from None
        if code == grpc.StatusCode.UNAVAILABLE and "refused" in details.lower():
            raise Unanswered("nothing answers there: connection refused") from None
        if code == grpc.StatusCode.UNIMPLEMENTED:
            raise Unanswered("a gRPC server answers that is not a Ray cluster's GCS") from None
        raise Unanswered(f"it does not answer as a Ray cluster ({code.name}: {details[:160]})") from None
    finally:
        channel.close()
    return reply.node_info_list[0] if reply.node_info_list else None


def _loopback_only(ray) -> None:
    """This process and the Ray processes it starts take 127.0.0.1 as the node's address, so every
    server of a local instance listens on loopback only (Ray binds its gRPC servers to 127.0.0.1
    when that is the node's address).  Ray resolves 127.0.0.1 to the machine's network address
    unless "Ray clusters" are off, as on macOS and Windows (ray_constants.ENABLE_RAY_CLUSTER): off
    for the processes to come, and in this one, which has read it already."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False


class RayExecutor(Executor):
    """A connection to Ray: a local instance it starts (its own, on loopback only), or a cluster at
    `address`."""

    cases_per_task = CASES_PER_TASK

    def __init__(self, address: str | None, jobs: int | None):
        """Checks what can be checked before Ray starts (Ray installed, a Ray cluster answers at the
        address); `connect()` starts or joins it, once the output folder is known to be usable."""
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'rmsnorm-conformance[ray]'") from None
        self.ray, self.address, self.jobs = ray, address, jobs
        self._gcs: str | None = None  # the GCS the run watches (None: unknown, as behind ray://)
        self._loopback = address is None  # a local instance: its own, on 127.0.0.1
        if address is not None:
            self._check(address)
        self._slots = threading.local()  # each driver thread's Slot actor
        self._all: list = []
        self._logs: set[Path] = set()  # where workers on this machine kept their temporary folders
        self._lock = threading.Lock()
        self.lost: str | None = None
        self._on_lost = None
        self._closing = threading.Event()

    def _check(self, address: str) -> None:
        """UsageError unless a Ray cluster answers at `address` within PROBE_TIMEOUT_S: Ray's own
        connection retries for ~10 minutes, and a Ctrl-C then takes ~25 s more."""
        target = address
        if address == "auto":  # the cluster `ray start` last started on this machine, or RAY_ADDRESS
            try:
                target = self.ray._private.services.canonicalize_bootstrap_address("auto", _temp_dir())
            except Exception as exc:
                raise UsageError(f"--ray-address auto: {exc}") from None
        parts = _split(target or "")
        if parts is None:
            return  # a form Ray parses (and refuses) itself
        scheme, host, port = parts
        try:
            head = probe(f"{host}:{port}", PROBE_TIMEOUT_S, client=scheme == "ray")
        except Unanswered as exc:
            hint = "; start the cluster (ray start --head) or give its address" if exc.hint else ""
            raise UsageError(f"--ray-address {address}: {exc.why}{hint}") from None
        if scheme != "ray":
            self._gcs = f"{host}:{port}"
            # A cluster on this machine's loopback (`ray start --head --node-ip-address 127.0.0.1`
            # with Ray clusters off, as _loopback_only): this driver's node is 127.0.0.1 too, or Ray
            # would look for a raylet at the machine's network address.
            self._loopback = _is_loopback(host) and head is not None and _is_loopback(head.node_manager_address)

    def connect(self) -> None:
        """Start or join Ray (ray.init).  A signal during its start-up only marks the run stopped
        (`conformance run` holds StopOnSignal around this), and the run stops once Ray is up: an
        exception raised in the middle of ray.init (KeyboardInterrupt) can crash the process at exit
        (SIGSEGV: 3 of 6 SIGINTs 2.3-2.7 s into the start-up, measured), and ray.init replaces the
        SIGTERM handler with its own (sys.exit(15): exit 15, nothing written), which it is kept from
        here.  (ray.init in another thread instead leaves the driver's later calls hanging.)"""
        import logging
        import signal

        ray = self.ray
        if self._loopback:
            _loopback_only(ray)
        # "local": a new instance of its own, never one found on this machine (RAY_ADDRESS,
        # /tmp/ray/ray_current_cluster), which would refuse num_cpus or be a stranger's.
        options = ({"address": self.address} if self.address else
                   {"address": "local", "num_cpus": self.jobs, "_temp_dir": _temp_dir()})
        utils, term = ray._private.utils, signal.getsignal(signal.SIGTERM)
        own = getattr(utils, "set_sigterm_handler", None)
        if own is not None:
            utils.set_sigterm_handler = lambda handler: None
        try:
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     configure_logging=False, **options)
        except Exception as exc:  # an unreachable cluster, a malformed address
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UsageError(f"--executor ray: cannot connect to Ray{f' at {self.address}' if self.address else ''}: "
                             f"{type(exc).__name__}: {first}") from None
        finally:
            if own is not None:
                utils.set_sigterm_handler = own
            if signal.getsignal(signal.SIGTERM) is not term:  # another Ray's way of setting it
                signal.signal(signal.SIGTERM, term)
        if self._gcs is None and not (self.address or "").startswith("ray://"):
            try:
                self._gcs = ray.get_runtime_context().gcs_address
            except Exception:  # not known: the run is not watched
                self._gcs = None
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
        if self.address:
            return f" on Ray (the cluster at {self.address}, {self.cpus} CPUs)"
        return f" on Ray (a local instance of its own at {self._gcs or '127.0.0.1'}, {self.cpus} CPUs)"

    def summary(self) -> str:
        return f" on {len(self._all)} Ray actor(s)"

    def watch(self, on_lost) -> None:
        """Ask the GCS every WATCH_S whether it is there; after LOST_S without an answer the cluster
        is lost (its head, or the local instance, is gone): `lost` says so and `on_lost()` stops
        the run, which keeps what finished.  Ray itself would go on for a minute, then exit the
        process ("Failed to connect to GCS") before any report is written."""
        self._on_lost = on_lost
        if self._gcs:
            threading.Thread(target=self._watch, name="ray-watch", daemon=True).start()

    def _watch(self) -> None:
        answered = time.monotonic()
        while not self._closing.wait(WATCH_S):
            try:
                probe(self._gcs, PROBE_S)
                answered = time.monotonic()
            except Unanswered as exc:
                if time.monotonic() - answered >= LOST_S:
                    self._lose(exc.why)
                    return

    def _gone(self) -> bool:
        """After an actor's error: is the cluster itself gone, rather than the actor (a lost node)?
        A head that dies takes its GCS with it within a second; a case is then not charged."""
        if self.lost:
            return True
        if not self._gcs or self._closing.is_set():
            return False
        time.sleep(1.0)
        try:
            probe(self._gcs, PROBE_S)
        except Unanswered as exc:
            self._lose(exc.why)
            return True
        return False

    def _lose(self, why: str) -> None:
        with self._lock:
            if self.lost:
                return
            at = f" at {self.address}" if self.address else f" (the local instance at {self._gcs})"
            self.lost = f"the Ray cluster{at} was lost (its GCS: {why})"
        print(f"\nconformance: {self.lost}: stopping; writing the reports of what finished (--resume continues)",
              file=sys.stderr, flush=True)
        if self._on_lost:
            self._on_lost()

    def start(self, adapter: AdapterRef, log: Path, stop: threading.Event) -> RayWorker:
        """A new worker for `adapter` on this driver thread's Slot (started on first use, or again
        after it died)."""
        slot = getattr(self._slots, "slot", None)
        with self._lock:
            self._logs.add(log.parent)
            if slot is None:
                slot = self._slots.slot = self._slot_class.remote()
                self._all.append(slot)
        return RayWorker(slot, adapter, stop, self.ray, self._slot_died, self._gone)

    def _slot_died(self, slot) -> None:
        if getattr(self._slots, "slot", None) is slot:
            self._slots.slot = None

    def close(self) -> None:
        self._closing.set()
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
