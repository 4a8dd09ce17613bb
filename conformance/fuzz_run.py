"""`conformance fuzz`: each adapter's fuzzing in its own worker, with the runner's isolation.

A crash, a hang past the per-case timeout or an adapter that never loads is a
result (exit 1, reason printed), never "no failure"; `--time` bounds the wall
time of each adapter, hangs included.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from conformance.cases.case import parse_case
from conformance.evaluate import checks_for, record
from conformance.procs import WorkerExited, WorkerGarbled, WorkerProcess, WorkerSilent, WorkerStopped
from conformance.adapter_refs import LOAD_TIMEOUT_S, AdapterRef, worker_env

GRACE_S = 5.0  # past --time, how long a worker may take to report the round it is finishing


@dataclass(frozen=True)
class FuzzOutcome:
    tried: int
    case: str | None  # the minimal failing (or crashing, hanging) case
    message: str  # why it fails; or why fuzzing could not run (then `broken`)
    records: tuple = ()
    broken: bool = False  # the adapter could not be fuzzed: never "no failure"


def _case_error(adapter: AdapterRef, case_id: str, message: str) -> list[dict]:
    case = parse_case(case_id)
    return [record(case, adapter.name, check, "error", message) for check in checks_for(case)]


def fuzz_one(adapter: AdapterRef, seed: int, budget: int, seconds: float | None, case_timeout: float,
             log: Path, stop: threading.Event) -> FuzzOutcome:
    argv = [sys.executable, "-m", "conformance.fuzz", adapter.ref, str(seed), str(budget), str(seconds or 0)]
    deadline = time.monotonic() + seconds + GRACE_S if seconds else None
    worker = WorkerProcess(argv, worker_env(adapter), log, stop)
    ready, tried, in_flight = False, 0, None
    try:
        while True:
            limit = case_timeout if ready else LOAD_TIMEOUT_S
            left = deadline - time.monotonic() if deadline else limit
            try:
                message = worker.message(max(0.0, min(limit, left)))
            except WorkerStopped:
                return FuzzOutcome(tried, None, "interrupted", broken=True)
            except WorkerSilent:
                if deadline and left <= limit:  # the time ran out, not the case
                    note = f"; stopped by --time while case {in_flight} ran" if in_flight else ""
                    return FuzzOutcome(tried, None, f"time spent{note}")
                if not ready:
                    return FuzzOutcome(0, None, f"worker did not load within {limit:.0f}s", broken=True)
                why = f"case timed out after {limit:g}s; worker killed"
                return FuzzOutcome(tried, in_flight, why, tuple(_case_error(adapter, in_flight, why)))
            except (WorkerExited, WorkerGarbled) as exc:
                if not ready or in_flight is None:
                    return FuzzOutcome(tried, None, f"fuzz worker ended while loading ({exc})", broken=True)
                why = f"worker crashed on this case ({exc})"
                return FuzzOutcome(tried, in_flight, why, tuple(_case_error(adapter, in_flight, why)))
            event = message.get("event")
            if event == "ready":
                ready = True
            elif event == "load_error":
                return FuzzOutcome(0, None, f"adapter failed to load: {message.get('message')}", broken=True)
            elif event == "case":
                tried, in_flight = tried + 1, message.get("case")
            elif event == "result":
                bad = [r for r in message["records"] if r["status"] in ("fail", "error")]
                return FuzzOutcome(message["tried"], message["case"], bad[0]["message"] if bad else "",
                                   tuple(message["records"]))
    finally:
        worker.kill()


def fuzz_adapters(adapters: list[AdapterRef], seed: int, budget: int, seconds: float | None, case_timeout: float,
                  out: Path, stop: threading.Event) -> dict[str, FuzzOutcome]:
    """Fuzz each adapter; write OUT/fuzz.toml (replayable) and OUT/results.jsonl."""
    from conformance.outdir import write_atomic
    from conformance.reports.results import write_jsonl

    found = {}
    (out / "logs").mkdir(exist_ok=True)
    for a in adapters:
        if stop.is_set():
            break
        found[a.name] = fuzz_one(a, seed, budget, seconds, case_timeout, out / "logs" / f"fuzz-{a.name}.log", stop)
    ids = [o.case for o in found.values() if o.case]
    write_jsonl(out / "results.jsonl", [r for o in found.values() for r in o.records])
    write_atomic(out / "fuzz.toml",
                 f"# minimal failing cases found by `conformance fuzz --seed {seed}`\n"
                 f"name = \"fuzz-seed-{seed}\"\ncases = [{', '.join(json.dumps(i) for i in ids)}]\n")
    return found
