"""The commands that run adapters: `run`, `fuzz`, `repro`, `list` (parsed in cli.py)."""
from __future__ import annotations

import fnmatch
import os
import re
import sys
import time
from pathlib import Path

from conformance.adapters import ALL, BUILTIN, MODES
from conformance.errors import UsageError
from conformance.interrupt import StopOnSignal
from conformance.result_commands import EXIT_FAIL, EXIT_PASS, gate, render


def _select_adapters(args) -> list[str]:
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
    return names + args.adapter


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


def cmd_run(args) -> int:
    from conformance import cache, schedule
    from conformance.adapter_refs import place, resolve, with_cache
    from conformance.cases.suites import load_suite
    from conformance.outdir import OutputFolder
    from conformance.reports.results import write_jsonl
    from conformance.resume import ResumePlan, plan_resume, run_record
    from conformance.runner import DEFAULT_CASE_TIMEOUT_S, Progress, Runner
    from conformance.xfail import XfailList

    # Validate every input before touching the output folder, so a typo loses nothing.
    cache_dir = None if args.no_cache else cache.prepare(Path(args.cache_dir) if args.cache_dir else cache.default_folder())
    adapters = with_cache(place(resolve(_select_adapters(args)), args.device), cache_dir)
    cases = shard(select_cases(load_suite(args.suite), args.case), args.shard)
    if not cases:
        raise UsageError(f"--shard {args.shard} selects none of the suite's cases: nothing to run")
    xfail = XfailList.load(Path(args.xfail)) if args.xfail else None
    mode = "resume" if args.resume else "overwrite" if args.overwrite else "new"
    folder = OutputFolder(Path(args.out))
    executor = _executor(args)
    folder.acquire(mode)
    try:
        if executor:  # Ray starts only for a run that can write its folder (~3 s, and its notices)
            executor.connect()
        record = run_record(args.suite, cases, [a.name for a in adapters])
        previous = folder.previous_run() if mode == "resume" else None
        plan = plan_resume(previous, record) if previous else ResumePlan([record], frozenset(), {})
        folder.start(mode)
        todo = len(cases) * len(adapters) - len(plan.done)
        jobs = args.jobs or (executor.cpus if executor else os.cpu_count() or 1)
        on = f" on Ray ({args.ray_address or 'a local instance'}, {executor.cpus} CPUs)" if executor else ""
        print(f"running {len(cases)} cases x {len(adapters)} adapter(s) with {jobs} job(s){on} into {folder.path}/"
              + (f" (resuming: {len(plan.done)} done, {todo} to go)" if previous else ""), file=sys.stderr)
        start = time.monotonic()
        write_jsonl(folder.partial, plan.head)  # atomically: a resumed file is replaced, never emptied
        runner = Runner(folder.path, jobs, args.timeout or DEFAULT_CASE_TIMEOUT_S, Progress(todo), xfail,
                        results_file=folder.partial.name, append=True, previous_versions=plan.versions,
                        share=not args.isolate_adapters, history=schedule.load(cache_dir), executor=executor)
        with StopOnSignal(runner.stop) as caught:
            runner.run(adapters, cases, plan.done)
            on = f" on {executor.actors} Ray actor(s)" if executor else ""
            print(f"{runner.worker_starts} worker process(es) started for {len(adapters)} adapter(s){on}", file=sys.stderr)
            schedule.save(cache_dir, runner.seconds, runner.cases_run)
            if runner.writer.error:
                raise UsageError(f"cannot write {folder.partial}: {runner.writer.error.strerror or runner.writer.error}; "
                                 "the results written before are kept there (free space, then --resume)")
            if runner.version_mismatch:
                raise UsageError(f"--resume: versions differ ({runner.version_mismatch}); use --overwrite to start over")
            for e in xfail.unused() if xfail and not caught.signum else []:
                print(f"warning: xfail entry matched no result: case={e.case!r} adapter={e.adapter!r} check={e.check!r}", file=sys.stderr)
            # A fresh run stopped before its first result has nothing to replace the previous run with;
            # a resumed one still holds the records it carried over, so it finishes as usual.
            if caught.signum and mode != "resume" and folder.results.exists() and not runner.wrote_results:
                folder.discard()  # nothing to replace the previous run with: keep it, and its reports
                print(f"stopped before any result; the previous run in {folder.path} is kept", file=sys.stderr)
                return render(folder.results, folder.path, gate(args), exit_code=caught.exit_code)
            folder.finish()
            return render(folder.results, folder.path, gate(args), f" ({time.monotonic() - start:.1f}s)",
                          caught.exit_code)
    finally:
        folder.release()
        if executor and executor.connected:
            executor.close()


def _executor(args):
    """None for local workers; a RayExecutor connected to Ray for --executor ray."""
    if args.executor != "ray":
        if args.ray_address:
            raise UsageError("--ray-address needs --executor ray")
        return None
    if args.device != "cpu":
        raise UsageError("--executor ray runs on the CPU of its nodes: --device is not supported with it yet")
    from conformance.ray_executor import RayExecutor

    return RayExecutor(args.ray_address, args.jobs)


