"""The `conformance` command.  Exit 0: all pass; 1: failures; 2: the input was wrong."""
from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import time
from pathlib import Path

from conformance.adapters import BUILTIN
from conformance.errors import UsageError

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


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
    run.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes at once (default: CPU count)")
    run.add_argument("--timeout", type=float, default=None, help="seconds one case may take before its worker is killed")
    run.add_argument("--xfail", default=None, metavar="FILE", help="TOML list of known discrepancies (see README)")
    run.add_argument("--shard", default=None, metavar="K/N", help="run only the K-th of N deterministic slices of the cases")

    fz = sub.add_parser("fuzz", help="draw random cases with hypothesis, shrink failures to a minimal case")
    fz.add_argument("--adapters", default=None, help="comma-separated built-in adapters, or 'all'")
    fz.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS")
    fz.add_argument("--seed", type=int, default=0)
    fz.add_argument("--budget", type=int, default=None, help="examples per adapter (default 200)")
    fz.add_argument("--time", type=float, default=None, help="seconds per adapter: fuzz in rounds until spent")
    fz.add_argument("--out", default="out/fuzz")

    df = sub.add_parser("diff", help="compare results with a baseline; exit 1 on regressions")
    df.add_argument("baseline", help="baseline results.jsonl or its folder")
    df.add_argument("current", help="current results.jsonl or its folder")
    df.add_argument("--out", default=None, help="folder for diff.md and diff.json (default: beside CURRENT)")

    mg = sub.add_parser("merge", help="merge results of shards (or any runs) and render the reports")
    mg.add_argument("results", nargs="+", help="results.jsonl files or their folders")
    mg.add_argument("--out", required=True, help="folder for the merged results.jsonl and reports")

    sub.add_parser("list", help="list built-in adapters, whether they import, their versions, and the suites")

    rep = sub.add_parser("report", help="render reports from a results.jsonl")
    rep.add_argument("results", help="results.jsonl or the folder holding it")
    rep.add_argument("--out", default=None, help="folder for the reports (default: beside the results)")
    return p


def _select_adapters(args) -> list[str]:
    names = []
    if args.adapters:
        names = list(BUILTIN) if args.adapters == "all" else [a.strip() for a in args.adapters.split(",") if a.strip()]
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
        k, n = (int(v) for v in spec.split("/"))
        if not 1 <= k <= n:
            raise ValueError
    except ValueError:
        raise UsageError(f"--shard {spec!r} must be K/N with 1 <= K <= N, e.g. 2/4") from None
    return [c for c in cases if zlib.crc32(c.id.encode()) % n == k - 1]


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"output folder {path} is not writable ({exc.strerror or exc}); choose another with --out") from None
    return path


def cmd_run(args) -> int:
    from conformance.cases.suites import load_suite
    from conformance.reports.render import write_reports
    from conformance.reports.results import load_results, verdict
    from conformance.runner import DEFAULT_CASE_TIMEOUT_S, Progress, Runner, resolve
    from conformance.xfail import XfailList

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    # Validate every input before touching the output folder, so a typo loses nothing.
    adapters = resolve(_select_adapters(args))
    cases = shard(select_cases(load_suite(args.suite), args.case), args.shard)
    xfail = XfailList.load(Path(args.xfail)) if args.xfail else None
    out = _writable_dir(Path(args.out))
    start = time.monotonic()
    progress = Progress(len(cases) * len(adapters))
    print(f"running {len(cases)} cases x {len(adapters)} adapter(s) with {args.jobs} job(s) into {out}/", file=sys.stderr)
    Runner(out, args.jobs, args.timeout or DEFAULT_CASE_TIMEOUT_S, progress, xfail).run(adapters, cases)
    for e in xfail.unused() if xfail else []:
        print(f"warning: xfail entry matched no result: case={e.case!r} adapter={e.adapter!r} check={e.check!r}", file=sys.stderr)
    results = load_results(out / "results.jsonl")
    written = write_reports(results, out)
    print(f"{verdict(results)} ({time.monotonic() - start:.1f}s)")
    print("wrote " + ", ".join(str(p) for p in [out / "results.jsonl", *written]))
    return EXIT_FAIL if results.failing else EXIT_PASS


def cmd_fuzz(args) -> int:
    from conformance.runner import fuzz_adapters, resolve

    if args.budget is not None and args.time is not None:
        raise UsageError("give --budget or --time, not both")
    adapters = resolve(_select_adapters(args))
    out = _writable_dir(Path(args.out))
    found = fuzz_adapters(adapters, args.seed, args.budget or 200, args.time, out)
    for name, (tried, case_id, message) in found.items():
        print(f"{name}: {tried} examples; " + (f"minimal failing case {case_id}: {message}" if case_id else "no failure"))
    if any(case_id for _, case_id, _ in found.values()):
        print(f"replay: conformance run --suite {out / 'fuzz.toml'} --adapters ...; records in {out / 'results.jsonl'}")
        return EXIT_FAIL
    return EXIT_PASS


def cmd_diff(args) -> int:
    import json

    from conformance.reports.diff import diff, render_markdown
    from conformance.reports.results import load_results, results_path

    d = diff(load_results(Path(args.baseline)), load_results(Path(args.current)))
    out = _writable_dir(Path(args.out) if args.out else results_path(Path(args.current)).parent)
    (out / "diff.json").write_text(json.dumps(d, indent=1) + "\n")
    md = render_markdown(d)
    (out / "diff.md").write_text(md)
    print(md.splitlines()[2])
    for r in d["regressions"][:20]:
        print(f"  regression: {r['adapter']} {r['case']} {r['check']}: {r['baseline']} -> {r['current']}")
    print(f"wrote {out / 'diff.md'}, {out / 'diff.json'}")
    return EXIT_FAIL if d["regressions"] else EXIT_PASS


def cmd_merge(args) -> int:
    from conformance.reports.render import write_reports
    from conformance.reports.results import Results, load_results, verdict, write_jsonl

    parts = [load_results(Path(p)) for p in args.results]  # all readable before anything is written
    adapters, records = {}, {}
    for part in parts:
        adapters.update(part.adapters)
        for r in part.records:
            records[(r["adapter"], r["case"], r["check"])] = r
    out = _writable_dir(Path(args.out))
    write_jsonl(out / "results.jsonl", [*adapters.values(), *records.values()])
    merged = Results(list(records.values()), adapters)
    written = write_reports(merged, out)
    print(verdict(merged))
    print("wrote " + ", ".join(str(p) for p in [out / "results.jsonl", *written]))
    return EXIT_FAIL if merged.failing else EXIT_PASS


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
    from conformance.reports.render import write_reports
    from conformance.reports.results import load_results, results_path, verdict

    results = load_results(Path(args.results))
    out = _writable_dir(Path(args.out) if args.out else results_path(Path(args.results)).parent)
    written = write_reports(results, out)
    print(verdict(results))
    print("wrote " + ", ".join(map(str, written)))
    return EXIT_FAIL if results.failing else EXIT_PASS


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        return {"run": cmd_run, "fuzz": cmd_fuzz, "diff": cmd_diff, "merge": cmd_merge, "list": cmd_list, "report": cmd_report}[args.command](args)
    except UsageError as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("conformance: interrupted; results written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
