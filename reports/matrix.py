"""matrix.json, matrix.md and matrix.html of `conformance matrix`: one run per version set, side by side.

Pure functions of the runs' results: `matrix(sets)` takes the version sets in order (oldest
first), each with the Results of its run folder (None where it did not run), and returns the data
every rendering shows:

- `findings`: each finding of any set × the sets: `present` (with its result count), `absent`,
  `changed` (present, with another result count or other adapters than in the previous set that
  ran and had it), or `not run`;
- `pass_rates`: per adapter and set, the passing results of those that ran (not `unsupported`);
- `transitions`: the new and resolved findings between consecutive sets that ran;
- `imported`: the versions each adapter's worker really imported (its adapter record), and
  `mismatches`: a requested version that an adapter reports otherwise;
- `newest`: the last set, whose verdict decides the exit code.
"""
from __future__ import annotations

import html

from conformance.diagnosis.diagnose import CLASSES
from conformance.reports.findings import coverage
from conformance.reports.results import verdict

RAN = ("finished", "interrupted")  # the statuses of a set whose run folder holds results


def set_label(requested: dict[str, str]) -> str:
    """A version set's name and folder: "keras-3.5.0", "keras-3.5.0__jax-0.4.30"."""
    safe = lambda s: "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in s)  # noqa: E731
    return "__".join(f"{safe(p)}-{safe(v)}" for p, v in requested.items())


def matrix(sets: list[dict]) -> dict:
    """`sets`: [{"label", "requested": {package: version}, "status": "finished" | "interrupted" |
    "failed" | "not run", "reason": str, "results": Results | None, "seconds": float | None}]."""
    ran = [s for s in sets if s["status"] in RAN and s.get("results") is not None]
    found: dict[str, list[dict | None]] = {}
    about: dict[str, dict] = {}
    for k, s in enumerate(sets):
        if s in ran:
            for f in s["results"].findings:
                found.setdefault(f["id"], [None] * len(sets))[k] = f
                about.setdefault(f["id"], {"class": f["class"], "title": f["title"]})
    order = {c: n for n, c in enumerate(CLASSES)}
    rows = []
    for fid, per_set in sorted(found.items(), key=lambda kv: (order.get(about[kv[0]]["class"], 99), kv[0])):
        cells, before = [], None
        for k, s in enumerate(sets):
            f = per_set[k]
            if s not in ran:
                cells.append({"state": "not run"})
                continue
            if f is None:
                cells.append({"state": "absent"})
            else:
                changed = before is not None and (f["results"], f["per_adapter"]) != (before["results"], before["per_adapter"])
                cells.append({"state": "changed" if changed else "present", "results": f["results"],
                              "adapters": f["adapters"], "per_adapter": f["per_adapter"]})
            before = f
        rows.append({"id": fid, **about[fid], "cells": cells})
    adapters = sorted({a for s in ran for a in {r["adapter"] for r in s["results"].records} | set(s["results"].adapters)})
    rates: dict[str, list] = {a: [] for a in adapters}
    imported: dict[str, list] = {a: [] for a in adapters}
    mismatches = []
    for s in sets:
        cover = coverage(s["results"].records) if s in ran else {}
        for a in adapters:
            c = cover.get(a)
            rates[a].append(None if c is None else {"passed": c["passed"], "ran": c["ran"], "total": c["total"],
                                                    "rate": c["passed"] / c["ran"] if c["ran"] else None})
            meta = s["results"].adapters.get(a) if s in ran else None
            versions = None if meta is None else dict(meta.get("versions", {}))
            imported[a].append(versions)
            for pkg, want in s["requested"].items():
                got = (versions or {}).get(pkg)
                if got is not None and want != "nightly" and got != want:
                    mismatches.append({"set": s["label"], "adapter": a, "package": pkg, "requested": want, "imported": got})
    transitions = []
    for a, b in zip(ran, ran[1:]):
        fa = {f["id"]: f for f in a["results"].findings}
        fb = {f["id"]: f for f in b["results"].findings}
        brief = lambda f: {k: f[k] for k in ("id", "class", "title", "adapters", "results")}  # noqa: E731
        transitions.append({"from": a["label"], "to": b["label"],
                            "new": [brief(fb[i]) for i in sorted(set(fb) - set(fa))],
                            "resolved": [brief(fa[i]) for i in sorted(set(fa) - set(fb))]})
    summary = []
    for s in sets:
        r = s.get("results") if s in ran else None
        summary.append({"label": s["label"], "requested": s["requested"], "status": s["status"],
                        "reason": s.get("reason", ""), "seconds": s.get("seconds"),
                        "verdict": verdict(r) if r is not None else None,
                        "failed": r.failed if r is not None else None,
                        "results": len(r.records) if r is not None else 0,
                        "findings": len(r.findings) if r is not None else 0,
                        "gating": len(r.judgement.gating) if r is not None else 0})
    newest = summary[-1] if summary else None
    return {"sets": summary, "findings": rows, "pass_rates": rates, "transitions": transitions,
            "imported": imported, "mismatches": mismatches, "newest": newest,
            "packages": sorted({p for s in sets for p in s["requested"]})}


