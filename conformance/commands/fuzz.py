"""`conformance fuzz`: each adapter's fuzzing in its own worker, with the runner's isolation.

A crash, a hang past the per-case timeout or an adapter that never loads is a
result (exit 1, reason printed), never "no failure"; `--time` bounds the wall
time of each adapter, hangs included.
"""
from __future__ import annotations

import json
import math
import shlex
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from conformance.cases.case import parse_case
from conformance.checks.pipeline import error_records
from conformance.execution.outdir import STALE_PREFIX
from conformance.execution.procs import WorkerExited, WorkerGarbled, WorkerProcess, WorkerSilent, WorkerStopped
from conformance.commands.report import EXIT_FAIL, EXIT_PASS
from conformance.commands.run import select_adapters
from conformance.errors import UsageError
from conformance.execution import protocol
from conformance.execution.adapter_refs import LOAD_TIMEOUT_S, AdapterRef, adapter_flag, worker_env
from conformance.execution.interrupt import StopOnSignal

# When --time runs out, how long the example in flight may take to finish: longer, and it is
# reported as unfinished (a hang?), never as "no failure".
GRACE_S = 2.0

@dataclass(frozen=True)
class FuzzOutcome:
    tried: int
    case: str | None  # the minimal failing (or crashing, hanging) case
    message: str  # why it fails; or why fuzzing could not run (then `broken`)
    records: tuple = ()
    broken: bool = False  # the adapter could not be fuzzed: never "no failure"


def _case_error(adapter: AdapterRef, case_id: str, message: str) -> list[dict]:
    return error_records(adapter.name, parse_case(case_id), message)


def command_start(adapters: list[AdapterRef]) -> str:
    """How a printed `conformance` command for these adapters starts (execution/invocation.py)."""
    from conformance.execution.invocation import command_prefix, conformance_command

    command, path = conformance_command()
    return command_prefix(command, [*(a.import_root for a in adapters), *path])


