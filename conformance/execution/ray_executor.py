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

import shutil
import sys
import threading
import time
from pathlib import Path

from conformance.errors import UsageError
from conformance.execution.adapter_refs import AdapterRef
from conformance.execution.executor import Executor
from conformance.execution.outdir import STALE_PREFIX
from conformance.execution.ray_actors import RayWorker, Slot
from conformance.execution.ray_cluster import (
    PROBE_TIMEOUT_S,
    Unanswered,
    _is_loopback,
    _loopback_only,
    _split,
    _temp_dir,
    probe,
)

# Cases per task: small enough that a cluster's CPUs all get work from the exhaustive suite's
# 36,608 cases per adapter, large enough that one adapter's compilations are reused.
CASES_PER_TASK = 500
# An address given is asked once whether a Ray cluster's GCS answers there, for at most this long.
# During a run the GCS is asked every WATCH_S (each ask at most PROBE_S); LOST_S without an answer
# and the cluster is lost.
WATCH_S, PROBE_S, LOST_S = 1.0, 2.0, 5.0




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