def newest_failed(data: dict) -> bool:
    """What the exit code says: the newest set did not pass (or did not run to its end)."""
    n = data["newest"]
    return n is None or n["status"] != "finished" or bool(n["failed"])


def _rate_text(c: dict | None) -> str:
    if c is None:
        return "–"
    if c["rate"] is None:
        return f"– (0 of {c['total']} ran)"
    return f"{100 * c['rate']:.1f}% ({c['passed']}/{c['ran']})"


def _cell_text(c: dict) -> str:
    return {"absent": "—", "not run": "not run"}.get(c["state"]) or (
        f"{c['results']}" + (" (changed)" if c["state"] == "changed" else ""))


def _versions_text(v: dict | None) -> str:
    return "–" if v is None else ", ".join(f"{k} {x}" for k, x in sorted(v.items())) or "(none reported)"


def _status_text(s: dict) -> str:
    if s["status"] == "failed":
        return f"failed: {s['reason']}"
    if s["status"] == "not run":
        return "not run yet (--resume continues)"
    return s["verdict"] or s["status"]


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def headline(data: dict) -> str:
    """The first line: the newest set's verdict, and how many sets ran."""
    n = data["newest"]
    done = sum(s["status"] == "finished" for s in data["sets"])
    head = f"{done} of {len(data['sets'])} version set(s) finished"
    if n is None:
        return f"no version sets; {head}"
    return f"newest {n['label']}: {_status_text(n)}; {head}"


