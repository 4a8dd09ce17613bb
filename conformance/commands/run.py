"""`conformance run`: a suite through adapters, into an output folder, with its reports and verdict."""
from __future__ import annotations

import fnmatch
import re
import sys
import time
from pathlib import Path

from conformance.adapters import ALL, BUILTIN, MODES
from conformance.errors import UsageError
from conformance.execution.executor import Executor, LocalExecutor
from conformance.execution.interrupt import StopOnSignal
from conformance.commands.report import gate, render, summary_target

EXIT_LOST = 3  # the Ray cluster was lost mid-run: what finished is kept and reported, --resume continues


def select_adapters(args) -> list[str]:
    names = []
    if args.adapters is not None:
        groups = {"all": ALL, "modes": MODES}
        names = list(groups[args.adapters]) if args.adapters in groups else [
            a.strip() for a in args.adapters.split(",") if a.strip()]
        if not names and not args.adapter:
            raise UsageError(f"--adapters {args.adapters!r} names no adapter: give built-in names, 'all', 'modes', "
                             "or --adapter module:Class")
        for n in names:
            if n not in BUILTIN:
                raise UsageError(f"unknown built-in adapter {n!r}: choose from {', '.join(BUILTIN)} (or use --adapter module:Class)")
    elif not args.adapter:
        names = list(ALL)
    from conformance.execution.loading import function_ref

    return names + [function_ref(ref, getattr(args, "function", None)) for ref in args.adapter]


def select_cases(cases, patterns: list[str]):
    """Cases whose id matches any pattern; a plain id not in the suite is run as given."""
    from conformance.cases.case import parse_case

    if not patterns:
        return cases
    chosen = [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]
    known = {c.id for c in chosen}
    for p in patterns:
        if not any(ch in p for ch in "*?[") and p not in known:
            try:
                chosen.append(parse_case(p))
            except ValueError as exc:
                raise UsageError(f"--case {p!r} matches no case of the suite and is not a case id: {exc}") from None
    if not chosen:
        raise UsageError(f"no case of the suite matches {patterns}; `conformance run --case` takes globs over case ids")
    return chosen


def shard(cases, spec: str | None):
    """The K-th of N slices (1-based), by a hash of the case id: stable whatever the order."""
    import zlib

    if not spec:
        return cases
    try:
        if not re.fullmatch(r"[0-9]+/[0-9]+", spec):
            raise ValueError
        k, n = (int(v) for v in spec.split("/"))
        if not 1 <= k <= n:
            raise ValueError
    except ValueError:
        raise UsageError(f"--shard {spec!r} must be K/N with 1 <= K <= N, e.g. 2/4") from None
    return [c for c in cases if zlib.crc32(c.id.encode()) % n == k - 1]


def version_plan(args) -> tuple[tuple, tuple[str, ...], str | None]:
    """(requirements, pip arguments, interpreter) of --with, --pip-arg and --python, checked
    without asking the index (docs/versions.md)."""
    from conformance.execution import overlays

    reqs = overlays.check(tuple(overlays.Requirement.parse(t) for t in getattr(args, "with_", [])),
                          tuple(getattr(args, "pip_arg", [])))
    if getattr(args, "pip_arg", []) and not reqs:
        raise UsageError("--pip-arg is passed to pip when it builds an overlay: give --with PKG==VERSION too")
    python = getattr(args, "python", None)
    if getattr(args, "executor", "local") == "ray" and (reqs or python):
        raise UsageError(f"--{'with' if reqs else 'python'} is not supported with --executor ray (the overlay or "
                         "interpreter would have to exist on every node): run locally, or install the versions "
                         "in the nodes' environment")
    return reqs, tuple(getattr(args, "pip_arg", [])), check_python(python) if python else None


