"""report.md: verdict, the adapter x dtype table, the failing cases with rerun commands."""
from __future__ import annotations

from conformance.reports.findings import RESULTS_SHOWN
from conformance.reports.results import (
    STATUSES, Results, configuration_table, defaults_table, invalid_table, table, verdict, versions_text,
)



def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _evidence(f: dict) -> str:
    e = f.get("evidence") or {}
    if not e:
        return ""
    text = f"at {e['index']}: got {_fmt(e['got'])}, expected {_fmt(e['expected'])}"
    return text + (f", the hypothesis predicts {_fmt(e['predicted'])}" if "predicted" in e else "")


def _findings(results: Results) -> list[str]:
    v = results.judgement
    gating = {f["id"] for f in v.gating}
    out = ["## Findings", "", f"Gating: {results.gate.describe()}.", ""]
    if not results.findings:
        return out + ["None: every result passed or is unsupported.", ""]
    out += ["| | finding | class | adapters | results | smallest case |", "|---|---|---|---|---:|---|"]
    for f in results.findings:
        mark = "**fails**" if f["id"] in gating else "shown"
        out.append(f"| {mark} | {f['title']} | {f['class']} | {', '.join(f['adapters'])} | {f['results']} | "
                   f"`{f['smallest']['case']}` |")
    for f in results.findings:
        out += ["", f"### {f['title']}", "",
                f"- id `{f['id']}`, class **{f['class']}**, {f['results']} result(s): "
                + ", ".join(f"{a} {n}" for a, n in f["per_adapter"].items()),
                f"- why: {f['detail']}" + (f" ({len(f['details'])} variants)" if len(f["details"]) > 1 else "")]
        if f.get("evidence"):
            out.append(f"- evidence (`{f['smallest']['case']}`, {f['smallest']['adapter']}, {f['smallest']['check']}): "
                       f"{_evidence(f)}")
        out.append(f"- rerun: `{f['rerun']}`")
        shown = f["records"][:RESULTS_SHOWN]
        out += [f"  - {r['adapter']} `{r['case']}` {r['check']}: {r['status']}" for r in shown]
        if f["results"] > len(shown):
            out.append(f"  - … {f['results'] - len(shown)} more result(s) of this finding in report.json")
    return out + [""]


def render(results: Results) -> str:
    lines = ["# RMS normalization conformance", "", f"**{verdict(results)}**", ""]
    lines += _findings(results)
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
    lines += _defaults(results) + _configuration(results)
    return "\n".join(lines) + "\n"


def _defaults(results: Results) -> list[str]:
    """Defaults across adapters; a value that differs from the most common one is bold."""
    d = defaults_table(results)
    if not d["dtypes"]:
        return []
    out = ["", "## Defaults (observed)", "",
           "Epsilon used when none is given, and output dtype, per input dtype. **Bold**: differs from most adapters.", "",
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
