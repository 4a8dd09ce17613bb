"""Reading results.jsonl, and the summaries every report format shares."""
from __future__ import annotations

import json
import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from conformance.cases.dimensions import axes_kind
from conformance.cases.invalid import CHECK as INVALID_CHECK
from conformance.reports.findings import Gate, Verdict, coverage, findings, judge
from conformance.reports.schema import STATUSES, read_records

from conformance.checks.registry import names
from conformance.errors import UsageError


@dataclass(frozen=True)
class Results:
    records: list[dict]
    adapters: dict[str, dict] = field(default_factory=dict)  # name -> its "adapter" record
    run: dict | None = None  # the "run" record: what the run set out to do
    gate: Gate = Gate()  # what fails the run: the user's policy, not the file's
    source: str | None = None  # the folder the results were read from (`conformance issue --from`)

    @property
    def failing(self) -> list[dict]:
        return [r for r in self.records if r["status"] in ("fail", "error")]

    @cached_property
    def findings(self) -> list[dict]:
        return findings(self.records, lambda r: (rerun_command(r, self.adapters, self.run),
                                                 repro_command(r, self.adapters, self.run)))

    @cached_property
    def judgement(self) -> Verdict:
        return judge(self.findings, coverage(self.records), self.gate, [r for r in self.records if r["status"] == "xpass"])

    @cached_property
    def defects(self) -> list[dict]:
        """The gating findings as defects, grouped by the project that owns them (reports/defects.py)."""
        from conformance.reports.defects import defects

        return defects(self.findings, self.records, self.adapters, {f["id"] for f in self.judgement.gating},
                       lambda r: (rerun_command(r, self.adapters, self.run), repro_command(r, self.adapters, self.run)))

    @property
    def failed(self) -> bool:
        """What the exit code says: a gating finding, an adapter without coverage, or an unfinished run."""
        return self.judgement.failed or self.incomplete

    @property
    def finished_pairs(self) -> int:
        """(adapter, case) pairs with at least one record (the runner writes a case's records together)."""
        return len({(r["adapter"], r["case"]) for r in self.records})

    @property
    def incomplete(self) -> bool:
        return self.run is not None and self.finished_pairs < self.run["expected"]


def results_path(path: Path) -> Path:
    """A results file, or the folder holding results.jsonl."""
    return path / "results.jsonl" if path.is_dir() else path


def write_jsonl(path: Path, objects) -> None:
    """Write one JSON object per line (results.jsonl and its siblings), atomically."""
    from conformance.execution.outdir import write_atomic

    write_atomic(path, "".join(json.dumps(obj) + "\n" for obj in objects))


def load_results(path: Path, salvage: bool = False, gate: Gate = Gate()) -> Results:
    """Every record of a results file, validated (reports/schema.py); UsageError naming the first bad line."""
    path = results_path(Path(path))
    records, adapters, run = [], {}, None
    seen: dict[tuple, int] = {}
    for n, obj in read_records(path, salvage):
        kind = obj.get("record", "result")
        if kind == "run":
            if run is not None:
                raise UsageError(f"results file {path} line {n}: a second run record (two runs in one file?)")
            run = obj
        elif kind == "adapter":
            if obj["adapter"] in adapters:
                raise UsageError(f"results file {path} line {n}: adapter {obj['adapter']!r} is described twice")
            adapters[obj["adapter"]] = obj
        else:
            key = (obj["adapter"], obj["case"], obj["check"])
            if key in seen:
                raise UsageError(f"results file {path} line {n} repeats the result of line {seen[key]} "
                                 f"({key[0]} {key[1]} {key[2]}): the same run twice in one file?")
            seen[key] = n
            records.append(rediagnosed(obj))
    return Results(records, adapters, run, gate, str(path.parent if path.name == "results.jsonl" else path))


def rediagnosed(r: dict) -> dict:
    """An error record with its crash diagnosis made again from its message and case
    (conformance/diagnosis/crashes.py), so that results written by an older suite read with
    today's crash causes, finding ids and titles; its status and message are never touched."""
    d = r.get("diagnosis")
    if r.get("status") != "error" or (d is not None and d.get("class") != "crash"):
        return r
    from conformance.checks.registry import finding_id
    from conformance.diagnosis.diagnose import of_error

    r = r | {"diagnosis": of_error(r.get("message", ""), r)}
    return r | {"finding": finding_id(r)}


