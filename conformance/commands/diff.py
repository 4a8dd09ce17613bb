"""`conformance diff BASELINE CURRENT`: regressions, new and resolved findings; exit 1 on a regression."""
from __future__ import annotations

from pathlib import Path

from conformance.errors import UsageError
from conformance.execution.outdir import write_atomic

from conformance.commands.report import EXIT_FAIL, EXIT_PASS, gate


def cmd_diff(args) -> int:
    import json

    from conformance.execution.outdir import OutputFolder
    from conformance.reports.diff import diff, finding_labels, regressed, render_markdown, version_change_lines
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
    for line in version_change_lines(d):
        print(f"  version: {line.replace('→', '->')}")
    new, resolved = finding_labels(d)
    for f in d["new_findings"]:
        print(f"  {new}: {f['title']} [{', '.join(f['adapters'])}] ({f['class']}, {f['results']} results) {f['id']}")
    for f in d["resolved_findings"]:
        print(f"  {resolved}: {f['title']} [{', '.join(f['adapters'])}] {f['id']}")
    for r in d["regressions"][:20]:
        print(f"  regression: {r['adapter']} {r['case']} {r['check']}: {r['baseline']} -> {r['current']}")
    print(f"wrote {out / 'diff.md'}, {out / 'diff.json'}")
    return EXIT_FAIL if failed else EXIT_PASS