def cmd_fuzz(args) -> int:
    import threading

    from conformance.adapter_refs import resolve
    from conformance.fuzz_run import fuzz_adapters
    from conformance.outdir import OutputFolder
    from conformance.runner import DEFAULT_CASE_TIMEOUT_S

    if args.budget is not None and args.time is not None:
        raise UsageError("give --budget or --time, not both")
    adapters = resolve(_select_adapters(args))
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
    if any(o.case for o in found.values()):
        print(f"replay: conformance run --suite {out / 'fuzz.toml'} --adapters ...; records in {out / 'results.jsonl'}")
    if caught.exit_code:
        return caught.exit_code
    return EXIT_FAIL if any(o.case or o.broken for o in found.values()) else EXIT_PASS


def cmd_repro(args) -> int:
    from conformance.adapter_refs import LOAD_TIMEOUT_S, resolve, worker_env
    from conformance.cases.case import parse_case
    from conformance.cases.invalid import Invalid
    from conformance.outdir import OutputFolder
    from conformance.repro import run

    try:
        case = parse_case(args.case)
    except ValueError as exc:
        raise UsageError(f"{exc}") from None
    if isinstance(case, Invalid):
        raise UsageError(f"{args.case} is an invalid configuration: there is no formula to reproduce against")
    (adapter,) = resolve([args.adapter])
    folder = OutputFolder(Path(args.out))
    folder.acquire("overwrite" if args.overwrite else "new")
    try:
        result = run((adapter.ref, worker_env(adapter)), case.id, folder.path, LOAD_TIMEOUT_S)
    finally:
        folder.release()
    if "error" in result:
        print(f"{adapter.name}: {result['error']}")
        return EXIT_FAIL
    print(f"wrote {folder.path / 'inputs.npz'}, {result['script']}")
    if "raised" in result:
        print(f"{adapter.name} raises {result['raised'].splitlines()[0]} (repro.py raises the same when it reproduces "
              "the adapter)")
    else:
        print(f"{adapter.name} output: {result['dtype']}, sha256 {result['sha256']} (repro.py prints the same when "
              "it reproduces the adapter)")
    print(f"run it: python {result['script']}")
    return EXIT_PASS


def _installed(packages: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """({package: version} from the distributions' metadata, [missing packages]); imports nothing."""
    from importlib import metadata

    found, missing = {}, []
    for choice in packages:
        for dist in choice.split("|"):
            try:
                found[dist] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            missing.append(choice)
    return found, missing


def cmd_list(args) -> int:
    """Built-in adapters with the versions their packages' metadata gives (fast, no framework
    imported), or with `--check`, whether each really loads in its own worker (slow)."""
    from conformance.adapter import import_adapter
    from conformance.cases.suites import SUITES
    from conformance.devices import ACCELERATOR

    checked = {}
    if args.check:
        from conformance.runner import probe

        checked = probe(list(BUILTIN))
    print("adapters:" + ("" if args.check else "  (versions from package metadata; --check loads each)"))
    for name in BUILTIN:
        cls = import_adapter(name)
        family = getattr(cls, "device_family", None)
        usable = "cpu" + (f",{ACCELERATOR[family]}" if family in ACCELERATOR else "")
        if args.check:
            ok, info = checked[name]
        else:
            found, missing = _installed(cls.packages)
            ok = not missing
            info = ", ".join(f"{k} {v}" for k, v in found.items()) + (f"; missing {', '.join(missing)}" if missing else "")
        print(f"  {'ok  ' if ok else 'FAIL'} {name:20s} devices {usable:9s} {info}")
    print("suites: " + ", ".join(f"{n} ({len(f())} cases)" for n, f in SUITES.items()))
    return EXIT_PASS


def cmd_show(args) -> int:
    """A case's inputs, as the adapters get them, and the oracle's outputs, for a hand check."""
    import numpy as np

    from conformance.cases.case import Case, materialize, parse_case
    from conformance.oracle import oracle

    try:
        case = parse_case(args.case)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(case, Case):
        raise UsageError(f"{args.case} is an invalid configuration: it has no arrays to show")
    eps = case.epsilon if case.epsilon is not None else args.epsilon
    if eps is None:
        raise UsageError(f"{case.id} runs each implementation at its own default epsilon: give the one to use with --epsilon")
    arrays = materialize(case)
    ref = oracle(arrays.x, arrays.scale, arrays.dy, case.axes, eps)
    path = Path(args.out or case.id.replace("/", "_") + ".npz")
    bits = lambda a: a.view(np.uint16) if a.dtype.name == "bfloat16" else a  # noqa: E731  npz has no bfloat16
    try:
        np.savez(path, x=bits(arrays.x), scale=bits(arrays.scale), dy=bits(arrays.dy), y=ref.y, dx=ref.dx,
                 dscale=ref.dscale)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"{case.id}: shape {case.shape}, axes {list(case.axes)} (requested {list(case.axis)}), epsilon {eps:g}, "
          f"dtype {case.dtype}")
    for name, a in (("x", arrays.x), ("scale", arrays.scale), ("dy", arrays.dy), ("y (oracle)", ref.y),
                    ("dx (oracle)", ref.dx), ("dscale (oracle)", ref.dscale)):
        v = np.asarray(a, np.float64)
        finite = v[np.isfinite(v)]
        stats = f"min {finite.min():.6g}, max {finite.max():.6g}, mean {finite.mean():.6g}" if finite.size else "no finite values"
        print(f"  {name:16s} {a.dtype.name:9s} {str(a.shape):14s} {stats}" + (f", {v.size - finite.size} non-finite"
                                                                             if finite.size < v.size else ""))
    print(f"wrote {path} (bfloat16 arrays as their 16 bits: view them as ml_dtypes.bfloat16)")
    return EXIT_PASS