def versions_text(meta: dict) -> str:
    """An adapter's package versions; where merged parts ran other versions, each part's."""
    by_part = meta.get("versions_by_part")
    device = f"; on {meta['device']}" if meta.get("device") else ""  # records from before --device have none
    if not by_part:
        return ", ".join(f"{k} {v}" for k, v in sorted(meta.get("versions", {}).items())) + device
    packages = sorted({k for p in by_part for k in p["versions"]})
    texts = []
    for k in packages:
        seen = {p["versions"].get(k) for p in by_part}
        if len(seen) == 1:
            texts.append(f"{k} {seen.pop()}")
        else:
            texts.append(f"{k} DIFFERS: " + "; ".join(f"{p['versions'].get(k)} ({p['source']})" for p in by_part))
    return ", ".join(texts) + device


def rerun_command(r: dict, adapters: dict[str, dict], run: dict | None = None) -> str:
    """One line that reruns exactly this case on this adapter, pasted into a shell in any folder
    (the `conformance` the run recorded, with the PYTHONPATH a user's module needs)."""
    from conformance.execution.adapter_refs import adapter_flag

    ref, start = _ref_and_start(r, adapters, run)
    return f"{start} run {adapter_flag(ref)} --case {shlex.quote(r['case'])} --out out/rerun --overwrite"


def repro_command(r: dict, adapters: dict[str, dict], run: dict | None = None) -> str:
    """One line that writes a reproduction of this case on this adapter (`conformance repro`)."""
    ref, start = _ref_and_start(r, adapters, run)
    return f"{start} repro {shlex.quote(r['case'])} --adapter {shlex.quote(ref)} --out out/repro --overwrite"


def _ref_and_start(r: dict, adapters: dict[str, dict], run: dict | None) -> tuple[str, str]:
    """The adapter's reference, and how a printed command starts (execution/invocation.py): the
    adapter record's `import_root` and the run record's `conformance`; results written before
    those fields put the run's folder on PYTHONPATH and print bare `conformance`."""
    from conformance.execution.invocation import BARE, command_prefix

    meta, run = adapters.get(r["adapter"], {}), run or {}
    ref = meta.get("ref", r["adapter"])
    root = meta["import_root"] if "import_root" in meta else (run.get("cwd") if ":" in ref else None)
    return ref, command_prefix(run.get("conformance", BARE), [root, *run.get("conformance_path", [])])


def _by_class(fs: list[dict]) -> str:
    counts = Counter(f["class"] for f in fs)
    return ", ".join(f"{c} {n}" for c, n in counts.most_common())


def verdict(results: Results) -> str:
    """One line: what failed the run (findings by class, coverage), then the record counts."""
    v = results.judgement
    bad, total = len(results.failing), len(results.records)
    head = "FAIL" if results.failed else "PASS"  # an unfinished run is never a pass
    if results.incomplete:
        head = f"INTERRUPTED after {results.finished_pairs} of {results.run['expected']} (adapter, case) pairs; {head}"
    if not total:
        return f"{head}: no results"
    parts = []
    if v.gating:
        from conformance.reports.defects import projects_text

        parts.append(projects_text(results.defects))
        parts.append(f"{len(v.gating)} finding(s) fail the run ({_by_class(v.gating)})")
    if v.other:
        parts.append(f"{len(v.other)} finding(s) shown, not gating ({_by_class(v.other)})")
    parts += [f"{a}: {why}" for a, why in v.uncovered.items()]
    if v.xpassed:
        parts.append(f"{len(v.xpassed)} xpass fail the run (--strict-xfail: the listed discrepancy is gone)")
    known = sum(r["status"] in ("xfail", "xpass") for r in results.records)
    accepted = sum(r["status"] == "accepted" for r in results.records)
    extra = (f", {known} known discrepancies (xfail/xpass)" if known else "") + (
        f", {accepted} accepted deviation(s) (--accept)" if accepted else "")
    return (f"{head}: {'; '.join(parts) or 'no findings'}; {total - bad} of {total} results pass or are "
            f"unsupported, {bad} fail or error{extra}")


def table(results: Results) -> list[dict]:
    """Rows of adapter x dtype: counts per status and the worst forward ULP error."""
    cells: dict[tuple, dict] = defaultdict(lambda: {**{s: 0 for s in STATUSES}, "worst_ulp": None})
    for r in results.records:
        cell = cells[(r["adapter"], r.get("dtype", "?"))]
        cell[r["status"]] = cell.get(r["status"], 0) + 1
        ulp = (r.get("metrics") or {}).get("max_ulp")
        if r["check"] == "forward" and ulp is not None:
            cell["worst_ulp"] = ulp if cell["worst_ulp"] is None else max(cell["worst_ulp"], ulp)
    return [{"adapter": a, "dtype": d, **c} for (a, d), c in sorted(cells.items())]