def check_python(path: str) -> str | None:
    """--python PATH, absolute, once `PATH -c "import conformance"` works as a worker's would
    (None: it is this interpreter); UsageError (one line) otherwise."""
    import os
    import shutil
    import subprocess

    found = path if os.sep in path else shutil.which(path)
    if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise UsageError(f"--python {path}: no such executable; give the path of a Python interpreter")
    found = os.path.abspath(found)
    if found == os.path.abspath(sys.executable):
        return None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in [os.getcwd(), *os.environ.get("PYTHONPATH", "").split(os.pathsep)] if p)}
    try:
        # `import conformance` alone would find this folder's package from the current folder; a worker
        # needs the installed one (conformance.adapters) and its dependencies (numpy).
        p = subprocess.run([found, "-c", "import conformance, conformance.adapters, conformance.execution.worker"],
                           capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"--python {path}: it does not run ({type(exc).__name__}: {exc})") from None
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1][:200]
        raise UsageError(f"--python {path}: `{path} -c 'import conformance'` fails ({last}); install this project "
                         "there (pip install -e .) or put it on PYTHONPATH")
    return found


def apply_versions(plan, adapters, cache_dir, stack) -> list:
    """The adapters run by the plan's interpreter with its overlay (built or reused now, before
    the output folder is touched; under --no-cache in a folder removed after the run)."""
    import tempfile

    from conformance.execution import overlays
    from conformance.execution.adapter_refs import with_overlay, with_python

    reqs, pip_args, python = plan
    adapters = with_python(adapters, python)
    if not reqs:
        return adapters
    where = cache_dir if cache_dir is not None else Path(stack.enter_context(
        tempfile.TemporaryDirectory(prefix="conformance-overlay-")))
    start = time.monotonic()
    print(f"overlay {' '.join(map(str, reqs))}: preparing it in {overlays.root(where)}/", file=sys.stderr, flush=True)
    folder = overlays.overlay(reqs, where, pip_args, python or sys.executable)
    stack.enter_context(overlays.hold(folder))  # prune leaves it alone while the run uses it
    for note in (overlays.read_marker(folder) or {}).get("notes", []):
        print(f"warning: overlay: {note}", file=sys.stderr)
    print(f"overlay: {overlays.describe(folder)} in {folder} ({time.monotonic() - start:.1f}s)", file=sys.stderr)
    return with_overlay(adapters, folder)


def cmd_run(args) -> int:
    import contextlib

    with contextlib.ExitStack() as stack:  # what the run's overlay needs until it ends
        return _cmd_run(args, stack)