def fuzz_one(adapter: AdapterRef, seed: int, budget: int, seconds: float | None, case_timeout: float,
             log: Path, stop: threading.Event) -> FuzzOutcome:
    """Fuzz one adapter in its worker.  --time counts from when the adapter has loaded."""
    argv = [sys.executable, "-m", "conformance.execution.fuzzing", adapter.ref, str(seed), str(budget), str(seconds or 0)]
    tmp = tempfile.mkdtemp(dir=log.parent, prefix=STALE_PREFIX)  # the worker's temporary files, removed below
    env = worker_env(adapter) | {"HYPOTHESIS_STORAGE_DIRECTORY": str(log.parent / ".hypothesis"), "TMPDIR": tmp}
    worker = WorkerProcess(argv, env, log, stop)
    ready, tried, deadline = False, 0, math.inf
    in_flight, started, failing = None, 0.0, None  # the example running, since when; the last failure seen

    def case_lost(why: str) -> FuzzOutcome:
        return FuzzOutcome(tried, in_flight, why, tuple(_case_error(adapter, in_flight, why)))

    def time_up() -> FuzzOutcome:
        if failing:
            return FuzzOutcome(tried, failing[0], failing[1] + " (shrinking stopped by --time)", failing[2])
        if in_flight:
            return FuzzOutcome(tried, None, f"--time ran out while case {in_flight} had run for "
                               f"{time.monotonic() - started:.0f}s: a hang? rerun it with `{command_start([adapter])} run "
                               f"{adapter_flag(adapter.ref)} --case {shlex.quote(in_flight)} --timeout {case_timeout:g} "
                               "--out out/rerun --overwrite`", broken=True)
        if not tried:
            return FuzzOutcome(0, None, "--time ran out before the first example", broken=True)
        return FuzzOutcome(tried, None, "time spent")

    try:
        while True:
            now = time.monotonic()
            if now >= deadline + (GRACE_S if in_flight else 0.0):
                return time_up()
            until = now + LOAD_TIMEOUT_S if not ready else min(
                (started if in_flight else now) + case_timeout,
                deadline + (GRACE_S if in_flight else 0.0))
            try:
                message = worker.message(max(0.0, until - now))
            except WorkerStopped:
                return FuzzOutcome(tried, None, "interrupted", broken=True)
            except WorkerSilent:
                if not ready:
                    return FuzzOutcome(0, None, f"worker did not load within {LOAD_TIMEOUT_S:.0f}s", broken=True)
                if time.monotonic() < deadline:
                    return case_lost(f"case timed out after {case_timeout:g}s; worker killed")
                return time_up()
            except (WorkerExited, WorkerGarbled) as exc:
                if not ready or in_flight is None:
                    return FuzzOutcome(tried, None, f"fuzz worker ended outside an example ({exc})", broken=True)
                return case_lost(f"worker crashed on this case ({exc})")
            event = message.get("event")
            if event == protocol.READY:
                ready = True
                deadline = time.monotonic() + seconds if seconds else math.inf
            elif event == protocol.LOAD_ERROR:
                return FuzzOutcome(0, None, f"adapter failed to load: {message.get('message')}", broken=True)
            elif event == protocol.CASE:
                tried, in_flight, started = tried + 1, message.get("case"), time.monotonic()
            elif event == protocol.CHECKED:
                in_flight = None
                bad = [r for r in message.get("records", []) if r["status"] in ("fail", "error")]
                if bad:
                    failing = (message["case"], bad[0]["message"], tuple(message["records"]))
            elif event == protocol.RESULT:
                bad = [r for r in message["records"] if r["status"] in ("fail", "error")]
                return FuzzOutcome(message["tried"], message["case"], bad[0]["message"] if bad else "",
                                   tuple(message["records"]))
    finally:
        worker.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def fuzz_adapters(adapters: list[AdapterRef], seed: int, budget: int, seconds: float | None, case_timeout: float,
                  out: Path, stop: threading.Event) -> dict[str, FuzzOutcome]:
    """Fuzz each adapter; write OUT/fuzz.toml (replayable) and OUT/results.jsonl."""
    from conformance.execution.outdir import write_atomic
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


def cmd_fuzz(args) -> int:
    import threading

    from conformance.execution.adapter_refs import resolve
    from conformance.execution.outdir import OutputFolder
    from conformance.execution.runner import DEFAULT_CASE_TIMEOUT_S

    if args.budget is not None and args.time is not None:
        raise UsageError("give --budget or --time, not both")
    adapters = resolve(select_adapters(args))
    folder = OutputFolder(Path(args.out))
    folder.acquire("overwrite" if args.overwrite else "new")
    out = folder.path
    stop = threading.Event()
    try:
        folder.start("overwrite")
        with StopOnSignal(stop.set) as caught:
            found = fuzz_adapters(adapters, args.seed, args.budget or 200, args.time,
                                  args.timeout or DEFAULT_CASE_TIMEOUT_S, out, stop)
    finally:
        folder.release()
    for name, o in found.items():
        if o.broken:
            print(f"{name}: " + (f"{o.tried} examples; stopped without a verdict: " if o.tried else "could not be fuzzed: ")
                  + o.message)
        else:
            print(f"{name}: {o.tried} examples; " + (f"minimal failing case {o.case}: {o.message}" if o.case
                                                     else "no failure" + (f" ({o.message})" if o.message else "")))
    failed = [a for a in adapters if found[a.name].case]
    if failed:
        flags = " ".join(adapter_flag(a.ref) for a in failed)
        print(f"replay: {command_start(failed)} run --suite {shlex.quote(str((out / 'fuzz.toml').absolute()))} {flags} "
              "--out out/replay --overwrite")
        print(f"records: {out / 'results.jsonl'}")
    if caught.exit_code:
        return caught.exit_code
    return EXIT_FAIL if any(o.case or o.broken for o in found.values()) else EXIT_PASS
