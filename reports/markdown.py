"""report.md: verdict, the adapter x dtype table, the failing cases with rerun commands."""
from __future__ import annotations

from conformance.reports.findings import RESULTS_SHOWN
from conformance.reports.results import (
    STATUSES,
    Results,
    capability_gaps,
    configuration_table,
    defaults_table,
    invalid_table,
    property_table,
    state_change_line,
    state_changes,
    table,
    verdict,
    versions_text,
)

from conformance.checks.registry import names
from conformance.diagnosis.diagnose import evidence_text


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _evidence(f: dict) -> str:
    return evidence_text(f.get("evidence") or {})  # every digit that tells the values apart


def _findings_table(results: Results) -> list[str]:
    """The findings' heading, the gating and one row per finding (report.md, the CI summary)."""
    gating = {f["id"] for f in results.judgement.gating}
    out = ["## Findings", "", f"Gating: {results.gate.describe()}.", ""]
    if not results.findings:
        return out + ["None: every result passed or is unsupported.", ""]
    out += ["| | finding | class | adapters | results | smallest case |", "|---|---|---|---|---:|---|"]
    for f in results.findings:
        mark = "**fails**" if f["id"] in gating else "shown"
        out.append(f"| {mark} | {f['title']} | {f['class']} | {', '.join(f['adapters'])} | {f['results']} | "
                   f"`{f['smallest']['case']}` |")
    return out


def _findings(results: Results) -> list[str]:
    out = _findings_table(results)
    if not results.findings:
        return out
    for f in results.findings:
        out += ["", f"### {f['title']}", "",
                f"- id `{f['id']}`, class **{f['class']}**, {f['results']} result(s): "
                + ", ".join(f"{a} {n}" for a, n in f["per_adapter"].items()),
                f"- why: {f['detail']}" + (f" ({len(f['details'])} variants)" if len(f["details"]) > 1 else "")]
        if f.get("evidence"):
            out.append(f"- evidence (`{f['smallest']['case']}`, {f['smallest']['adapter']}, {f['smallest']['check']}): "
                       f"{_evidence(f)}")
        out.append(f"- rerun: `{f['rerun']}`")
        if f["family"] in ("forward", "dtype") and f["class"] != "crash":
            out.append(f"- reproduce without the suite: `{f['repro']}`")
        shown = f["records"][:RESULTS_SHOWN]
        out += [f"  - {r['adapter']} `{r['case']}` {r['check']}: {r['status']}" for r in shown]
        if f["results"] > len(shown):
            out.append(f"  - … {f['results'] - len(shown)} more result(s) of this finding in report.json")
    return out + [""]


def issue_command(results: Results, defect_id: str) -> str:
    """The command that drafts the upstream issue of a defect (`conformance issue`)."""
    import shlex

    where = results.source or "RUN_DIR"
    return f"conformance issue {shlex.quote(defect_id)} --from {shlex.quote(where)} --out issue.md"


def _defects(results: Results) -> list[str]:
    """The defects, by project (reports/defects.py): what a maintainer acts on."""
    from conformance.reports.defects import projects, projects_text

    ds = results.defects
    if not ds:
        return []
    out = [f"## {projects_text(ds)}", "",
           "A defect is one cause in the project that owns it: the gating findings with that cause on that project's "
           "adapters, merged (the adapters' `owners`; docs/reports.md). Smallest case: the most readable case that "
           "shows it.", ""]
    by_owner: dict = {}
    for d in ds:
        by_owner.setdefault(d["owner"], []).append(d)
    for owner, n in projects(ds):
        out += [f"### {owner} ({n})", ""]
        for k, d in enumerate(by_owner[owner], 1):
            s = d["smallest"]
            out += [f"{k}. **{d['title']}** (`{d['id']}`, {d['class']})",
                    f"   - {d['results']} result(s) on {', '.join(f'{a} {m}' for a, m in d['per_adapter'].items())}; "
                    f"findings: " + ", ".join(f"`{f}`" for f in d["findings"]),
                    f"   - smallest case: `{s['case']}` ({s['adapter']}, {s['check']})"
                    + (f": {_evidence(d)}" if d.get("evidence") else ""),
                    f"   - {d['upstream_text']}",
                    f"   - rerun: `{d['rerun']}`",
                    f"   - draft the upstream issue: `{issue_command(results, d['id'])}`"]
        out.append("")
    return out


def _scoreboard(results: Results) -> list[str]:
    """Per adapter: its owners, its results per status and the defects it shows."""
    from conformance.reports.defects import scoreboard

    rows = scoreboard(results.records, results.defects, results.adapters)
    if not rows:
        return []
    shown = ("pass", "fail", "error", "unsupported") + (("accepted",) if any(row["accepted"] for row in rows) else ())
    out = ["## Scoreboard", "", "| adapter | owners | " + " | ".join(shown) + " | defects |",
           "|---|---|" + "---:|" * len(shown) + "---|"]
    for row in rows:
        defects = ", ".join(f"`{d}`" for d in row["defects"]) or "–"
        out.append(f"| {row['adapter']} | {', '.join(row['owners'])} | " + " | ".join(str(row[k]) for k in shown)
                   + f" | {defects} |")
    return out + [""]