def defaults_table(results: Results) -> dict:
    """What each adapter does when not told: the epsilon it used on `epsdefault` cases and
    the output dtype it returned, per input dtype.  Observed from the records, not declared."""
    eps: dict = defaultdict(dict)
    out_dtype: dict = defaultdict(dict)
    for r in results.records:
        if r["check"] != "forward":
            continue
        dtype = r.get("dtype")
        if r.get("epsilon") is None and r.get("epsilon_used") is not None:
            eps[r["adapter"]][dtype] = r["epsilon_used"]
        got = (r.get("metrics") or {}).get("out_dtype")
        if got:
            out_dtype[r["adapter"]].setdefault(dtype, set()).add(got)
    dtypes = sorted({d for table in (eps, out_dtype) for row in table.values() for d in row})
    observed = {"epsilon": {a: dict(v) for a, v in eps.items()},
                "output_dtype": {a: {d: "/".join(sorted(s)) for d, s in v.items()} for a, v in out_dtype.items()}}
    from conformance.reports.fused import precisions

    fused = precisions(results.records)  # the fused forms' precisions, for half inputs (reports/fused.py)
    fused_columns = ["residual sum", "1 + w"]
    adapters = sorted(set(eps) | set(out_dtype) | set(fused))
    # Cells in column order (epsilon per dtype, then output dtype per dtype, then the fused forms'
    # precisions): the text and whether it differs from the value most adapters have, which
    # reports highlight.
    rows: dict = {a: [] for a in adapters}
    for key, table_ in observed.items():
        for t in dtypes:
            values = [table_[a][t] for a in adapters if t in table_.get(a, {})]
            common = Counter(values).most_common(1)[0][0] if values else None
            for a in adapters:
                v = table_.get(a, {}).get(t)
                text = "–" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))
                rows[a].append((text, v is not None and v != common))
    for column in fused_columns:
        values = [fused[a][column] for a in fused if fused[a][column] != "–"]
        common = Counter(values).most_common(1)[0][0] if values else None
        for a in adapters:
            text = fused.get(a, {}).get(column, "–")
            rows[a].append((text, text != "–" and text != common))
    observed["fused_precisions"] = fused
    return {
        "dtypes": dtypes,
        "columns": [f"eps ({t})" for t in dtypes] + [f"out ({t})" for t in dtypes] + fused_columns,
        "rows": rows,
        "declared": {a: meta.get("defaults", {}) for a, meta in sorted(results.adapters.items())},
        **observed,
    }


def scored_error(r: dict) -> float | None:
    """The metric a record is judged by: ULPs (forward) or units of roundoff (gradients)."""
    m = r.get("metrics") or {}
    return m.get("max_ulp") if r["check"] == "forward" else m.get("max_units")


def agreement(results: Results) -> dict:
    """For every two adapters, on the (case, check) results both produced.

    `disagree`: one passes and the other fails or errors.  `shared_findings`: the
    findings both are in (the same discrepancy, e.g. both overflow float32), and
    `only_a`: findings of the row's adapter the column's is not in.
    """
    by: dict = defaultdict(dict)
    for r in results.records:
        if r["status"] in ("pass", "fail", "error", "xfail", "xpass", "accepted"):
            by[r["adapter"]][(r["case"], r["check"])] = r
    of: dict = defaultdict(set)
    for f in results.findings:
        for a in f["adapters"]:
            of[a].add(f["id"])
    names = sorted(by)
    matrix = {}
    for a in names:
        for b in names:
            shared = set(by[a]) & set(by[b])
            ok = lambda r: r["status"] in ("pass", "xpass")  # noqa: E731
            disagree = sum(ok(by[a][k]) != ok(by[b][k]) for k in shared)
            matrix[f"{a}|{b}"] = {"shared": len(shared), "disagree": disagree,
                                  "shared_findings": len(of[a] & of[b]), "only_a": len(of[a] - of[b])}
    return {"adapters": names, "matrix": matrix}