def render_markdown(data: dict) -> str:
    sets = data["sets"]
    labels = [s["label"] for s in sets]
    header = lambda first: ["| " + " | ".join([*first, *labels]) + " |", "|" + "---|" * (len(first) + len(labels))]  # noqa: E731
    lines = ["# Conformance matrix", "", f"**{_md_escape(headline(data))}**", "", "## Version sets", "",
             "| set | requested | status | results | findings | seconds |", "|---|---|---|---|---|---|"]
    for s in sets:
        req = ", ".join(f"{p}=={v}" for p, v in s["requested"].items())
        secs = f"{s['seconds']:.1f}" if s.get("seconds") is not None else "–"
        lines.append(f"| {s['label']} | {req} | {_md_escape(_status_text(s))} | {s['results']} | {s['findings']} | {secs} |")
    lines += ["", f"## Findings × version sets ({len(data['findings'])})", "",
              "A count is the finding's results in that set; — absent; (changed): other counts or adapters than in "
              "the set before.", ""]
    if data["findings"]:
        lines += header(["finding", "class"])
        lines += [f"| {_md_escape(f['title'])} `{f['id']}` | {f['class']} | " + " | ".join(_cell_text(c) for c in f["cells"]) + " |"
                  for f in data["findings"]]
    else:
        lines.append("None.")
    lines += ["", "## Pass rates", "", "Passing results of those that ran (not unsupported), per adapter.", ""]
    if data["pass_rates"]:
        lines += header(["adapter"])
        lines += [f"| {a} | " + " | ".join(_rate_text(c) for c in cells) + " |" for a, cells in data["pass_rates"].items()]
    else:
        lines.append("None.")
    lines += ["", "## New and resolved findings", ""]
    for t in data["transitions"]:
        lines += [f"### {t['from']} → {t['to']}", ""]
        lines += [f"- new: **{_md_escape(f['title'])}** ({f['class']}; {', '.join(f['adapters'])}; {f['results']} results; `{f['id']}`)"
                  for f in t["new"]]
        lines += [f"- resolved: **{_md_escape(f['title'])}** ({f['class']}; {', '.join(f['adapters'])}; `{f['id']}`)"
                  for f in t["resolved"]]
        if not t["new"] and not t["resolved"]:
            lines.append("No change in the findings.")
        lines.append("")
    if not data["transitions"]:
        lines += ["Fewer than two version sets ran.", ""]
    lines += ["## Versions imported", "", "What each adapter's worker imported (its load()), per set.", ""]
    if data["imported"]:
        lines += header(["adapter"])
        lines += [f"| {a} | " + " | ".join(_md_escape(_versions_text(v)) for v in cells) + " |" for a, cells in data["imported"].items()]
    else:
        lines.append("None.")
    for m in data["mismatches"]:
        lines.append(f"\n**{m['set']}: {m['adapter']} imported {m['package']} {m['imported']}, not the requested {m['requested']}**")
    return "\n".join(lines) + "\n"


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1b1f24;max-width:1600px}
h1{font-size:22px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0} th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
th{background:#f6f8fa} td.name,th.name{text-align:left} .headline{font-size:16px;font-weight:600}
.fail{color:#a40e26} .pass{color:#116329} td small{display:block;color:#444}
td.present{background:#f8d7da} td.changed{background:#ffe8a3;font-weight:600} td.absent{background:#e6f4ea;color:#555}
td.notrun{background:#eee;color:#777} code{font-size:12px} .warn{background:#fff1c2;padding:4px 8px}
"""

SCRIPT = """
const ids = ["sets", "findings", "pass-rates", "transitions", "imported"];
const missing = ids.filter(id => !document.getElementById(id));
// Show only the findings whose cells differ between the sets (a checkbox; also from the address: #changing).
const box = document.getElementById("only-changing");
function applyFilter() {
  let shown = 0;
  for (const row of document.querySelectorAll("#findings tr.finding")) {
    row.hidden = box.checked && row.dataset.changing !== "yes";
    shown += !row.hidden;
  }
  document.getElementById("findings-shown").textContent = shown;
}
if (box) {
  box.checked = location.hash === "#changing";
  box.addEventListener("change", applyFilter);
  applyFilter();
}
if (missing.length) { console.error("matrix sections missing: " + missing.join(", ")); }
else { document.body.dataset.ready = "yes"; }
"""


def _e(v) -> str:
    return html.escape(str(v))


def _colour(rate: float | None) -> str:
    return "#eeeeee" if rate is None else f"hsl({int(120 * rate)}, 65%, 80%)"


def render_html(data: dict) -> str:
    sets = data["sets"]
    head = lambda first: "<tr>" + "".join(f"<th class='name'>{_e(x)}</th>" for x in first) + "".join(  # noqa: E731
        f"<th>{_e(s['label'])}</th>" for s in sets) + "</tr>"
    newest_bad = newest_failed(data)
    out = [f"<h1>Conformance matrix</h1><p class='headline {'fail' if newest_bad else 'pass'}'>{_e(headline(data))}</p>"]
    out.append("<h2>Version sets</h2><table id='sets'><tr><th class='name'>set</th><th class='name'>requested</th>"
               "<th class='name'>status</th><th>results</th><th>findings</th><th>seconds</th></tr>")
    for s in sets:
        cls = "fail" if s["status"] != "finished" or s["failed"] else "pass"
        req = ", ".join(f"{p}=={v}" for p, v in s["requested"].items())
        secs = f"{s['seconds']:.1f}" if s.get("seconds") is not None else "–"
        out.append(f"<tr><td class='name'>{_e(s['label'])}</td><td class='name'><code>{_e(req)}</code></td>"
                   f"<td class='name {cls}'>{_e(_status_text(s))}</td><td>{s['results']}</td><td>{s['findings']}</td>"
                   f"<td>{secs}</td></tr>")
    out.append("</table>")
    out.append(f"<h2>Findings × version sets ({len(data['findings'])})</h2><div id='findings'><p>A count is the finding's "
               "results in that set; — absent; bold yellow: other counts or adapters than in the set before. "
               "<label><input type='checkbox' id='only-changing'> only findings that change</label> showing "
               f"<span id='findings-shown'>{len(data['findings'])}</span></p>")
    if data["findings"]:
        out.append("<table>" + head(["finding", "class"]))
        for f in data["findings"]:
            states = {(c["state"], c.get("results"), tuple(c.get("adapters", ()))) for c in f["cells"] if c["state"] != "not run"}
            changing = "yes" if len(states) > 1 else "no"
            cells = "".join(
                f"<td class='{c['state'].replace(' ', '')}'"
                + (f" title='{_e(', '.join(f'{a}: {n}' for a, n in c['per_adapter'].items()))}'" if c.get("per_adapter") else "")
                + f">{_e(_cell_text(c))}</td>" for c in f["cells"])
            out.append(f"<tr class='finding' data-changing='{changing}'><td class='name'>{_e(f['title'])}<small><code>"
                       f"{_e(f['id'])}</code></small></td><td>{_e(f['class'])}</td>{cells}</tr>")
        out.append("</table>")
    else:
        out.append("<p>None.</p>")
    out.append("</div><h2>Pass rates</h2><p>Passing results of those that ran (not unsupported), per adapter; "
               "colour = pass rate.</p><table id='pass-rates'>" + head(["adapter"]))
    for a, cells in data["pass_rates"].items():
        out.append(f"<tr><td class='name'>{_e(a)}</td>" + "".join(
            f"<td style='background:{_colour(None if c is None else c['rate'])}'>{_e(_rate_text(c))}</td>" for c in cells) + "</tr>")
    out.append("</table><h2>New and resolved findings</h2><div id='transitions'>")
    for t in data["transitions"]:
        out.append(f"<h3>{_e(t['from'])} → {_e(t['to'])}</h3><ul>")
        out += [f"<li class='fail'>new: <b>{_e(f['title'])}</b> ({_e(f['class'])}; {_e(', '.join(f['adapters']))}; "
                f"{f['results']} results; <code>{_e(f['id'])}</code>)</li>" for f in t["new"]]
        out += [f"<li class='pass'>resolved: <b>{_e(f['title'])}</b> ({_e(f['class'])}; {_e(', '.join(f['adapters']))}; "
                f"<code>{_e(f['id'])}</code>)</li>" for f in t["resolved"]]
        if not t["new"] and not t["resolved"]:
            out.append("<li>No change in the findings.</li>")
        out.append("</ul>")
    if not data["transitions"]:
        out.append("<p>Fewer than two version sets ran.</p>")
    out.append("</div><h2>Versions imported</h2><p>What each adapter's worker imported (its load()), per set.</p>"
               "<table id='imported'>" + head(["adapter"]))
    bad = {(m["set"], m["adapter"]) for m in data["mismatches"]}
    for a, cells in data["imported"].items():
        out.append(f"<tr><td class='name'>{_e(a)}</td>" + "".join(
            f"<td class='name{' fail' if (s['label'], a) in bad else ''}'>{_e(_versions_text(v))}</td>"
            for s, v in zip(sets, cells)) + "</tr>")
    out.append("</table>")
    out += [f"<p class='warn'>{_e(m['set'])}: {_e(m['adapter'])} imported {_e(m['package'])} {_e(m['imported'])}, "
            f"not the requested {_e(m['requested'])}</p>" for m in data["mismatches"]]
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Conformance matrix</title>"
            f"<style>{CSS}</style></head><body>{''.join(out)}<script>{SCRIPT}</script></body></html>\n")


def describe_counts(data: dict) -> str:
    """A short line for the CLI: finding states in the newest set against the one before."""
    if len(data["transitions"]) == 0:
        return ""
    t = data["transitions"][-1]
    return f"{t['from']} -> {t['to']}: {len(t['new'])} new finding(s), {len(t['resolved'])} resolved"

