"""The commands that read results files: `report`, `diff`, `merge`, and the rendering
with the verdict that `run` shares (parsed in cli.py)."""
from __future__ import annotations

from pathlib import Path

from conformance.errors import UsageError
from conformance.outdir import write_atomic

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def gate(args):
    from conformance.reports.findings import DEFAULT_FAIL_ON, Gate

    return Gate(args.fail_on if args.fail_on is not None else DEFAULT_FAIL_ON, args.min_coverage)


def render(results_file: Path, out: Path, policy, note: str = "", exit_code: int | None = None, results=None,
           report_only: bool = False) -> int:
    """Write the reports of a results file under the gating `policy`, print the verdict; the exit
    code of a run or report."""
    import dataclasses

    from conformance.reports.render import write_reports
    from conformance.reports.results import load_results, verdict

    results = dataclasses.replace(results, gate=policy) if results else load_results(results_file, gate=policy)
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


def cmd_diff(args) -> int:
    import json

    from conformance.outdir import OutputFolder
    from conformance.reports.diff import diff, finding_labels, regressed, render_markdown
    from conformance.reports.results import load_results, results_path

    baseline = load_results(Path(args.baseline), args.salvage)
    current = load_results(Path(args.current), args.salvage)
    for what, path, r in (("baseline", args.baseline, baseline), ("current results", args.current, current)):
        if not r.records:
            raise UsageError(f"the {what} ({path}) hold no results: nothing to compare")
    d = diff(baseline, current)
    failed = regressed(d, gate(args))
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
    new, resolved = finding_labels(d)
    for f in d["new_findings"]:
        print(f"  {new}: {f['title']} [{', '.join(f['adapters'])}] ({f['class']}, {f['results']} results) {f['id']}")
    for f in d["resolved_findings"]:
        print(f"  {resolved}: {f['title']} [{', '.join(f['adapters'])}] {f['id']}")
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
        return render(folder.results, folder.path, gate(args), results=merged)
    finally:
        folder.release()


def cmd_report(args) -> int:
    from conformance.outdir import OutputFolder
    from conformance.reports.results import load_results, results_path

    path = results_path(Path(args.results))
    results = load_results(path, args.salvage, gate(args))
    if not results.records:
        raise UsageError(f"{path} holds no results: nothing to report")
    folder = OutputFolder(Path(args.out) if args.out else path.parent)
    folder.acquire("render", beside=path)
    try:
        code = render(path, folder.path, results.gate, results=results, report_only=True)
        if args.findings:
            from conformance.reports.markdown import render_findings

            write_atomic(Path(args.findings), render_findings(results))
            print(f"wrote {args.findings}")
        return code
    finally:
        folder.release()
