"""`conformance report`, and the rendering with the verdict (and the CI summary) that `run`, `merge` share; the exit codes."""
from __future__ import annotations

from pathlib import Path

from conformance.errors import UsageError
from conformance.execution.outdir import write_atomic

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def gate(args):
    from conformance.reports.findings import DEFAULT_FAIL_ON, Gate

    return Gate(args.fail_on if args.fail_on is not None else DEFAULT_FAIL_ON, args.min_coverage,
                getattr(args, "strict_xfail", False))


SUMMARY_ENV = "GITHUB_STEP_SUMMARY"  # GitHub Actions' job summary file, appended to where --summary is not given


def summary_target(args) -> tuple[Path, bool] | None:
    """Where `run` and `report` write their CI summary: (--summary FILE, replaced) or
    ($GITHUB_STEP_SUMMARY, appended to), or None; UsageError for a FILE that cannot be one (asked
    before a run starts)."""
    import os

    if getattr(args, "summary", None):
        path = Path(args.summary)
        if path.is_dir() or not path.parent.is_dir():
            raise UsageError(f"--summary {args.summary}: " + ("is a folder" if path.is_dir() else
                             f"the folder {path.parent} does not exist") + "; give a file path for the Markdown summary")
        return path, False
    return (Path(os.environ[SUMMARY_ENV]), True) if os.environ.get(SUMMARY_ENV) else None


def write_summary(results, target: tuple[Path, bool]) -> Path | None:
    """The verdict, defects, findings and scoreboard as Markdown (reports/markdown.py); a
    $GITHUB_STEP_SUMMARY that cannot be appended to is a warning (the verdict stands), a
    --summary FILE that cannot be written an input error."""
    import sys

    from conformance.reports.markdown import render_summary

    path, append = target
    text = render_summary(results)
    try:
        if append:
            with open(path, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        else:
            write_atomic(path, text)
    except OSError as exc:
        if append:
            print(f"warning: cannot append the summary to ${SUMMARY_ENV} ({path}): {exc.strerror or exc}",
                  file=sys.stderr)
            return None
        raise UsageError(f"cannot write the summary {path}: {exc.strerror or exc}") from None
    return path


def render(results_file: Path, out: Path, policy, note: str = "", exit_code: int | None = None, results=None,
           report_only: bool = False, summary: tuple[Path, bool] | None = None) -> int:
    """Write the reports of a results file under the gating `policy` (and the CI summary to
    `summary`, summary_target), print the verdict; the exit code of a run or report."""
    import dataclasses
    import sys

    from conformance.reports.deviations import beyond_accepted, stale_xfail
    from conformance.reports.render import write_reports
    from conformance.reports.results import load_results, verdict

    results = dataclasses.replace(results, gate=policy) if results else load_results(results_file, gate=policy)
    for entry, reason, n in stale_xfail(results):
        print(f"warning: stale xfail entry: {entry}: all {n} of its results pass (xpass); drop it ({reason})",
              file=sys.stderr)
    try:
        written = write_reports(results, out)
    except OSError as exc:
        raise UsageError(f"cannot write the reports into {out}: {exc.strerror or exc}; the results are in "
                         f"{results_file} (`conformance report` renders them again)") from None
    print(f"{verdict(results)}{note}")
    for f in results.judgement.gating[:20]:
        print(f"  {f['class']}: {f['title']} [{', '.join(f['adapters'])}] ({f['results']} results)")
    for r in results.judgement.xpassed[:20]:
        print(f"  xpass (--strict-xfail): {r['adapter']} {r['case']} {r['check']}: {r.get('message', '')}")
    for r in beyond_accepted(results)[:20]:
        print(f"  beyond an accepted bound: {r['adapter']} {r['case']} {r['check']}: {r['why']}")
    print(f"gating: {results.gate.describe()} (--fail-on, --min-coverage)")
    written += [p for p in [write_summary(results, summary) if summary else None] if p]
    print("wrote " + ", ".join(str(p) for p in [*([] if report_only else [results_file]), *written]))
    if exit_code is not None:
        return exit_code
    return EXIT_FAIL if results.failed else EXIT_PASS


def cmd_report(args) -> int:
    from conformance.execution.outdir import OutputFolder
    from conformance.reports.results import load_results, results_path

    path = results_path(Path(args.results))
    results = load_results(path, args.salvage, gate(args))
    if not results.records:
        raise UsageError(f"{path} holds no results: nothing to report")
    if args.accept:  # judged again: the file's acceptances are replaced by this list's
        import dataclasses

        from conformance.accept import AcceptList

        results = dataclasses.replace(results, records=AcceptList.load(Path(args.accept)).apply(results.records))
    folder = OutputFolder(Path(args.out) if args.out else path.parent)
    folder.acquire("render", beside=path)
    try:
        code = render(path, folder.path, results.gate, results=results, report_only=True, summary=summary_target(args))
        if args.findings:
            from conformance.reports.markdown import render_findings

            write_atomic(Path(args.findings), render_findings(results))
            print(f"wrote {args.findings}")
        return code
    finally:
        folder.release()
