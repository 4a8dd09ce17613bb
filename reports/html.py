"""report.html: one self-contained page (inline CSS, no network) for people comparing frameworks.

Pictures where people look (the heatmaps: colour = pass rate), tables where they
compare numbers.  A few lines of inline script only check that every section
rendered and mark the page `data-ready`, which the browser test reads.
"""
from __future__ import annotations

import html
import platform
from collections import defaultdict

from conformance.reports.results import (
    STATUSES,
    Results,
    agreement,
    capability_gaps,
    configuration_table,
    defaults_table,
    failure_groups,
    invalid_table,
    property_table,
    rerun_command,
    scored_error,
    state_change_line,
    state_changes,
    verdict,
    versions_text,
)

from conformance.checks.registry import names
from conformance.diagnosis.diagnose import evidence_text

MAX_LISTED = 40  # failing results listed per adapter; the rest are in report.json

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1b1f24;max-width:1400px}
h1{font-size:22px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0} th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
th{background:#f6f8fa} td.name,th.name{text-align:left} .verdict{font-size:16px;font-weight:600}
.fail{color:#a40e26} .pass{color:#116329} .heat td{min-width:90px;text-align:center}
.heat small,.matrix small{display:block;color:#444} .diff{font-weight:700;background:#fff1c2}
code{font-size:12px} details{margin:6px 0} .legend span{display:inline-block;width:40px;height:12px}
"""

SCRIPT = """
const ids = ["defects", "scoreboard", "findings", "heatmap-forward", "heatmap-gradients", "agreement", "defaults", "properties", "configuration", "invalid",
             "failures"];
const missing = ids.filter(id => !document.getElementById(id));
// Findings filter: by adapter and class; also from the address (report.html#adapter=torch&class=range).
function applyFilter() {
  const a = document.getElementById("filter-adapter").value, c = document.getElementById("filter-class").value;
  let shown = 0;
  for (const row of document.querySelectorAll("#findings tr.finding")) {
    const ok = (!a || row.dataset.adapters.split(" ").includes(a)) && (!c || row.dataset.class === c);
    row.hidden = !ok;
    shown += ok;
  }
  document.getElementById("findings-shown").textContent = shown;
}
if (document.getElementById("filter-adapter")) {
  const wanted = new URLSearchParams(location.hash.slice(1));
  for (const key of ["adapter", "class"]) {
    const select = document.getElementById("filter-" + key);
    if (wanted.get(key)) { select.value = wanted.get(key); }
    select.addEventListener("change", applyFilter);
  }
  applyFilter();
}
if (missing.length) { console.error("report sections missing: " + missing.join(", ")); }
else { document.body.dataset.ready = "yes"; }
"""


def _e(v) -> str:
    return html.escape(str(v))


def _colour(rate: float | None) -> str:
    if rate is None:
        return "#eeeeee"
    return f"hsl({int(120 * rate)}, 65%, 80%)"


def _cell(rate: float, main: str, detail: str, title: str = "") -> str:
    """A grid cell coloured by a pass or agreement rate, with a small second line."""
    tip = f' title="{_e(title)}"' if title else ""
    return f'<td style="background:{_colour(rate)}"{tip}>{main}<small>{detail}</small></td>'


def _num(v) -> str:
    return "–" if v is None else f"{v:.3g}"


def _heatmap(results: Results, checks: tuple[str, ...], section_id: str, title: str, unit: str) -> str:
    cells: dict = defaultdict(lambda: {"n": 0, "pass": 0, "worst": None})
    for r in results.records:
        if r["check"] in checks and r["status"] != "unsupported":
            c = cells[(r["adapter"], r.get("dtype"))]
            c["n"] += 1
            c["pass"] += r["status"] in ("pass", "xpass")
            e = scored_error(r)
            # Range findings (x² overflowing) are shown as findings; they would hide every other error here.
            if e is not None and (r.get("diagnosis") or {}).get("class") != "range":
                c["worst"] = e if c["worst"] is None else max(c["worst"], e)
    adapters = sorted({a for a, _ in cells})
    dtypes = sorted({d for _, d in cells})
    rows = [f'<h2>{_e(title)}</h2><table class="heat" id="{section_id}"><tr><th class="name">adapter</th>'
            + "".join(f"<th>{_e(d)}</th>" for d in dtypes) + "</tr>"]
    for a in adapters:
        row = [f'<td class="name">{_e(a)}</td>']
        for d in dtypes:
            c = cells.get((a, d))
            if not c or not c["n"]:
                row.append('<td style="background:#eee">–</td>')
                continue
            rate = c["pass"] / c["n"]
            row.append(_cell(rate, f"{100 * rate:.0f}%", f'worst {_num(c["worst"])} {unit}', f'{c["pass"]} of {c["n"]} pass'))
        rows.append("<tr>" + "".join(row) + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def _agreement(results: Results) -> str:
    ag = agreement(results)
    names = ag["adapters"]
    out = ['<h2>Pairwise agreement</h2><p>On the results both adapters produced: how many disagree '
           '(one passes, the other fails); below, how many findings both are in, and how many of the row '
           "adapter's findings the column's is not in.</p>"
           '<table class="matrix" id="agreement"><tr><th class="name"></th>'
           + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"]
    for a in names:
        row = [f'<th class="name">{_e(a)}</th>']
        for b in names:
            m = ag["matrix"][f"{a}|{b}"]
            if a == b or not m["shared"]:
                row.append('<td style="background:#f6f8fa">–</td>')
                continue
            rate = 1 - m["disagree"] / m["shared"]
            row.append(_cell(rate, f'{m["disagree"]} / {m["shared"]}',
                             f'{m["shared_findings"]} shared findings, {m["only_a"]} only {a}'))
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _defaults(results: Results) -> str:
    d = defaults_table(results)
    out = ['<h2>Defaults (observed)</h2><p>Epsilon each adapter used when none was given, and the output dtype '
           'it returned, per input dtype. Highlighted: differs from most adapters.</p><table id="defaults">'
           '<tr><th class="name">adapter</th>' + "".join(f"<th>{_e(c)}</th>" for c in d["columns"]) + "</tr>"]
    for a, cells in d["rows"].items():
        out.append(f'<tr><td class="name">{_e(a)}</td>'
                   + "".join(f'<td{" class=diff" if differs else ""}>{_e(t)}</td>' for t, differs in cells) + "</tr>")
    out.append("</table>")
    declared = {a: v for a, v in d.get("declared", {}).items() if v}
    if declared:
        keys = ["axis", "epsilon", "scale_init", "parameter_dtype"]
        out.append("<p>A default-constructed layer, as each adapter reads it from its framework:</p><table>"
                   '<tr><th class="name">adapter</th>' + "".join(f'<th class="name">{k}</th>' for k in keys) + "</tr>")
        out += [f'<tr><td class="name">{_e(a)}</td>' + "".join(f'<td class="name">{_e(v.get(k, "–"))}</td>' for k in keys) + "</tr>"
                for a, v in declared.items()]
        out.append("</table>")
    return "".join(out)


def _properties(results: Results) -> str:
    checks = names("property")
    table = property_table(results)
    if not table:
        return '<h2>Properties</h2><table id="properties"><tr><td>no property checks in this run</td></tr></table>'
    out = ['<h2>Properties</h2><table id="properties"><tr><th class="name">adapter</th>'
           + "".join(f"<th>{_e(c)}</th>" for c in checks) + "</tr>"]
    for a, row in table.items():
        cells = [row.get(c, "–") for c in checks]
        out.append(f'<tr><td class="name">{_e(a)}</td>' + "".join(
            f'<td class="{"fail" if c.startswith("fail") else ("pass" if c.startswith("pass") else "")}">{_e(c)}</td>'
            for c in cells) + "</tr>")
    return "".join(out) + "</table>"


def _fused(results: Results) -> str:
    """The fused forms, one table per form (reports/fused.py); nothing where no adapter ran one."""
    from conformance.reports.fused import fused_table

    forms = fused_table(results.records, results.findings)
    if not forms:
        return ""
    out = ['<h2>Fused forms</h2><p>The residual add, the (1 + w) offset and the fp8 output, each scored against its own '
           'oracle. Semantics: the precision the sum is normalized in, or 1 + w is added in, for half inputs.</p>'
           '<div id="fused-forms">']
    for family, form in forms.items():
        checks = form["checks"]
        out.append(f'<h3>{_e(form["title"])}</h3><table id="fused-{_e(family)}"><tr><th class="name">adapter</th>'
                   + "".join(f"<th>{_e(c)}</th>" for c in checks) + "<th>semantics</th></tr>")
        for a, row in form["rows"].items():
            out.append(f'<tr><td class="name">{_e(a)}</td>' + "".join(
                f'<td class="{"fail" if row[c].startswith("fail") else ("pass" if row[c].startswith("pass") else "")}">'
                f'{_e(row[c])}</td>' for c in checks) + f"<td>{_e(row['semantics'])}</td></tr>")
        out.append("</table>")
        if form["findings"]:
            out.append("<ul>" + "".join(f"<li><code>{_e(f['id'])}</code> ({_e(f['class'])}): {_e(f['title'])} "
                                        f"[{_e(', '.join(f['adapters']))}]</li>" for f in form["findings"]) + "</ul>")
    return "".join(out) + "</div>"


def _state(results: Results) -> str:
    rows = state_changes(results)
    if not rows:
        return ""
    items = "".join(f"<li>{_e(state_change_line(row))}</li>" for row in rows)
    return ('<h2>Process state changed by adapters</h2><p>A shared worker reads the floating-point control state, '
            "numpy's error state, the threads running and the frameworks' global numerics state after each load() and "
            'case; these changed it, and their worker served no other adapter after that.</p>'
            f'<ul id="state-changes">{items}</ul>')


def _capabilities(results: Results) -> str:
    gaps = capability_gaps(results)
    if not gaps:
        return ""
    rows = "".join(f'<tr><td class="name">{_e(a)}</td><td class="name">' + "; ".join(
        f"<code>{_e(m)}()</code>: {_e(', '.join(cs))}" for m, cs in methods.items()) + "</td></tr>"
        for a, methods in gaps.items())
    return ('<h2>Checks not run for want of a method</h2><p>Each is unsupported because the adapter does not provide '
            'the optional method named; defining it enables the checks.</p><table id="capabilities"><tr>'
            '<th class="name">adapter</th><th class="name">method: checks it enables</th></tr>' + rows + "</table>")


def _configuration(results: Results) -> str:
    rows = configuration_table(results)
    out = ['<h2>Configuration: structure, config round trip, save/load</h2><table id="configuration">'
           '<tr><th class="name">adapter</th><th class="name">check</th>' + "".join(f"<th>{s}</th>" for s in STATUSES[:4]) + "</tr>"]
    for r in rows:
        rate = r.get("pass", 0) / max(1, sum(r.get(s, 0) for s in ("pass", "fail", "error")))
        out.append(f'<tr style="background:{_colour(rate)}"><td class="name">{_e(r["adapter"])}</td><td class="name">{_e(r["check"])}</td>'
                   + "".join(f"<td>{r.get(s, 0)}</td>" for s in STATUSES[:4]) + "</tr>")
    out.append("</table>")
    claims = [(name, c) for name, meta in sorted(results.adapters.items()) for c in meta.get("claims", [])]
    if claims:
        out.append('<h2>Documentation claims</h2><table id="claims"><tr><th class="name">adapter</th>'
                   '<th class="name">claim</th><th>holds</th><th class="name">observed</th></tr>')
        for n, c in claims:
            holds = {True: "yes", False: "no"}.get(c["holds"], "?")
            out.append(f'<tr><td class="name">{_e(n)}</td><td class="name">{_e(c["claim"])}</td>'
                       f'<td class="{"pass" if c["holds"] else "fail"}">{holds}</td><td class="name">{_e(c["observed"])}</td></tr>')
        out.append("</table>")
    inv = invalid_table(results)
    adapters = sorted({a for row in inv["rows"].values() for a in row})
    out.append('<h2>Invalid and borderline configurations</h2><p>What each framework did; only a crash or a silent '
               'wrong number counts against the run. Hover a cell for the message.</p><table id="invalid">'
               '<tr><th class="name">configuration</th>' + "".join(f"<th>{_e(a)}</th>" for a in adapters) + "</tr>")
    shade = {"pass": "#e6f4ea", "unsupported": "#eeeeee", "fail": "#f8d7da", "error": "#f8d7da"}
    for case, row in inv["rows"].items():
        cells = []
        for a in adapters:
            status, outcome, message = row.get(a, ("unsupported", "–", ""))
            cells.append(f'<td style="background:{shade.get(status, "#fff")};text-align:left" title="{_e(message)}">{_e(outcome)}</td>')
        out.append(f'<tr><td class="name"><b>{_e(case.removeprefix("invalid/"))}</b><small>{_e(inv["what"].get(case, ""))}</small></td>'
                   + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _failures(results: Results) -> str:
    groups = failure_groups(results)
    by_adapter: dict = defaultdict(list)
    for r in results.failing:
        by_adapter[r["adapter"]].append(r)
    out = [f'<h2>Failing results ({len(results.failing)}), by adapter</h2><div id="failures">']
    if not results.failing:
        out.append("<p>None.</p>")
    for a, rs in sorted(by_adapter.items()):
        out.append(f"<h3>{_e(a)}: {len(rs)}</h3><table><tr><th class='name'>in common</th><th class='name'>counts</th></tr>")
        for dim, counts in groups[a].items():
            out.append(f"<tr><td class='name'>{_e(dim)}</td><td class='name'>"
                       + ", ".join(f"{_e(k)}: {v}" for k, v in counts.items()) + "</td></tr>")
        out.append("</table><details><summary>cases</summary><table><tr><th class='name'>case</th><th>check</th>"
                   "<th>status</th><th>error</th><th class='name'>message and rerun</th></tr>")
        for r in rs[:MAX_LISTED]:
            out.append(f"<tr><td class='name'><code>{_e(r['case'])}</code></td><td>{_e(r['check'])}</td>"
                       f"<td class='fail'>{_e(r['status'])}</td><td>{_num(scored_error(r))}</td>"
                       f"<td class='name'>{_e(r.get('message', ''))}<br><code>{_e(rerun_command(r, results.adapters, results.run))}</code></td></tr>")
        if len(rs) > MAX_LISTED:
            out.append(f"<tr><td class='name' colspan=5>… {len(rs) - MAX_LISTED} more in report.json</td></tr>")
        out.append("</table></details>")
    out.append("</div>")
    return "".join(out)


def _findings(results: Results) -> str:
    fs = results.findings
    gating = {f["id"] for f in results.judgement.gating}
    adapters = sorted({a for f in fs for a in f["adapters"]})
    classes = sorted({f["class"] for f in fs})
    options = lambda values, what: "".join([f"<option value=''>every {what}</option>"]  # noqa: E731
                                           + [f"<option value='{_e(v)}'>{_e(v)}</option>" for v in values])
    out = [f"<h2>Findings ({len(fs)})</h2><div id='findings'><p>Gating: {_e(results.gate.describe())}. "
           f"<label>adapter <select id='filter-adapter'>{options(adapters, 'adapter')}</select></label> "
           f"<label>class <select id='filter-class'>{options(classes, 'class')}</select></label> "
           f"showing <span id='findings-shown'>{len(fs)}</span></p>"]
    if not fs:
        return "".join(out) + "<p>None: every result passed or is unsupported.</p></div>"
    out.append("<table><tr><th></th><th class='name'>finding</th><th>class</th><th class='name'>adapters</th>"
               "<th>results</th></tr>")
    for f in fs:
        evidence = evidence_text(f.get("evidence") or {})  # every digit that tells the values apart
        verdict_cell = "<b class='fail'>fails</b>" if f["id"] in gating else "shown"
        out.append(
            f"<tr class='finding' data-adapters='{_e(' '.join(f['adapters']))}' data-class='{_e(f['class'])}'>"
            f"<td>{verdict_cell}</td><td class='name'><details><summary>{_e(f['title'])}</summary>"
            f"<p>{_e(f['detail'])}</p><p>smallest case <code>{_e(f['smallest']['case'])}</code> "
            f"({_e(f['smallest']['adapter'])}, {_e(f['smallest']['check'])}) {_e(evidence)}</p>"
            f"<p>rerun <code>{_e(f['rerun'])}</code></p><p>reproduce <code>{_e(f['repro'])}</code></p>"
            f"<p>id <code>{_e(f['id'])}</code></p></details></td>"
            f"<td>{_e(f['class'])}</td><td class='name'>{_e(', '.join(f['adapters']))}</td><td>{f['results']}</td></tr>")
    out.append("</table></div>")
    return "".join(out)


def _deviations(results: Results) -> str:
    """Accepted deviations (--accept), results beyond an accepted bound, stale xfail entries
    (reports/deviations.py); nothing where there are none."""
    from conformance.reports.deviations import accepted, beyond_accepted, stale_xfail

    out = []
    rows = accepted(results)
    if rows:
        out.append(f"<h2>Accepted deviations ({len(rows)})</h2><p>Results beyond the suite's tolerance within the "
                   "bound their <code>--accept</code> entry declares: they do not fail the run. The tolerance is the "
                   "suite's own, unchanged.</p><table id='accepted'><tr><th class='name'>adapter</th>"
                   "<th class='name'>case</th><th>check</th><th>error</th><th>tolerance</th>"
                   "<th class='name'>accepted bound</th><th class='name'>reason</th></tr>")
        out += [f"<tr><td class='name'>{_e(r['adapter'])}</td><td class='name'><code>{_e(r['case'])}</code></td>"
                f"<td>{_e(r['check'])}</td><td>{_num(r['error'])} {_e(r['metric'])}</td><td>{_num(r['tolerance'])}</td>"
                f"<td class='name'>{_e(r['bound_text'])}</td><td class='name'>{_e(r['reason'])}</td></tr>" for r in rows]
        out.append("</table>")
    over = beyond_accepted(results)
    if over:
        out.append(f"<h2>Beyond an accepted bound ({len(over)})</h2><p>These fail as usual.</p><ul id='beyond-accepted'>"
                   + "".join(f"<li>{_e(r['adapter'])} <code>{_e(r['case'])}</code> {_e(r['check'])}: {_e(r['why'])}</li>"
                             for r in over) + "</ul>")
    stale = stale_xfail(results)
    if stale:
        out.append(f"<h2>Stale xfail entries ({len(stale)})</h2><p>Every result these entries matched passes: drop "
                   "them (<code>--strict-xfail</code> fails the run on an xpass).</p><ul id='stale-xfail'>"
                   + "".join(f"<li><code>{_e(e)}</code>: {n} xpass ({_e(reason)})</li>" for e, reason, n in stale)
                   + "</ul>")
    return "".join(out)


def _defects(results: Results) -> str:
    """The defects by project, then the scoreboard per adapter (reports/defects.py)."""
    from conformance.reports.defects import projects, projects_text, scoreboard
    from conformance.reports.markdown import issue_command

    ds = results.defects
    out = [f"<h2>{_e(projects_text(ds)) if ds else 'Defects'}</h2><div id='defects'>"]
    if not ds:
        out.append("<p>None: no finding fails the run.</p>")
    by_owner: dict = defaultdict(list)
    for d in ds:
        by_owner[d["owner"]].append(d)
    for owner, n in projects(ds):
        out.append(f"<h3>{_e(owner)} ({n})</h3><table><tr><th class='name'>defect</th><th>class</th>"
                   "<th class='name'>adapters</th><th>results</th><th class='name'>smallest case</th>"
                   "<th class='name'>upstream</th></tr>")
        for d in by_owner[owner]:
            s = d["smallest"]
            links = ", ".join(f"<a href='{_e(i['url'])}'>{_e(i['ref'])}</a> ({_e(i['state'])})" for i in d["upstream"])
            out.append(
                f"<tr class='defect' data-owner='{_e(owner)}'><td class='name'><details><summary>{_e(d['title'])}</summary>"
                f"<p>id <code>{_e(d['id'])}</code>; findings: {_e(', '.join(d['findings']))}</p><p>{_e(d['detail'])}</p>"
                f"<p>rerun <code>{_e(d['rerun'])}</code></p><p>draft the upstream issue "
                f"<code>{_e(issue_command(results, d['id']))}</code></p></details></td><td>{_e(d['class'])}</td>"
                f"<td class='name'>{_e(', '.join(d['adapters']))}</td><td>{d['results']}</td>"
                f"<td class='name'><code>{_e(s['case'])}</code><small>{_e(s['adapter'])}, {_e(s['check'])}</small></td>"
                f"<td class='name'>{('known: ' + links) if links else 'no upstream issue found'}</td></tr>")
        out.append("</table>")
    out.append("</div>")
    board = scoreboard(results.records, ds, results.adapters)
    shown = ("pass", "fail", "error", "unsupported") + (("accepted",) if any(r["accepted"] for r in board) else ())
    rows = "".join(f"<tr><td class='name'>{_e(r['adapter'])}</td><td class='name'>{_e(', '.join(r['owners']))}</td>"
                   + "".join(f"<td class='{'fail' if k in ('fail', 'error') and r[k] else ''}'>{r[k]}</td>" for k in shown)
                   + f"<td class='name'>{_e(', '.join(r['defects']) or '–')}</td></tr>"
                   for r in board)
    out.append("<h2>Scoreboard</h2><table id='scoreboard'><tr><th class='name'>adapter</th><th class='name'>owners</th>"
               + "".join(f"<th>{k}</th>" for k in shown) + f"<th class='name'>defects</th></tr>{rows}</table>")
    return "".join(out)


def _versions(results: Results) -> str:
    rows = []
    machine = {}
    for name, meta in sorted(results.adapters.items()):
        machine = meta.get("machine") or machine
        rows.append(f"<tr><td class='name'>{_e(name)}</td><td class='name'>{_e(versions_text(meta))}</td></tr>")
    m = ", ".join(f"{k} {v}" for k, v in machine.items()) or platform.platform()
    return (f"<h2>Versions and machine</h2><p>{_e(m)}</p><table id='versions'><tr><th class='name'>adapter</th>"
            f"<th class='name'>versions</th></tr>{''.join(rows)}</table>")


def render(results: Results) -> str:
    v = verdict(results)
    legend = ('<p class="legend">colour = pass rate: <span style="background:hsl(0,65%,80%)"></span> 0% '
              '<span style="background:hsl(60,65%,80%)"></span> 50% <span style="background:hsl(120,65%,80%)"></span> 100%</p>')
    body = "".join([
        f'<h1>RMS normalization conformance</h1><p class="verdict {"fail" if results.failed else "pass"}">{_e(v)}</p>',
        _defects(results), _findings(results), _deviations(results), _state(results), legend,
        _heatmap(results, ("forward",), "heatmap-forward", "Forward: pass rate and worst error (range findings aside)",
                 "ULP"),
        _heatmap(results, ("grad_x", "grad_scale"), "heatmap-gradients",
                 "Gradients: pass rate and worst error (range findings aside)", "u"),
        _agreement(results), _defaults(results), _properties(results), _fused(results), _capabilities(results),
        _configuration(results),
        _failures(results), _versions(results),
    ])
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>RMSNorm conformance</title>"
            f"<style>{CSS}</style></head><body>{body}<script>{SCRIPT}</script></body></html>\n")
