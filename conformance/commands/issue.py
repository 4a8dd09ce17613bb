"""`conformance issue DEFECT_OR_FINDING_ID --from RUN --out FILE.md`: a ready-to-paste upstream issue.

The defect (reports/defects.py) or finding is looked up in the run's results; its most readable
case on one of its adapters is run again in that adapter's worker (as `conformance repro` does:
`repro.run`), which writes the script and gives the adapter's own output.  The draft has a title
a maintainer would write, "already reported as ..." where a known upstream issue matches, the
environment (the owner packages' versions, Python, OS, device, from the run's adapter record), a
self-contained script inline (the adapter's own framework code from its `snippet()`; small
inputs as literals, larger ones drawn in the script from the case's seed exactly as the suite
draws them) that prints its output, what the float64 formula gives at the element furthest from
it with the ULP distance, and the versions it runs with; what running it prints (the worker runs
the same analysis on the adapter's own output); the diagnosis in one sentence; the other
affected configurations; and the command that reruns the case in the suite.

The drafting itself (the script's text, what it prints, the Markdown) is commands/_draft.py; this
module is the command: its arguments, the worker step that runs the case and writes the script,
and writing the draft.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from conformance.commands._draft import _analysis, _pick, _snippet_parts, issue_title, render, script_text
from conformance.commands._draft import printed_of, script_of  # re-exported: tests and users import them from here
from conformance.commands.report import EXIT_FAIL, EXIT_PASS
from conformance.errors import UsageError

__all__ = ["RESULT", "cmd_issue", "issue_title", "main", "printed_of", "render", "script_of", "script_text"]

RESULT = "repro"  # the message repro.run waits for


def _draft(ref: str, adapter, versions: dict, case_id: str, title: str, out: Path) -> dict:
    """In the adapter's worker: the script for `case_id`, and what running it prints."""
    from conformance.cases.case import Case, layer_spec, materialize, parse_case
    from conformance.checks.pipeline import _epsilon_used, checked_config
    from conformance.commands.repro import _import_root
    from conformance.spec import LayerSpec

    case = parse_case(case_id)
    if isinstance(case, Case):
        arrays = materialize(case)
        x, scale, spec = arrays.x, arrays.scale, layer_spec(case, arrays)
    else:
        x, scale = case.arrays()
        spec = LayerSpec(case.shape, case.axis, case.epsilon, case.dtype, scale)
    reason = adapter.supports(spec)
    if reason:
        return {"error": f"{adapter.name} does not support {case_id}: {reason}"}
    parts, note = _snippet_parts(adapter, spec)
    raised, y, eps = None, None, case.epsilon
    try:
        layer = adapter.build(spec)
        config, _ = checked_config(adapter, layer)
        eps = _epsilon_used(case, config) if isinstance(case, Case) else (case.epsilon if case.epsilon is not None
                                                                         else (config or {}).get("epsilon"))
        y = adapter.call(layer, x)
    except Exception as exc:  # a crash: the script raises the same
        raised = f"{type(exc).__name__}: {exc}"
    try:
        axes = list(spec.axes)
    except ValueError:
        axes = list(case.axis)
    meta = {"dtypes": {"x": np.asarray(x).dtype.name, "scale": np.asarray(scale).dtype.name}, "axis": list(case.axis),
            "axes": axes, "epsilon": case.epsilon, "epsilon_used": eps if eps is not None else 0.0,
            "shape": list(case.shape), "dtype": spec.dtype, "compute_dtype": spec.compute_dtype,
            "param_dtype": spec.param_dtype, "dtype_args": not spec.no_dtype_args,
            "versions": dict(sorted(versions.items()))}
    text, _ = script_text(title, case, adapter, ref, {"x": x, "scale": scale}, meta, parts, _import_root(ref, type(adapter)))
    try:
        compile(text, "repro.py", "exec")
    except (SyntaxError, ValueError) as exc:
        return {"error": f"the script does not compile ({type(exc).__name__}: {exc})"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "repro.py").write_text(text)
    if raised is not None:
        lines = [f"raised {raised}"]
    else:
        try:
            lines = _analysis(meta, x, scale, y)
        except Exception as exc:  # noqa: BLE001 - the draft says what it could not compute
            lines = [f"(the analysis failed: {type(exc).__name__}: {exc})"]
    return {"script": str(out / "repro.py"), "lines": lines, "note": note, "raised": raised}


def main(argv: list[str]) -> int:
    """`python -m conformance.commands.issue REF CASE OUT TITLE`: in the adapter's environment, a
    worker that writes OUT/repro.py and sends what running it prints (repro.run reads it)."""
    from conformance.execution import protocol
    from conformance.execution.worker import serve

    ref, case_id, out = argv[:3]
    title = Path(out, "title.txt").read_text() if Path(out, "title.txt").exists() else case_id

    def body(adapter, versions, send):
        send(protocol.ready(adapter.name, versions))
        try:
            result = _draft(ref, adapter, versions, case_id, title, Path(out))
        except OSError as exc:
            result = {"write_error": f"cannot write into {out}: {exc.strerror or exc}"}
        send({"event": RESULT, **result})

    return serve(ref, body)


def cmd_issue(args) -> int:
    from conformance.commands.repro import run
    from conformance.execution.adapter_refs import resolve, worker_env
    from conformance.execution.outdir import write_atomic
    from conformance.execution.runner import DEFAULT_CASE_TIMEOUT_S
    from conformance.reports.defects import find
    from conformance.reports.findings import DEFAULT_FAIL_ON, Gate
    from conformance.execution.invocation import BARE
    from conformance.reports.results import load_results, rerun_command, results_path

    source = results_path(Path(args.from_run))
    if not source.exists():
        raise UsageError(f"--from {args.from_run}: no results file there")
    results = load_results(source, gate=Gate(args.fail_on or DEFAULT_FAIL_ON, args.min_coverage))
    defect, finding = find(results.defects, results.findings, args.id)
    if defect is None and finding is None:
        known = ", ".join(d["id"] for d in results.defects[:8])
        raise UsageError(f"{args.id!r} is neither a defect nor a finding of {source}" + (f" (defects: {known}, ...)"
                                                                                          if known else ""))
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; give --overwrite to replace it")
    by_key = {(r["adapter"], r["case"], r["check"]): r for r in results.records}
    chosen = finding or defect
    records = [by_key[(x["adapter"], x["case"], x["check"])] for x in chosen["records"]
               if (x["adapter"], x["case"], x["check"]) in by_key]
    record = _pick(records)
    meta = results.adapters.get(record["adapter"], {})
    ref = meta.get("ref", record["adapter"])
    (adapter,) = resolve([ref])
    title = issue_title(defect, finding, record)
    with tempfile.TemporaryDirectory(prefix="conformance-issue-") as tmp:
        Path(tmp, "title.txt").write_text(title)
        result = run((adapter.ref, worker_env(adapter)), record["case"], Path(tmp),
                     args.timeout or DEFAULT_CASE_TIMEOUT_S, module="conformance.commands.issue")
        if "write_error" in result or "error" in result:
            print(f"{adapter.name}: {result.get('write_error') or result['error']}")
            return EXIT_FAIL
        # The draft is read on the maintainer's machine: the installed `conformance`, not this one's path.
        portable = {**(results.run or {}), "conformance": BARE, "conformance_path": []}
        text = render(defect, finding, record, meta, result, records, rerun_command(record, results.adapters, portable))
    write_atomic(out, text)
    print(f"wrote {out}: {title}")
    print("the script, run alone, prints: " + " | ".join(result["lines"][:2]))
    return EXIT_PASS


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