def failure_groups(results: Results) -> dict:
    """Failing results per adapter, counted by what they have in common."""
    groups: dict = defaultdict(lambda: {"dtype": Counter(), "axes kind": Counter(), "distribution": Counter(), "check": Counter()})
    for r in results.failing:
        g = groups[r["adapter"]]
        g["dtype"][r.get("dtype")] += 1
        g["axes kind"][axes_kind(tuple(r.get("shape", ())), tuple(r.get("axis", ())))] += 1
        g["distribution"][r.get("distribution")] += 1
        g["check"][r["check"]] += 1
    return {a: {k: dict(v.most_common()) for k, v in g.items()} for a, g in sorted(groups.items())}


def configuration_table(results: Results) -> list[dict]:
    """Per adapter: counts of each status for the configuration checks."""
    configuration = names("configuration")
    cells: dict = defaultdict(Counter)
    for r in results.records:
        if r["check"] in configuration:
            cells[(r["adapter"], r["check"])][r["status"]] += 1
    return [{"adapter": a, "check": c, **dict(v)} for (a, c), v in sorted(cells.items())]


def property_table(results: Results) -> dict[str, dict[str, str]]:
    """{adapter: {property check: cell}}: "pass 4", "fail 1 of 4" (fail or error), "unsupported"."""
    cells: dict = defaultdict(Counter)
    for r in results.records:
        if r["check"] in names("property"):
            cells[(r["adapter"], r["check"])][r["status"]] += 1
    out: dict = defaultdict(dict)
    for (a, c), n in sorted(cells.items()):
        ran = n["pass"] + n["fail"] + n["error"] + n["xfail"] + n["xpass"] + n["accepted"]
        bad = n["fail"] + n["error"]
        out[a][c] = f"fail {bad} of {ran}" if bad else (f"pass {n['pass']}" if ran else "unsupported")
    return dict(out)


def capability_gaps(results: Results) -> dict[str, dict[str, list[str]]]:
    """{adapter: {method: [checks]}}: the checks an adapter could not run on any case, by the one
    optional method of the adapter contract that would enable them (the records' `needs`)."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for r in results.records:
        if r["status"] == "unsupported" and r.get("needs") and r["check"] not in out[r["adapter"]][r["needs"]]:
            out[r["adapter"]][r["needs"]].append(r["check"])
    return {a: dict(sorted(m.items())) for a, m in sorted(out.items())}


def invalid_table(results: Results) -> dict:
    """{invalid configuration: {adapter: (status, outcome, message)}} and the descriptions."""
    table: dict = defaultdict(dict)
    what = {}
    for r in results.records:
        if r["check"] == INVALID_CHECK:
            table[r["case"]][r["adapter"]] = (r["status"], r.get("outcome", r["status"]), r.get("message", ""))
            what[r["case"]] = r.get("invalid", "")
    return {"rows": {k: dict(v) for k, v in sorted(table.items())}, "what": what}


def change_text(change: dict) -> str:
    """One process-state change as a line: "flush-to-zero off -> on", "thread 'spin' (daemon) left running"."""
    what, before, after = (str(change.get(k, "?")) for k in ("state", "before", "after"))
    return f"{what} {after}" if before == "not running" else f"{what} {before} -> {after}"


def state_changes(results: Results) -> list[dict]:
    """What adapters changed in their worker's process (conformance/execution/state.py): a row per
    adapter and where (`case`: the case after which the state differed, None: its load()), with
    the changes as lines.  The worker was restarted after that task, so no other adapter ran in it."""
    rows = [{"adapter": name, "ref": meta.get("ref", name), "case": None,
             "changes": [change_text(c) for c in meta["state_changes"]]}
            for name, meta in sorted(results.adapters.items()) if meta.get("state_changes")]
    seen: set = set()
    for r in results.records:
        if r.get("state_changes") and (r["adapter"], r["case"]) not in seen:
            seen.add((r["adapter"], r["case"]))
            rows.append({"adapter": r["adapter"], "ref": results.adapters.get(r["adapter"], {}).get("ref", r["adapter"]),
                         "case": r["case"], "changes": [change_text(c) for c in r["state_changes"]]})
    return sorted(rows, key=lambda row: row["adapter"])  # stable: load() first, then the cases in file order


def state_change_line(row: dict) -> str:
    """A row of state_changes() as one sentence, e.g. "tests.planted.state:FlushesDenormals
    (planted-ftz) changed: flush-to-zero off -> on (in case f32/...); the worker was restarted for the next task"."""
    ref = row["ref"] if row["ref"] == row["adapter"] else f"{row['ref']} ({row['adapter']})"
    where = f"in case {row['case']}" if row["case"] else "in load()"
    return f"{ref} changed: {'; '.join(row['changes'])} ({where}); the worker was restarted for the next task"
