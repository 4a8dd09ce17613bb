"""The fused forms in the reports: per form, what each adapter's checks gave, the semantics it
follows, and the findings of that form; and the precisions the defaults table shows.

A pure function of the records, like every report section (docs/reports.md, "Fused forms").
The forms are the registry's families of the fused checks (conformance/checks/fused.py).
"""
from __future__ import annotations

from collections import Counter, defaultdict

from conformance.checks.registry import names

# family -> (the form's name in the reports, the record metric naming the semantics it follows)
FORMS: dict[str, tuple[str, str | None]] = {
    "fused-add": ("residual add (call_fused_add)", "sum_precision"),
    "offset": ("offset scale, 1 + w (build_offset)", "offset_precision"),
    "quantized": ("fp8 output (call_quantized)", None),
}
HALF = ("float16", "bfloat16", "mixed_float16", "mixed_bfloat16", "default_float16", "default_bfloat16")
UNDECIDED = ("indistinguishable", "unexplained")


def _cell(n: Counter) -> str:
    ran = sum(n[s] for s in ("pass", "fail", "error", "xfail", "xpass", "accepted"))
    bad = n["fail"] + n["error"]
    return f"fail {bad} of {ran}" if bad else (f"pass {n['pass']}" if ran else "unsupported")


def _observed(records: list[dict], check: str, metric: str) -> dict[str, dict[str, Counter]]:
    """{adapter: {case dtype: Counter of the semantics its records report}}."""
    out: dict = defaultdict(lambda: defaultdict(Counter))
    for r in records:
        value = (r.get("metrics") or {}).get(metric)
        if r["check"] == check and isinstance(value, str):
            out[r["adapter"]][r.get("dtype", "?")][value] += 1
    return out


def _semantics_text(by_dtype: dict[str, Counter], input_label: str, dtypes: tuple[str, ...]) -> str:
    """What an adapter does with half inputs (or weights), where the cases of `dtypes` tell: one
    answer ("float32", `input_label` where the format is the case's half dtype), or one per dtype."""
    seen = {}
    for dtype, counts in by_dtype.items():
        told = [v for v, _ in counts.most_common() if v not in UNDECIDED]
        if dtype in dtypes and told:
            seen[dtype] = input_label if told[0] == dtype.split("_")[-1] else told[0]
    if not seen:
        return "–"
    values = set(seen.values())
    if len(values) == 1:
        return values.pop()
    return ", ".join(f"{d} {v}" for d, v in sorted(seen.items()))


def precisions(records: list[dict]) -> dict[str, dict[str, str]]:
    """{adapter: {"residual sum": ..., "1 + w": ...}}: the precision each adapter's fused add keeps
    the sum in and adds 1 + w in, for half inputs, as its records observed them."""
    sums = _observed(records, "fused_add", "sum_precision")
    offsets = _observed(records, "offset_forward", "offset_precision")
    out: dict = {}
    for a in sorted(set(sums) | set(offsets)):
        out[a] = {"residual sum": _semantics_text(sums.get(a, {}), "input dtype", HALF),
                  # only plain half cases have half weights: under the mixed precisions w is float32
                  "1 + w": _semantics_text(offsets.get(a, {}), "weight dtype", HALF[:2])}
    return out


def fused_table(records: list[dict], findings: list[dict]) -> dict:
    """{family: {"title", "checks", "rows": {adapter: {check: cell, "semantics": text}}, "findings": [...]}}
    for the forms some adapter ran (an adapter whose records are all unsupported is left out)."""
    out = {}
    sem = precisions(records)
    for family, (title, metric) in FORMS.items():
        checks = names(family)
        cells: dict = defaultdict(lambda: defaultdict(Counter))
        for r in records:
            if r["check"] in checks:
                cells[r["adapter"]][r["check"]][r["status"]] += 1
        rows = {a: {c: _cell(by[c]) if c in by else "–" for c in checks} for a, by in sorted(cells.items())}
        rows = {a: row for a, row in rows.items() if any(v != "unsupported" and v != "–" for v in row.values())}
        if not rows:
            continue
        key = {"sum_precision": "residual sum", "offset_precision": "1 + w"}.get(metric)
        for a, row in rows.items():
            row["semantics"] = sem.get(a, {}).get(key, "–") if key else "–"
        out[family] = {"title": title, "checks": list(checks), "rows": rows,
                       "findings": [{"id": f["id"], "title": f["title"], "class": f["class"], "adapters": f["adapters"],
                                     "results": f["results"]} for f in findings if f.get("family") == family]}
    return out