def _cmd_run(args, stack) -> int:
    from conformance.execution import cache, schedule
    from conformance.execution.adapter_refs import place, resolve, with_cache
    from conformance.cases.suites import load_suite
    from conformance.execution.outdir import OutputFolder
    from conformance.reports.results import write_jsonl
    from conformance.execution.resume import ResumePlan, plan_resume, run_record
    from conformance.execution.runner import DEFAULT_CASE_TIMEOUT_S, Progress, Runner
    from conformance.accept import AcceptList, InOrder
    from conformance.xfail import XfailList

    # Validate every input before touching the output folder, so a typo loses nothing.
    cache_dir = None if args.no_cache else cache.prepare(Path(args.cache_dir) if args.cache_dir else cache.default_folder())
    plan = version_plan(args)
    adapters = with_cache(place(resolve(select_adapters(args)), args.device), cache_dir)
    cases = shard(select_cases(load_suite(args.suite), args.case), args.shard)
    if not cases:
        raise UsageError(f"--shard {args.shard} selects none of the suite's cases: nothing to run")
    xfail = XfailList.load(Path(args.xfail)) if args.xfail else None
    accept = AcceptList.load(Path(args.accept)) if getattr(args, "accept", None) else None
    known = InOrder(tuple(k for k in (accept, xfail) if k)) if accept or xfail else None  # as each case is written
    summary = summary_target(args)
    history = schedule.load(cache_dir)  # an unusable timings.json is a warning, before the folder is touched
    adapters = apply_versions(plan, adapters, cache_dir, stack)  # --with, --python: before the folder is touched
    mode = "resume" if args.resume else "overwrite" if args.overwrite else "new"
    folder = OutputFolder(Path(args.out))
    executor = _executor(args)
    folder.acquire(mode)
    try:
        with StopOnSignal(lambda: None) as starting:  # a signal while Ray starts stops the run once it is up
            executor.connect()  # Ray starts only for a run that can write its folder (~3 s, and its notices)
        record = run_record(args.suite, cases, [a.name for a in adapters])
        previous = folder.previous_run() if mode == "resume" else None
        plan = plan_resume(previous, record) if previous else ResumePlan([record], frozenset(), {})
        folder.start(mode)
        todo = len(cases) * len(adapters) - len(plan.done)
        jobs = args.jobs or executor.cpus
        on = executor.where()
        print(f"running {len(cases)} cases x {len(adapters)} adapter(s) with {jobs} job(s){on} into {folder.path}/"
              + (f" (resuming: {len(plan.done)} done, {todo} to go)" if previous else ""), file=sys.stderr)
        start = time.monotonic()
        write_jsonl(folder.partial, plan.head)  # atomically: a resumed file is replaced, never emptied
        runner = Runner(folder.path, jobs, args.timeout or DEFAULT_CASE_TIMEOUT_S, Progress(todo), known,
                        results_file=folder.partial.name, append=True, previous_versions=plan.versions,
                        share=not args.isolate_adapters, history=history, executor=executor,
                        share_with_builtins=args.share_with_builtins)
        with StopOnSignal(runner.stop, pending=starting.signum) as caught:
            runner.run(adapters, cases, plan.done)
            on = executor.summary()
            print(f"{runner.worker_starts} worker process(es) started for {len(adapters)} adapter(s){on}", file=sys.stderr)
            schedule.save(cache_dir, runner.seconds, runner.cases_run)
            if runner.writer.error:
                raise UsageError(f"cannot write {folder.partial}: {runner.writer.error.strerror or runner.writer.error}; "
                                 "the results written before are kept there (free space, then --resume)")
            if runner.version_mismatch:
                raise UsageError(f"--resume: versions differ ({runner.version_mismatch}); use --overwrite to start over")
            if xfail and xfail.names_findings and not _stopped(caught, executor) and folder.partial.exists():
                xfail.apply_defects(folder.partial, gate(args))  # the run's defects are known now
            for e in xfail.unused() if xfail and not _stopped(caught, executor) else []:
                print(f"warning: xfail entry matched no result: {e.describe()}", file=sys.stderr)
            for e in accept.unused() if accept and not _stopped(caught, executor) else []:
                print(f"warning: accept entry matched no result: {e.describe()}", file=sys.stderr)
            # A fresh run stopped before its first result has nothing to replace the previous run with;
            # a resumed one still holds the records it carried over, so it finishes as usual.
            if _stopped(caught, executor) and mode != "resume" and folder.results.exists() and not runner.wrote_results:
                folder.discard()  # nothing to replace the previous run with: keep it, and its reports
                print(f"stopped before any result; the previous run in {folder.path} is kept", file=sys.stderr)
                return render(folder.results, folder.path, gate(args), exit_code=_stopped(caught, executor),
                              summary=summary)
            folder.finish()
            lost = f"; {executor.lost}: --resume continues" if executor.lost else ""
            return render(folder.results, folder.path, gate(args), f" ({time.monotonic() - start:.1f}s){lost}",
                          _stopped(caught, executor), summary=summary)
    finally:
        folder.release()
        if executor.connected:
            executor.close()


def _stopped(caught: StopOnSignal, executor: Executor) -> int | None:
    """The exit code of a run stopped early: 128 + the signal, or EXIT_LOST when what its workers ran
    on went away (a Ray cluster lost mid-run); None for a run that went to its end."""
    return caught.exit_code or (EXIT_LOST if executor.lost else None)


def _executor(args) -> Executor:
    """The executor --executor names (execution/executor.py), not yet connected."""
    if args.executor != "ray":
        if args.ray_address:
            raise UsageError("--ray-address needs --executor ray")
        return LocalExecutor()
    if args.device != "cpu":
        raise UsageError("--executor ray runs on the CPU of its nodes: --device is not supported with it yet")
    from conformance.execution.ray_executor import RayExecutor


    return RayExecutor(args.ray_address, args.jobs)
