"""The `conformance` command.  Exit 0: all pass; 1: failures; 2: the input was wrong."""
from __future__ import annotations

import argparse
import fnmatch
import math
import os
import re
import signal
import sys
import time
from pathlib import Path

from conformance.adapters import BUILTIN
from conformance.errors import UsageError
from conformance.interrupt import StopOnSignal
from conformance.outdir import write_atomic
from conformance.procs import become_subreaper, reap_strays

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _number(kind, low: float, high: float, low_open: bool = False):
    """An argparse type: a finite `kind` in [low, high] (or (low, high] with low_open)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
            if kind is int:
                raise argparse.ArgumentTypeError(f"{text!r} must be an integer from {low} to {high}")
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number {bound} and <= {high:g}")
        return value
    parse.__name__ = "integer" if kind is int else "number"
    return parse


POSITIVE_SECONDS = _number(float, 0.0, 7 * 24 * 3600.0, low_open=True)
JOBS = _number(int, 1, 512)
BUDGET = _number(int, 1, 10**7)
SEED = _number(int, 0, 2**63 - 1)


def _classes(text: str) -> frozenset:
    """--fail-on: "all", or finding classes separated by commas."""
    from conformance.diagnose import CLASSES

    if text.strip() == "all":
        return frozenset(CLASSES)
    chosen = frozenset(c.strip() for c in text.split(",") if c.strip())
    unknown = sorted(chosen - set(CLASSES))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: give 'all' or classes from {', '.join(CLASSES)}")
    return chosen


SHARE = _number(float, 0.0, 1.0)


def _gating_options(p) -> None:
    p.add_argument("--fail-on", type=_classes, default=None, metavar="CLASSES",
                   help="finding classes that fail the run, comma-separated, or 'all' (default: all but range)")
    p.add_argument("--min-coverage", type=SHARE, default=0.0, metavar="P",
                   help="least share (0-1) of its checks each adapter must run (default 0: at least one pass)")


def _gate(args):
    from conformance.reports.findings import DEFAULT_FAIL_ON, Gate

    return Gate(args.fail_on if args.fail_on is not None else DEFAULT_FAIL_ON, args.min_coverage)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other input error
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="conformance", description="Cross-framework conformance suite for RMS normalization.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a suite through adapters and write results and reports")
    run.add_argument("--suite", default="standard", help="smoke, standard, exhaustive, or a .toml suite file")
    run.add_argument("--adapters", default=None, help="comma-separated built-in adapters, or 'all' (default: all, unless --adapter is given)")
    run.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS", help="your own adapter class (repeatable)")
    run.add_argument("--case", action="append", default=[], metavar="PATTERN", help="only cases whose id matches this glob, or a case id (repeatable)")
    run.add_argument("--out", default="out/run", help="output folder (default: out/run)")
    run.add_argument("--jobs", type=JOBS, default=os.cpu_count() or 1, help="worker processes at once (default: CPU count)")
    run.add_argument("--timeout", type=POSITIVE_SECONDS, default=None, help="seconds one case may take before its worker is killed (default 120)")
    run.add_argument("--xfail", default=None, metavar="FILE", help="TOML list of known discrepancies (see README)")
    run.add_argument("--shard", default=None, metavar="K/N", help="run only the K-th of N deterministic slices of the cases")
    again = run.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --out: only (adapter, case) pairs without results")
    again.add_argument("--overwrite", action="store_true", help="replace the run in --out (kept until this run has results)")
    _gating_options(run)

    fz = sub.add_parser("fuzz", help="draw random cases with hypothesis, shrink failures to a minimal case")
    fz.add_argument("--adapters", default=None, help="comma-separated built-in adapters, or 'all'")
    fz.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS")
    fz.add_argument("--seed", type=SEED, default=0)
    fz.add_argument("--budget", type=BUDGET, default=None, help="examples per adapter (default 200)")
    fz.add_argument("--time", type=POSITIVE_SECONDS, default=None, help="seconds per adapter: fuzz in rounds until spent")
    fz.add_argument("--timeout", type=POSITIVE_SECONDS, default=None, help="seconds one example may take (default 120)")
    fz.add_argument("--out", default="out/fuzz")
    fz.add_argument("--overwrite", action="store_true", help="replace what --out holds")

    df = sub.add_parser("diff", help="compare results with a baseline; exit 1 on regressions")
    df.add_argument("baseline", help="baseline results.jsonl or its folder")
    df.add_argument("current", help="current results.jsonl or its folder")
    df.add_argument("--out", default=None, help="folder for diff.md and diff.json (default: beside CURRENT)")
    df.add_argument("--salvage", action="store_true", help="drop a truncated last line (a run killed mid-write)")
    _gating_options(df)

    mg = sub.add_parser("merge", help="merge results of shards (or any runs) and render the reports")
    mg.add_argument("results", nargs="+", help="results.jsonl files or their folders")
    mg.add_argument("--out", required=True, help="folder for the merged results.jsonl and reports")
    mg.add_argument("--prefer", choices=("first", "last"), default=None,
                    help="which part wins where two disagree on one result (default: refuse)")
    mg.add_argument("--salvage", action="store_true", help="drop a truncated last line (a run killed mid-write)")
    mg.add_argument("--overwrite", action="store_true", help="replace the run --out holds")
    _gating_options(mg)

    rp = sub.add_parser("repro", help="write inputs.npz and repro.py: one case on one adapter, without the suite")
    rp.add_argument("case", help="a case id, e.g. f32/4x32/ax-1/eps1e-06/normal/rand/s0")
    rp.add_argument("--adapter", required=True, metavar="NAME|MODULE:CLASS", help="a built-in adapter or your own")
    rp.add_argument("--out", default="out/repro", help="folder for inputs.npz and repro.py (default: out/repro)")
    rp.add_argument("--overwrite", action="store_true", help="replace what --out holds")

    sub.add_parser("list", help="list built-in adapters, whether they import, their versions, and the suites")

    rep = sub.add_parser("report", help="render reports from a results.jsonl")
    rep.add_argument("results", help="results.jsonl or the folder holding it")
    rep.add_argument("--out", default=None, help="folder for the reports (default: beside the results)")
    rep.add_argument("--salvage", action="store_true", help="drop a truncated last line (a run killed mid-write)")
    rep.add_argument("--findings", default=None, metavar="FILE", help="also write the findings alone, as Markdown, to FILE")
    _gating_options(rep)
    return p


def _select_adapters(args) -> list[str]:
    names = []
    if args.adapters is not None:
        names = list(BUILTIN) if args.adapters == "all" else [a.strip() for a in args.adapters.split(",") if a.strip()]
        if not names and not args.adapter:
            raise UsageError(f"--adapters {args.adapters!r} names no adapter: give built-in names, 'all', or --adapter module:Class")
        for n in names:
            if n not in BUILTIN:
                raise UsageError(f"unknown built-in adapter {n!r}: choose from {', '.join(BUILTIN)} (or use --adapter module:Class)")
    elif not args.adapter:
        names = list(BUILTIN)
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
    from conformance.adapter_refs import resolve
    from conformance.cases.suites import load_suite
    from conformance.outdir import OutputFolder
    from conformance.reports.results import write_jsonl
    from conformance.resume import ResumePlan, plan_resume, run_record
    from conformance.runner import DEFAULT_CASE_TIMEOUT_S, Progress, Runner
    from conformance.xfail import XfailList

    # Validate every input before touching the output folder, so a typo loses nothing.
    adapters = resolve(_select_adapters(args))
    cases = shard(select_cases(load_suite(args.suite), args.case), args.shard)
    if not cases:
        raise UsageError(f"--shard {args.shard} selects none of the suite's cases: nothing to run")
    xfail = XfailList.load(Path(args.xfail)) if args.xfail else None
    mode = "resume" if args.resume else "overwrite" if args.overwrite else "new"
    folder = OutputFolder(Path(args.out))
    folder.acquire(mode)
    try:
        record = run_record(args.suite, cases, [a.name for a in adapters])
        previous = folder.previous_run() if mode == "resume" else None
        plan = plan_resume(previous, record) if previous else ResumePlan([record], frozenset(), {})
        folder.start(mode)
        todo = len(cases) * len(adapters) - len(plan.done)
        print(f"running {len(cases)} cases x {len(adapters)} adapter(s) with {args.jobs} job(s) into {folder.path}/"
              + (f" (resuming: {len(plan.done)} done, {todo} to go)" if previous else ""), file=sys.stderr)
        start = time.monotonic()
        write_jsonl(folder.partial, plan.head)  # atomically: a resumed file is replaced, never emptied
        runner = Runner(folder.path, args.jobs, args.timeout or DEFAULT_CASE_TIMEOUT_S, Progress(todo), xfail,
                        results_file=folder.partial.name, append=True, previous_versions=plan.versions)
        with StopOnSignal(runner.stop) as caught:
            runner.run(adapters, cases, plan.done)
            if runner.writer.error:
                raise UsageError(f"cannot write {folder.partial}: {runner.writer.error.strerror or runner.writer.error}; "
                                 "the results written before are kept there (free space, then --resume)")
            if runner.version_mismatch:
                raise UsageError(f"--resume: versions differ ({runner.version_mismatch}); use --overwrite to start over")
            for e in xfail.unused() if xfail and not caught.signum else []:
                print(f"warning: xfail entry matched no result: case={e.case!r} adapter={e.adapter!r} check={e.check!r}", file=sys.stderr)
            if caught.signum and folder.results.exists() and not runner.wrote_results:
                folder.discard()  # nothing to replace the previous run with: keep it, and its reports
                print(f"stopped before any result; the previous run in {folder.path} is kept", file=sys.stderr)
                return _render(folder.results, folder.path, _gate(args), exit_code=caught.exit_code)
            folder.finish()
            return _render(folder.results, folder.path, _gate(args), f" ({time.monotonic() - start:.1f}s)",
                           caught.exit_code)
    finally:
        folder.release()


def _render(results_file: Path, out: Path, gate, note: str = "", exit_code: int | None = None, results=None,
            report_only: bool = False) -> int:
    """Write the reports of a results file, print the verdict; the exit code of a run or report."""
    import dataclasses

    from conformance.reports.render import write_reports
    from conformance.reports.results import load_results, verdict

    results = dataclasses.replace(results, gate=gate) if results else load_results(results_file, gate=gate)
    try:
        written = write_reports(results, out)
    except OSError as exc:
        raise UsageError(f"cannot write the reports into {out}: {exc.strerror or exc}; the results are in "
                         f"{results_file} (`conformance report` renders them again)") from None
    print(f"{verdict(results)}{note}")
    for f in results.judgement.gating[:20]:
        print(f"  {f['class']}: {f['title']} [{', '.join(f['adapters'])}] ({f['results']} results)")
    print(f"gating: {results.gate.describe()} (--fail-on, --min-coverage)")
    print("wrote " + ", ".join(str(p) for p in [*([] if report_only else [results_file]), *written]))
    if exit_code is not None:
        return exit_code
    return EXIT_FAIL if results.failed else EXIT_PASS


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


def cmd_diff(args) -> int:
    import json

    from conformance.outdir import OutputFolder
    from conformance.reports.diff import diff, regressed, render_markdown
    from conformance.reports.results import load_results, results_path

    baseline = load_results(Path(args.baseline), args.salvage)
    current = load_results(Path(args.current), args.salvage)
    for what, path, r in (("baseline", args.baseline, baseline), ("current results", args.current, current)):
        if not r.records:
            raise UsageError(f"the {what} ({path}) hold no results: nothing to compare")
    d = diff(baseline, current)
    failed = regressed(d, _gate(args))
    if not d["compared"]:
        raise UsageError("the baseline and the current results share no (adapter, case, check): nothing to compare")
    folder = OutputFolder(Path(args.out) if args.out else results_path(Path(args.current)).parent)
    folder.acquire("render")
    try:
        out = folder.path
        write_atomic(out / "diff.json", json.dumps(d, indent=1) + "\n")
        md = render_markdown(d, failed)
        write_atomic(out / "diff.md", md)
    finally:
        folder.release()
    print(md.splitlines()[2])
    for f in d["new_findings"]:
        print(f"  new finding: {f['title']} [{', '.join(f['adapters'])}] ({f['class']}, {f['results']} results) {f['id']}")
    for f in d["resolved_findings"]:
        print(f"  resolved finding: {f['title']} [{', '.join(f['adapters'])}] {f['id']}")
    for r in d["regressions"][:20]:
        print(f"  regression: {r['adapter']} {r['case']} {r['check']}: {r['baseline']} -> {r['current']}")
    print(f"wrote {out / 'diff.md'}, {out / 'diff.json'}")
    return EXIT_FAIL if failed else EXIT_PASS


def cmd_merge(args) -> int:
    from conformance.outdir import OutputFolder
    from conformance.reports.merge import merge
    from conformance.reports.results import load_results, results_path, write_jsonl

    sources = [results_path(Path(p)) for p in args.results]
    folder = OutputFolder(Path(args.out))
    for src in sources:
        if src.resolve() == folder.results.resolve():
            raise UsageError(f"--out {args.out} would replace the input {src}; merge into another folder")
    parts = [(str(src), load_results(src, args.salvage)) for src in sources]  # all valid before anything is written
    merged = merge(parts, args.prefer)
    if not merged.records:
        raise UsageError("the inputs hold no results: nothing to merge")
    folder.acquire("overwrite" if args.overwrite else "new")
    try:
        folder.start("overwrite")
        write_jsonl(folder.results, [*([merged.run] if merged.run else []), *merged.adapters.values(), *merged.records])
        return _render(folder.results, folder.path, _gate(args), results=merged)
    finally:
        folder.release()


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
    print(f"{adapter.name} output: {result['dtype']}, sha256 {result['sha256']} (repro.py prints the same when it "
          "reproduces the adapter)")
    print(f"run it: python {result['script']}")
    return EXIT_PASS


def cmd_list(args) -> int:
    from conformance.cases.suites import SUITES
    from conformance.runner import probe

    print("adapters:")
    for name, (ok, info) in probe(list(BUILTIN)).items():
        state = "ok  " if ok else "FAIL"
        print(f"  {state} {name:18s} {info}")
    print("suites: " + ", ".join(f"{n} ({len(f())} cases)" for n, f in SUITES.items()))
    return EXIT_PASS


def cmd_report(args) -> int:
    from conformance.outdir import OutputFolder
    from conformance.reports.results import load_results, results_path

    path = results_path(Path(args.results))
    results = load_results(path, args.salvage)
    if not results.records:
        raise UsageError(f"{path} holds no results: nothing to report")
    folder = OutputFolder(Path(args.out) if args.out else path.parent)
    folder.acquire("render", beside=path)
    try:
        code = _render(path, folder.path, _gate(args), results=results, report_only=True)
        if args.findings:
            import dataclasses

            from conformance.reports.markdown import render_findings

            write_atomic(Path(args.findings), render_findings(dataclasses.replace(results, gate=_gate(args))))
            print(f"wrote {args.findings}")
        return code
    finally:
        folder.release()


class _Terminated(Exception):
    """SIGTERM outside a run's own handling (conformance/interrupt.py)."""


def _terminate(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    become_subreaper()  # what an adapter starts stays ours to find and stop (conformance/procs.py)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args = _parser().parse_args(argv)
        commands = {"run": cmd_run, "fuzz": cmd_fuzz, "diff": cmd_diff, "merge": cmd_merge, "list": cmd_list,
                    "report": cmd_report, "repro": cmd_repro}
        return commands[args.command](args)
    except UsageError as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a user's path we could not read or write, found late (a full disk)
        print(f"conformance: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, _Terminated) as exc:
        print("conformance: interrupted; files already written are kept, none is half written", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        reap_strays(set())  # e.g. what a user module started while its class was being read


if __name__ == "__main__":
    sys.exit(main())
