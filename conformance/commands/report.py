"""`conformance report`, and the rendering with the verdict that `run`, `merge` share; the exit codes."""
from __future__ import annotations

from pathlib import Path

from conformance.errors import UsageError
from conformance.execution.outdir import write_atomic

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


def cmd_report(args) -> int:
    from conformance.execution.outdir import OutputFolder
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
