"""`conformance diff BASELINE CURRENT`: regressions, new and resolved findings; exit 1 on a regression."""
from __future__ import annotations

from pathlib import Path

from conformance.errors import UsageError
from conformance.execution.outdir import write_atomic

from conformance.commands.report import EXIT_FAIL, EXIT_PASS, gate

REGRESSIONS_PRINTED = 50  # on the console; diff.md lists every one


def renames(pairs: list[str], baseline, current) -> dict[str, str]:
    """--rename OLD=NEW (repeatable): the baseline's adapter OLD is the current results' NEW;
    UsageError (one line) for a malformed pair or a name neither side has."""
    names: dict[str, str] = {}
    old_names = {r["adapter"] for r in baseline.records}
    new_names = {r["adapter"] for r in current.records}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new or "=" in new:
            raise UsageError(f"--rename {pair!r} must be OLD=NEW: the baseline's adapter name, '=', the current one's "
                             "(e.g. --rename mykernel-v1=mykernel-v2)")
        if old in names:
            raise UsageError(f"--rename {pair!r}: {old!r} is renamed twice")
        if old not in old_names:
            raise UsageError(f"--rename {pair!r}: the baseline has no adapter {old!r} (it has {', '.join(sorted(old_names))})")
        if new not in new_names:
            raise UsageError(f"--rename {pair!r}: the current results have no adapter {new!r} "
                             f"(they have {', '.join(sorted(new_names))})")
        names[old] = new
    targets = list(names.values())
    clash = sorted({n for n in targets if targets.count(n) > 1}
                   | {n for n in targets if n in old_names and n not in names})
    if clash:
        raise UsageError(f"--rename: {', '.join(clash)} would be two of the baseline's adapters at once; rename "
                         "each baseline adapter to a name no other one has")
    return names


def cmd_diff(args) -> int:
    import json

    from conformance.execution.outdir import OutputFolder
    from conformance.reports.diff import diff, finding_labels, regressed, render_markdown, renamed, version_change_lines
    from conformance.reports.results import load_results, results_path

    baseline = load_results(Path(args.baseline), args.salvage)
    current = load_results(Path(args.current), args.salvage)
    for what, path, r in (("baseline", args.baseline, baseline), ("current results", args.current, current)):
        if not r.records:
            raise UsageError(f"the {what} ({path}) hold no results: nothing to compare")
    d = diff(renamed(baseline, renames(args.rename, baseline, current)), current)
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
    for r in d["regressions"][:REGRESSIONS_PRINTED]:
        print(f"  regression: {r['adapter']} {r['case']} {r['check']}: {r['baseline']} -> {r['current']}")
    if len(d["regressions"]) > REGRESSIONS_PRINTED:
        print(f"  ... {len(d['regressions']) - REGRESSIONS_PRINTED} more in {out / 'diff.md'}")
    print(f"wrote {out / 'diff.md'}, {out / 'diff.json'}")
    return EXIT_FAIL if failed else EXIT_PASS