def render_findings(results: Results) -> str:
    """The findings alone, for reports/baseline/findings.md: what the suite finds, generated."""
    versions = "; ".join(f"{name}: {versions_text(meta)}" for name, meta in sorted(results.adapters.items()))
    return "\n".join(["# What the standard suite finds", "",
                      "Generated by `make baseline` from `reports/baseline/standard.jsonl`; do not edit by hand.", "",
                      f"Versions: {versions}", "", f"**{verdict(results)}**", "", *_defects(results),
                      *_scoreboard(results), *_findings(results)[2:]]) + "\n"


def render_summary(results: Results) -> str:
    """The CI job summary (`--summary`, $GITHUB_STEP_SUMMARY): the verdict, the defects, the
    findings table and the scoreboard, as report.md writes them."""
    where = f" ({results.source})" if results.source else ""
    return "\n".join([f"## RMS normalization conformance{where}", "", f"**{verdict(results)}**", "",
                      *_defects(results), *_findings_table(results), "", *_scoreboard(results)]).rstrip("\n") + "\n"


def _deviations(results: Results) -> list[str]:
    """Accepted deviations (--accept) with their real error, results beyond an accepted bound, and
    stale xfail entries (reports/deviations.py)."""
    from conformance.reports.deviations import accepted, beyond_accepted, stale_xfail

    out = []
    rows = accepted(results)
    if rows:
        out += [f"## Accepted deviations ({len(rows)})", "",
                "Results beyond the suite's tolerance within the bound their `--accept` entry declares: they do not "
                "fail the run. The tolerance is the suite's own, unchanged.", "",
                "| adapter | case | check | error | tolerance | accepted bound | reason |", "|---|---|---|---:|---:|---|---|"]
        out += [f"| {r['adapter']} | `{r['case']}` | {r['check']} | {_fmt(r['error'])} {r['metric']} | "
                f"{_fmt(r['tolerance'])} | {r['bound_text']} | {r['reason']} |" for r in rows]
        out.append("")
    over = beyond_accepted(results)
    if over:
        out += [f"## Beyond an accepted bound ({len(over)})", "", "These fail as usual:", ""]
        out += [f"- {r['adapter']} `{r['case']}` {r['check']}: {r['why']}" for r in over] + [""]
    stale = stale_xfail(results)
    if stale:
        out += [f"## Stale xfail entries ({len(stale)})", "",
                "Every result these entries matched passes (xpass): the discrepancy is gone, drop the entry "
                "(`--strict-xfail` fails the run on an xpass).", ""]
        out += [f"- {entry}: {n} xpass ({reason})" for entry, reason, n in stale] + [""]
    return out


def render(results: Results) -> str:
    lines = ["# RMS normalization conformance", "", f"**{verdict(results)}**", ""]
    lines += _defects(results) + _scoreboard(results) + _findings(results) + _deviations(results) + _state(results)
    if results.adapters:
        lines += ["## Versions", "", "| adapter | versions |", "|---|---|"]
        for name, meta in sorted(results.adapters.items()):
            lines.append(f"| {name} | {versions_text(meta)} |")
        lines.append("")
    lines += ["## Results by adapter and dtype", "",
              "| adapter | dtype | " + " | ".join(STATUSES) + " | worst forward ULP |",
              "|---|---|" + "---:|" * (len(STATUSES) + 1)]
    for row in table(results):
        lines.append(f"| {row['adapter']} | {row['dtype']} | "
                     + " | ".join(str(row[s]) for s in STATUSES) + f" | {_fmt(row['worst_ulp'])} |")
    lines += _defaults(results) + _properties(results) + _fused(results) + _capabilities(results) + _configuration(results)
    return "\n".join(lines) + "\n"


def _state(results: Results) -> list[str]:
    """Adapters that changed their worker's process state (conformance/execution/state.py)."""
    rows = state_changes(results)
    if not rows:
        return []
    return ["## Process state changed by adapters", "",
            "A shared worker reads the floating-point control state, numpy's error state, the threads running and "
            "the frameworks' global numerics state after each load() and case; these changed it, and their worker "
            "served no other adapter after that.", ""] + [f"- {state_change_line(row)}" for row in rows] + [""]


