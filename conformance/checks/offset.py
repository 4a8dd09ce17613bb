"""The offset form: a layer that multiplies by (offset + w), as Gemma's RMSNorm applies 1 + w.

vLLM's kernel once computed `output * (1 + weight)` in bfloat16 (vllm-project/vllm#3653); a
bfloat16 weight of 15.8125 shows why 1 + w must be added in float32 (vllm-project/vllm#29810).
The adapter's optional `build_offset(spec)` builds the layer with `spec.offset` = 1.0 and
`spec.scale` = w (cases/fused.py draws w where the precision of 1 + w shows); the checks score
it against the offset oracle (numerics/fused.py), not through an effective scale:

- `offset_forward`: y = rmsnorm(x) * fl(1 + w), 1 + w in float32 (in float64 for float64
  weights); where the output follows 1 + w rounded to the weight's half dtype (or to float32 for
  float64 weights) it fails as a precision finding.  The precision observed is the record's
  `offset_precision` (the reports' defaults table);
- `offset_grad`: dx and dw of that layer (`grad`), against the same oracle.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from conformance.adapter import provides
from conformance.cases.fused import offset_weight
from conformance.checks.context import CaseRun
from conformance.checks.fused import copies, once, outcome, semantics_evidence, shared
from conformance.checks.records import suite_error
from conformance.diagnosis.fused import Alternative, catalogue, explain, own, ulp_errors
from conformance.numerics import tolerance
from conformance.numerics.compare import numeric_array, score
from conformance.numerics.dtypes import FORMATS
from conformance.numerics.fused import follows, offset_multipliers, telling_elements
from conformance.numerics.oracle import lazy, oracle

OFFSET = 1.0  # Gemma's; Liger's `offset` argument takes any, the suite asks for this one


def _state(ctx: CaseRun) -> dict:
    st = shared(ctx)
    if "offset" not in st:
        w = offset_weight(ctx.case)
        st["offset"] = {"w": w, "multipliers": offset_multipliers(w, OFFSET, ctx.case.precision.param),
                        "spec": replace(ctx.spec, offset=OFFSET, scale=w)}
    return st["offset"]


def _layer(ctx: CaseRun, check: str):
    """The offset layer, built once for both checks, and the oracles of each precision of 1 + w
    (with the epsilon that layer applies, where the adapter declares effective parameters), or
    the record that ends `check`."""
    st = _state(ctx)
    why = once(ctx, "offset_supports", ctx.adapter.supports, st["spec"])
    if why.error is None and why.value:
        return st, ctx.record(check, "unsupported", str(why.value))
    if why.error is not None:
        return st, outcome(ctx, check, why, "supports")
    built = once(ctx, "build_offset", ctx.adapter.build_offset, st["spec"])
    layer = outcome(ctx, check, built, "build_offset")
    if "refs" not in st and not isinstance(layer, dict):
        eps = ctx.eps
        if provides(ctx.adapter, "effective"):
            eps = float((ctx.adapter.effective(layer) or {}).get("epsilon", eps))
        case = ctx.case
        # One oracle per precision of 1 + w, each field computed when read: the forward check reads
        # every y, the backward one the gradients of the one the output follows.
        st["refs"] = {k: lazy(ctx.arrays.x, m, ctx.arrays.dy, case.axes, eps) for k, m in st["multipliers"].items()}
        st["eps"] = eps
    return st, layer


def forward(ctx: CaseRun) -> dict:
    """`offset_forward`: the output against rmsnorm(x) * fl(1 + w) in each precision."""
    st, layer = _layer(ctx, "offset_forward")
    if isinstance(layer, dict):
        return layer
    (x,) = copies(ctx.arrays.x)
    called = once(ctx, "offset_call", ctx.adapter.call, layer, x)
    y = outcome(ctx, "offset_forward", called, "call")
    if isinstance(y, dict):
        return y
    case, fmt = ctx.case, ctx.case.precision.compute
    tol = tolerance.forward(fmt, case.reduction_length)
    refs, ms = st["refs"], st["multipliers"]
    right = next(iter(refs))
    try:
        scores = {k: score(y, r.y, fmt, None, tol, axes=case.axes) for k, r in refs.items()}
    except BaseException as exc:
        return ctx.record("offset_forward", "error", suite_error("scoring", exc))
    common = {"tolerance": tol.to_json(), "seconds": called.seconds}
    metrics = dict(scores[right].metrics)
    if "out_dtype" not in metrics:  # not a numeric array: the adapter's wrong output
        return ctx.record("offset_forward", "fail", scores[right].message, metrics=metrics, **common)
    observed = numeric_array(y)
    candidates = {k: r.y for k, r in refs.items()}
    passing = [k for k in refs if scores[k].status == "pass"]
    seen = follows(observed, candidates, fmt)
    if seen not in passing:  # where one alone passes the tolerance, the tolerance tells them apart
        seen = passing[0] if len(passing) == 1 else None
    metrics["offset_telling_elements"] = telling_elements(candidates, fmt)
    if right in passing and seen in (right, None):
        st["semantics"] = right
        metrics["offset_precision"] = seen or "indistinguishable"
        return ctx.record("offset_forward", "pass", metrics=metrics, **common)
    if seen is not None:
        k = seen
        st["semantics"] = k
        metrics["offset_precision"] = k
        d = own("offset-in-weight-dtype" if k != "float32" else "offset-in-float32",
                f"{OFFSET:g} + w is computed in {k}: {_example(st['w'], ms[right], ms[k])}",
                {"format": k, **semantics_evidence(observed, refs[right].y, refs[k].y, fmt)})
        return ctx.record("offset_forward", "fail", d["detail"], metrics=metrics, diagnosis=d, **common)
    lower = _at_float32_accuracy(ctx, refs, observed)
    if lower is not None:  # a float64 layer computed in float32, 1 + w with it (GemmaRMSNorm's x.float())
        st["semantics"] = lower
        metrics["offset_precision"] = lower
        d = own("offset-in-float32", f"{OFFSET:g} + w is computed in float32, the whole layer with float32 accuracy "
                                     f"for a float64 input: {_example(st['w'], ms[right], ms[lower])}",
                {"format": lower, **_worst_evidence(observed, refs[right].y, refs[lower].y, fmt)})
        return ctx.record("offset_forward", "fail", scores[right].message, metrics=metrics, diagnosis=d, **common)
    metrics["offset_precision"] = "unexplained"
    out = ctx.record("offset_forward", "fail", scores[right].message, metrics=metrics, **common)
    out["diagnosis"] = _diagnose(ctx, st, observed, tol)
    return out


def _worst_evidence(observed, expected, predicted, fmt) -> dict:
    """Got / expected / predicted where the output is furthest from the expected value."""
    err = ulp_errors(observed, expected, fmt)
    at = tuple(int(k) for k in np.unravel_index(int(np.argmax(err)), err.shape)) if err.size else None
    if at is None:
        return {}
    return {"index": list(at), "got": float(np.asarray(observed)[at]), "expected": float(expected[at]),
            "predicted": float(predicted[at])}


def _at_float32_accuracy(ctx: CaseRun, refs: dict, observed) -> str | None:
    """For a float64 case that no precision of 1 + w explains: "float32" where 1 + w in float32
    does at float32's tolerance (diagnose.py tries float64 results at float32's accuracy too)."""
    if ctx.case.precision.compute.digits < 53 or "float32" not in refs or next(iter(refs)) == "float32":
        return None
    f32 = FORMATS["float32"]
    tol = tolerance.forward(f32, ctx.case.reduction_length)
    return "float32" if score(observed, refs["float32"].y, f32, None, tol, axes=ctx.case.axes).status == "pass" else None


def _example(w, right, wrong) -> str:
    """One weight where the two precisions differ most, e.g. "1 + 15.8125 = 16.75 (exact 16.8125)"."""
    with np.errstate(all="ignore"):
        gap = np.abs(right - wrong) / np.maximum(np.abs(right), 1e-300)
    i = np.unravel_index(int(np.argmax(gap)), gap.shape)
    return f"{OFFSET:g} + {float(np.asarray(w, np.float64)[i])!r} = {float(wrong[i])!r} (exact {float(right[i])!r})"


def _diagnose(ctx: CaseRun, st: dict, observed, tol) -> dict:
    case, prec = ctx.case, ctx.case.precision
    fmt = prec.compute
    refs, ms = st["refs"], st["multipliers"]
    right = next(iter(refs))
    w64 = np.asarray(st["w"], np.float64)
    ignored = oracle(ctx.arrays.x, w64, ctx.arrays.dy, case.axes, st["eps"]).y
    found = explain(observed, refs[right].y, [Alternative("offset-ignored", "y is rmsnorm(x) * w: the offset is not "
                                                                              "added", ignored)],
                    lambda o, r: ulp_errors(o, r, fmt), tol.limit)
    return found or catalogue(ctx.arrays.x, ms[right], ctx.arrays.dy, case.axes, st["eps"], "forward", observed,
                              fmt.name, prec.param.name, refs[right].y, fmt, tol)


def grad(ctx: CaseRun) -> dict:
    """`offset_grad`: dx and dw of the offset layer, through `grad`."""
    st, layer = _layer(ctx, "offset_grad")
    if isinstance(layer, dict):
        return layer
    x, dy = copies(ctx.arrays.x, ctx.arrays.dy)
    called = once(ctx, "offset_grad", ctx.adapter.grad, layer, x, dy)
    got = outcome(ctx, "offset_grad", called, "grad", parts=2)
    if isinstance(got, dict):
        return got
    dx, dw = got
    case, prec = ctx.case, ctx.case.precision
    fmt = prec.compute
    semantics = st.get("semantics") or next(iter(st["refs"]))
    ref, m = st["refs"][semantics], st["multipliers"][semantics]
    n = case.reduction_length
    tol_x, tol_w = tolerance.grad_x(fmt, n), tolerance.grad_scale(fmt, n, case.rows)
    try:
        parts = [("dx", "grad_x", dx, ref.dx, ref.dx_magnitude, tol_x, fmt.name, case.axes)]
        if dw is not None:
            parts.append(("dw", "grad_scale", dw, ref.dscale, ref.dscale_magnitude, tol_w, None, None))
        scored = [(name, check, score(v, e, fmt, dt, tol, magnitude=mag, axes=axes), v, e, mag, tol)
                  for name, check, v, e, mag, tol, dt, axes in parts]
    except BaseException as exc:
        return ctx.record("offset_grad", "error", suite_error("scoring", exc))
    metrics = {f"{name}_max_units": s.metrics.get("max_units") for name, _, s, *_ in scored}
    metrics["offset_precision"] = semantics
    bad = [item for item in scored if item[2].status != "pass"]
    if not bad:
        return ctx.record("offset_grad", "pass", metrics=metrics, tolerance=tol_x.to_json(), seconds=called.seconds)
    name, check, s, v, e, mag, tol = bad[0]
    out = ctx.record("offset_grad", "fail", f"{name}: {s.message}", metrics=metrics | s.metrics,
                     tolerance=tol.to_json(), seconds=called.seconds)
    if "out_dtype" in s.metrics:
        observed = numeric_array(v)
        ignored = oracle(ctx.arrays.x, np.asarray(st["w"], np.float64), ctx.arrays.dy, case.axes, st["eps"])
        alt = Alternative("offset-ignored", f"{name} is that of rmsnorm(x) * w: the offset is not added",
                          ignored.dx if name == "dx" else ignored.dscale)
        found = explain(observed, e, [alt], lambda o, r: ulp_errors(o, r, fmt, np.maximum(mag, np.abs(r))), tol.limit)
        out["diagnosis"] = found or catalogue(ctx.arrays.x, m, ctx.arrays.dy, case.axes, st["eps"], check, observed,
                                              fmt.name, prec.param.name, e, fmt, tol, mag)
    return out
