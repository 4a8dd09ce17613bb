"""Regression diff of two result sets (`conformance diff BASELINE CURRENT`).

Findings: new and resolved findings (reports/findings.py) by their stable ids; a new
finding of a class that gates (--fail-on) is a regression too.
Record regressions: a pass that is now fail or error (or unsupported); a result whose
scored error grew by more than GROWTH_FACTOR and by more than GROWTH_UNITS
(ULPs for the forward pass, unit roundoffs for gradients) - below that, error
changes are reordering noise of a framework upgrade, not a regression; a
(case, adapter, check) in the baseline that is missing now.  Improvements:
fail/error/unsupported that now pass.  Framework version changes are listed first (per package,
with the adapters it applies to), so the diff of an upgrade reads as one.  A CPU run set
against a GPU run of the same adapters names its new and resolved findings by device ("Only on
cuda (...)", "Only on cpu").  `renamed` maps the baseline's adapter names onto the current ones
(`--rename`), so two builds of one kernel under two names are compared.
"""
from __future__ import annotations

from conformance.reports.results import Results, scored_error

GROWTH_FACTOR = 2.0
GROWTH_UNITS = 1.0


def renamed(results: Results, names: dict[str, str]) -> Results:
    """The results with adapters renamed (`diff --rename OLD=NEW`: a run of `mykernel-v1` compared
    with one of `mykernel-v2`): records, adapter records and the run record, so findings (whose
    per-adapter ids name the adapter) are recomputed under the new names."""
    import dataclasses

    if not names:
        return results
    name = lambda a: names.get(a, a)  # noqa: E731
    run = results.run and results.run | {"adapters": [name(a) for a in results.run.get("adapters", [])]}
    return dataclasses.replace(
        results, records=[r | {"adapter": name(r["adapter"])} for r in results.records], run=run,
        adapters={name(a): meta | {"adapter": name(a)} for a, meta in results.adapters.items()})


def _key(r: dict) -> tuple:
    return (r["adapter"], r["case"], r["check"])


def devices(results: Results) -> str:
    """The devices the adapters of a run ran on ("cpu", "cuda (NVIDIA H100 ...)")."""
    return ", ".join(sorted({meta.get("device", "cpu") for meta in results.adapters.values()})) or "cpu"


def finding_labels(d: dict) -> tuple[str, str]:
    """What new and resolved findings are called: by device when the two runs ran on different ones."""
    b, c = d["devices"]["baseline"], d["devices"]["current"]
    return ("new finding", "resolved finding") if b == c else (f"only on {c}", f"only on {b}")


def diff(baseline: Results, current: Results) -> dict:
    base = {_key(r): r for r in baseline.records}
    cur = {_key(r): r for r in current.records}
    regressions, improvements = [], []
    for key, b in base.items():
        c = cur.get(key)
        entry = {"adapter": key[0], "case": key[1], "check": key[2], "baseline": b["status"]}
        if c is None:
            regressions.append(entry | {"current": "missing", "why": "missing from the current results"})
            continue
        entry["current"] = c["status"]
        if b["status"] == "pass" and c["status"] != "pass":
            regressions.append(entry | {"why": c.get("message", "")})
        elif b["status"] != "pass" and c["status"] == "pass":
            improvements.append(entry)
        else:
            eb, ec = scored_error(b), scored_error(c)
            if eb is not None and ec is not None and ec > eb * GROWTH_FACTOR and ec - eb > GROWTH_UNITS:
                regressions.append(entry | {"why": f"error grew from {eb:.4g} to {ec:.4g}"})
    versions = []
    for name in sorted(set(baseline.adapters) | set(current.adapters)):
        vb = baseline.adapters.get(name, {}).get("versions", {})
        vc = current.adapters.get(name, {}).get("versions", {})
        for pkg in sorted(set(vb) | set(vc)):
            if vb.get(pkg) != vc.get(pkg):
                versions.append({"adapter": name, "package": pkg, "baseline": vb.get(pkg), "current": vc.get(pkg)})
    new = sorted(set(cur) - set(base))
    base_f = {f["id"]: f for f in baseline.findings}
    cur_f = {f["id"]: f for f in current.findings}
    summary = lambda f: {k: f[k] for k in ("id", "class", "title", "adapters", "results", "smallest", "rerun")}  # noqa: E731
    return {"devices": {"baseline": devices(baseline), "current": devices(current)},
            "regressions": regressions, "improvements": improvements, "version_changes": versions,
            "new_results": len(new), "compared": len(set(base) & set(cur)),
            "new_findings": [summary(cur_f[i]) for i in sorted(set(cur_f) - set(base_f))],
            "resolved_findings": [summary(base_f[i]) for i in sorted(set(base_f) - set(cur_f))]}


def regressed(d: dict, gate) -> bool:
    """Exit 1: a record regressed, or a finding of a gating class is new."""
    return bool(d["regressions"] or [f for f in d["new_findings"] if f["class"] in gate.fail_on])


def version_change_lines(d: dict) -> list[str]:
    """The version changes, one line per package change with the adapters it applies to:
    "keras 3.5.0 → 3.6.0 (keras-jax, keras-torch)"; a package one side lacks is "absent"."""
    by_change: dict[tuple, list[str]] = {}
    for v in d["version_changes"]:
        key = (v["package"], v["baseline"], v["current"])
        by_change.setdefault(key, []).append(v["adapter"])
    text = lambda x: "absent" if x is None else x  # noqa: E731
    return [f"{pkg} {text(b)} → {text(c)} ({', '.join(sorted(adapters))})"
            for (pkg, b, c), adapters in sorted(by_change.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), str(kv[0][2])))]


def render_markdown(d: dict, failed: bool) -> str:
    """diff.md: the verdict, the version changes first (an upgrade's diff reads as one), then the
    findings, regressions and improvements."""
    verdict = (f"{len(d['regressions'])} regression(s), {len(d['improvements'])} improvement(s), "
               f"{len(d['new_findings'])} new finding(s), {len(d['resolved_findings'])} resolved")
    lines = ["# Conformance diff", "", f"**{'REGRESSED' if failed else 'CLEAN'}: {verdict}** "
             f"({d['compared']} results compared, {d['new_results']} new)", ""]
    changes = version_change_lines(d)
    lines += [f"## Version changes ({len(changes)})", ""]
    lines += [f"- {line}" for line in changes] or ["None: both sides ran the same versions."]
    lines.append("")
    titles = [label[0].upper() + label[1:] + ("s" if label.endswith("finding") else "") for label in finding_labels(d)]
    for title, rows in zip(titles, (d["new_findings"], d["resolved_findings"])):
        lines += [f"## {title} ({len(rows)})", ""]
        lines += [f"- **{f['title']}** ({f['class']}; {', '.join(f['adapters'])}; {f['results']} results; "
                  f"`{f['id']}`) — smallest `{f['smallest']['case']}`; rerun `{f['rerun']}`" for f in rows] or ["None."]
        lines.append("")
    for title, rows in (("Regressions", d["regressions"]), ("Improvements", d["improvements"])):
        lines += [f"## {title} ({len(rows)})", ""]
        lines += [f"- **{r['adapter']}** `{r['case']}` {r['check']}: {r['baseline']} → {r['current']}"
                  + (f" — {r['why']}" if r.get("why") else "") for r in rows] or ["None."]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