def _defaults(results: Results) -> list[str]:
    """Defaults across adapters; a value that differs from the most common one is bold."""
    d = defaults_table(results)
    if not d["dtypes"]:
        return []
    out = ["", "## Defaults (observed)", "",
           "Epsilon used when none is given, and output dtype, per input dtype; for half inputs, the precision the fused "
           "add normalizes its sum in and the precision 1 + w is added in (the fused forms). **Bold**: differs from most "
           "adapters.", "",
           "| adapter | " + " | ".join(d["columns"]) + " |", "|---|" + "---|" * len(d["columns"])]
    for a, cells in d["rows"].items():
        out.append(f"| {a} | " + " | ".join(f"**{t}**" if differs else t for t, differs in cells) + " |")
    declared = {a: v for a, v in d.get("declared", {}).items() if v}
    if declared:
        keys = ["axis", "epsilon", "scale_init", "parameter_dtype"]
        out += ["", "A default-constructed layer, as each adapter reads it from its framework:", "",
                "| adapter | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        out += [f"| {a} | " + " | ".join(str(v.get(k, "–")) for k in keys) + " |" for a, v in declared.items()]
    return out


def _properties(results: Results) -> list[str]:
    checks = names("property")
    table = property_table(results)
    if not table:
        return []
    out = ["", "## Properties", "", "Bitwise: batch invariance, determinism, sign symmetry, power-of-two scale invariance, "
           "memory layout; derivatives: forward mode (jvp) and second order (hvp) against float64 formulas.", "",
           "| adapter | " + " | ".join(checks) + " |", "|---|" + "---|" * len(checks)]
    for a, row in table.items():
        cells = [row.get(c, "–") for c in checks]
        out.append(f"| {a} | " + " | ".join(f"**{c}**" if c.startswith("fail") else c for c in cells) + " |")
    return out


def _fused(results: Results) -> list[str]:
    """The fused forms, one table per form: each adapter's checks, the semantics it follows, and
    the findings of that form (reports/fused.py)."""
    from conformance.reports.fused import fused_table

    forms = fused_table(results.records, results.findings)
    if not forms:
        return []
    out = ["", "## Fused forms", "", "The residual add, the (1 + w) offset and the fp8 output, each scored against its own "
           "oracle (docs/numerics.md). Semantics: the precision the adapter's sum is normalized in, or 1 + w is added in, "
           "for half inputs (reported, not judged, unless it loses bits or contradicts the adapter's declaration)."]
    for family, form in forms.items():
        checks = form["checks"]
        out += ["", f"### {form['title']}", "", "| adapter | " + " | ".join(checks) + " | semantics |",
                "|---|" + "---|" * (len(checks) + 1)]
        for a, row in form["rows"].items():
            cells = [row[c] for c in checks]
            out.append(f"| {a} | " + " | ".join(f"**{c}**" if c.startswith("fail") else c for c in cells)
                       + f" | {row['semantics']} |")
        if form["findings"]:
            out += [""] + [f"- `{f['id']}` ({f['class']}): {f['title']} [{', '.join(f['adapters'])}] ({f['results']} results)"
                           for f in form["findings"]]
    return out


def _capabilities(results: Results) -> list[str]:
    gaps = capability_gaps(results)
    if not gaps:
        return []
    out = ["", "## Checks not run for want of a method", "",
           "Each is `unsupported` because the adapter does not provide the optional method named "
           "(docs/adapters.md); defining it enables the checks.", "", "| adapter | method: checks it enables |", "|---|---|"]
    out += [f"| {a} | " + "; ".join(f"`{m}()`: {', '.join(cs)}" for m, cs in methods.items()) + " |"
            for a, methods in gaps.items()]
    return out


def _configuration(results: Results) -> list[str]:
    rows = configuration_table(results)
    out = []
    if rows:
        out += ["", "## Configuration: structure, config round trip, save/load", "",
                "| adapter | check | " + " | ".join(STATUSES[:4]) + " |", "|---|---|" + "---:|" * 4]
        out += [f"| {r['adapter']} | {r['check']} | " + " | ".join(str(r.get(s, 0)) for s in STATUSES[:4]) + " |" for r in rows]
    claims = [(name, c) for name, meta in sorted(results.adapters.items()) for c in meta.get("claims", [])]
    if claims:
        out += ["", "## Documentation claims", "", "| adapter | claim | holds | observed |", "|---|---|---|---|"]
        out += [f"| {n} | {c['claim']} | {'yes' if c['holds'] else ('**no**' if c['holds'] is False else '?')} | {c['observed']} |"
                for n, c in claims]
    inv = invalid_table(results)
    if inv["rows"]:
        adapters = sorted({a for row in inv["rows"].values() for a in row})
        out += ["", "## Invalid and borderline configurations", "",
                "What each framework did. Only a crash (error) or a silent wrong number (fail) counts against the run.", "",
                "| configuration | " + " | ".join(adapters) + " |", "|---|" + "---|" * len(adapters)]
        for case, row in inv["rows"].items():
            cells = []
            for a in adapters:
                status, outcome, _ = row.get(a, ("", "–", ""))
                cells.append(f"**{outcome}**" if status in ("fail", "error") else outcome)
            out.append(f"| {case.removeprefix('invalid/')} ({inv['what'].get(case, '')}) | " + " | ".join(cells) + " |")
    return out
