"""The fused residual add: `residual <- x + residual; y = rmsnorm(residual) * w` in one call.

vLLM's fused_add_rms_norm, FlashInfer's fused_add_rmsnorm and Liger's fused add compute it in
one pass; FlashInfer adds in float32, the others in the input dtype.  For half inputs both are
valid: the sum rounded to the input dtype before normalizing, or kept in float32 with only the
written-back residual rounded.  The checks (optional `call_fused_add`, `grad_fused_add`):

- `fused_add`: y against both semantics (numerics/fused.py) with the forward tolerance; the one
  the output follows is reported (`sum_precision`, not a failure), and fails only where the
  adapter declares the other (`fused_add_sum`) or neither explains y;
- `fused_add_residual`: the written-back residual is x + residual correctly rounded, in the
  input's dtype;
- `fused_add_untouched`: x and residual hold their bits after the call; with the declared
  in-place form (`fused_add_in_place`), the residual buffer holds the sum and x holds its input
  or y;
- `fused_add_grad`: d(x) = d(residual) = rmsnorm's dx of the sum plus the written-back residual's
  gradient, and dscale (optional `grad_fused_add`).
"""
from __future__ import annotations

import numpy as np

from conformance.cases.fused import residual, residual_grad
from conformance.checks.context import CaseRun
from conformance.checks.fused import bits, changed, copies, once, outcome, semantics_evidence, shared
from conformance.checks.records import suite_error
from conformance.diagnosis.fused import Alternative, catalogue, explain, own, ulp_errors
from conformance.numerics import tolerance
from conformance.numerics.compare import numeric_array, score
from conformance.numerics.dtypes import FORMATS
from conformance.numerics.fused import follows, fused_add as fused_oracle, fused_add_grads, rounded, telling_elements
from conformance.numerics.oracle import oracle

DECLARED = {"float32": "float32", "input": None}  # fused_add_sum -> the format it means (None: the input's)


def _state(ctx: CaseRun) -> dict:
    """The inputs handed over (fresh copies, with their bits before the call) and the oracles."""
    st = shared(ctx)
    if "add" not in st:
        x, res = copies(ctx.arrays.x, residual(ctx.case))
        written, refs = fused_oracle(x, res, ctx.scale, ctx.arrays.dy, ctx.case.axes, ctx.eps, ctx.case.precision.compute)
        st["add"] = {"x": x, "residual": res, "before": (bits(x), bits(res)),
                     "written": written, "refs": refs}
    return st["add"]


def _called(ctx: CaseRun, check: str):
    st = _state(ctx)
    called = once(ctx, "call_fused_add", ctx.adapter.call_fused_add, ctx.layer, st["x"], st["residual"])
    return st, called, outcome(ctx, check, called, "call_fused_add", parts=2)


def _declared_format(ctx: CaseRun) -> str | None:
    declared = getattr(ctx.adapter, "fused_add_sum", None)
    if declared not in DECLARED:
        return None
    return DECLARED[declared] or ctx.case.precision.compute.name


def output(ctx: CaseRun) -> dict:
    """`fused_add`: y against the sum normalized in each valid precision."""
    st, called, got = _called(ctx, "fused_add")
    if isinstance(got, dict):
        return got
    y = got[0]
    case, fmt = ctx.case, ctx.case.precision.compute
    tol = tolerance.forward(fmt, case.reduction_length)
    try:
        refs = st["refs"]
        scores = {k: score(y, r.y, fmt, None, tol, axes=case.axes) for k, r in refs.items()}
    except BaseException as exc:
        return ctx.record("fused_add", "error", suite_error("scoring", exc))
    first = next(iter(refs))
    passing = [k for k, s in scores.items() if s.status == "pass"]
    metrics = dict(scores[passing[0] if passing else first].metrics)
    common = {"tolerance": tol.to_json(), "seconds": called.seconds}
    if not passing:
        metrics["sum_precision"] = "unexplained"
        out = ctx.record("fused_add", "fail", scores[first].message, metrics=metrics, **common)
        if "out_dtype" in scores[first].metrics:
            out["diagnosis"] = _diagnose_output(ctx, st, numeric_array(y), tol)
        return out
    candidates = {k: refs[k].y for k in refs}
    seen = follows(numeric_array(y), candidates, fmt)
    if seen not in passing:
        seen = passing[0] if len(passing) == 1 < len(refs) and telling_elements(candidates, fmt) else None
    st["semantics"] = seen or first
    metrics["sum_precision"] = seen or "indistinguishable"
    metrics["sum_telling_elements"] = telling_elements(candidates, fmt)
    declared = _declared_format(ctx)
    if seen is None or declared is None or seen == declared or len(refs) == 1:
        return ctx.record("fused_add", "pass", metrics=metrics, **common)
    evidence = {"format": seen, **semantics_evidence(y, refs[declared].y, refs[seen].y, fmt)}
    if FORMATS[seen].digits < FORMATS[declared].digits:
        d = own("sum-lower-precision", f"the sum x + residual is rounded to {seen} before it is normalized, "
                                       f"where the adapter declares {declared} (fused_add_sum)", evidence)
    else:
        d = own("sum-precision-undeclared", f"the sum x + residual is normalized in {seen}, where the adapter "
                                            f"declares {declared} (fused_add_sum)", evidence)
    return ctx.record("fused_add", "fail", d["detail"], metrics=metrics, diagnosis=d, **common)


def _diagnose_output(ctx: CaseRun, st: dict, y: np.ndarray, tol) -> dict:
    case, fmt = ctx.case, ctx.case.precision.compute
    refs = st["refs"]
    expected = next(iter(refs.values())).y
    x64, r64 = _input(st, "x").astype(np.float64), _input(st, "residual").astype(np.float64)
    alternatives = [Alternative("normalizes-x", "y is rmsnorm(x): the residual is not added before normalizing",
                                ctx.oracle.y())]
    for name in _lower(fmt):
        alternatives.append(Alternative(
            "sum-lower-precision", f"the sum x + residual is computed in {name} for a {fmt.name} input",
            oracle(_sum_in(x64, r64, name), ctx.scale, ctx.arrays.dy, case.axes, ctx.eps).y))
    found = explain(y, expected, alternatives, lambda o, r: ulp_errors(o, r, fmt), tol.limit)
    if found:
        return found
    first = next(iter(refs))
    summed = rounded(x64 + r64, FORMATS[first])
    prec = case.precision
    return catalogue(summed, ctx.scale, ctx.arrays.dy, case.axes, ctx.eps, "forward", y, prec.compute.name,
                     prec.param.name, expected, fmt, tol)


def _lower(fmt) -> list[str]:
    """The half formats with fewer digits than `fmt`: where a kernel's sum may have been rounded."""
    return [name for name in ("float16", "bfloat16") if FORMATS[name].digits < fmt.digits]


def _sum_in(x64, r64, name: str) -> np.ndarray:
    """x + residual as a kernel computes it in the format `name`: both cast to it, added there."""
    f = FORMATS[name]
    return rounded(rounded(x64, f) + rounded(r64, f), f)


def _input(st: dict, name: str) -> np.ndarray:
    """An input as it was handed over (its bits before the call: an in-place kernel writes it)."""
    x = st[name]
    return np.frombuffer(st["before"][0 if name == "x" else 1], x.dtype).reshape(x.shape)


def residual_out(ctx: CaseRun) -> dict:
    """`fused_add_residual`: the written-back residual, its values and its dtype."""
    st, called, got = _called(ctx, "fused_add_residual")
    if isinstance(got, dict):
        return got
    y, new = got
    fmt = ctx.case.precision.compute
    tol = tolerance.residual_sum(fmt)
    try:
        s = score(new, st["written"], fmt, fmt.name, tol)
    except BaseException as exc:
        return ctx.record("fused_add_residual", "error", suite_error("scoring", exc))
    common = {"metrics": s.metrics, "tolerance": tol.to_json(), "seconds": called.seconds}
    if s.status == "pass":
        return ctx.record("fused_add_residual", "pass", **common)
    out = ctx.record("fused_add_residual", "fail", s.message, **common)
    if "out_dtype" not in s.metrics:
        return out
    got_dtype = s.metrics["out_dtype"]
    values = numeric_array(new)
    exact = _input(st, "x").astype(np.float64) + _input(st, "residual").astype(np.float64)
    if got_dtype != fmt.name and got_dtype in FORMATS and values.shape == exact.shape and \
            score(values, rounded(exact, FORMATS[got_dtype]), FORMATS[got_dtype], None, tol).status == "pass":
        out["diagnosis"] = own("residual-dtype", f"the written-back residual is the sum in {got_dtype} for a "
                                                 f"{fmt.name} input", {"format": got_dtype})
        return out
    x64, r64 = _input(st, "x").astype(np.float64), _input(st, "residual").astype(np.float64)
    alternatives = [Alternative("residual-not-written", "the residual output holds the residual input, not x + residual",
                                r64)]
    if np.shape(y) == values.shape:
        alternatives.append(Alternative("residual-is-output", "the residual output holds y (the other output), not "
                                                              "x + residual", np.asarray(y, np.float64)))
    alternatives += [Alternative("sum-lower-precision", f"the written-back residual is the sum computed in {name} for a "
                                                        f"{fmt.name} input", rounded(_sum_in(x64, r64, name), fmt))
                     for name in _lower(fmt)]
    found = explain(values, st["written"], alternatives, lambda o, r: ulp_errors(o, r, fmt), tol.limit)
    out["diagnosis"] = found or own_unexplained(values, st["written"], fmt)
    return out


def own_unexplained(values, expected, fmt) -> dict:
    err = ulp_errors(values, expected, fmt)
    at = tuple(int(k) for k in np.unravel_index(int(np.argmax(err)), err.shape)) if err.size else None
    ev = {"index": list(at), "got": float(np.asarray(values, np.float64)[at]), "expected": float(expected[at])} if at else None
    return {"id": "unexplained", "class": "unexplained", "detail": "the written-back residual is not x + residual",
            **({"evidence": ev} if ev else {})}


def untouched(ctx: CaseRun) -> dict:
    """`fused_add_untouched`: what the call left in the buffers it was handed."""
    st, called, got = _called(ctx, "fused_add_untouched")
    if isinstance(got, dict) and got["status"] == "unsupported":  # not for this input: nothing was handed over
        return got
    x, res = st["x"], st["residual"]
    n_x, n_r = changed(x, st["before"][0]), changed(res, st["before"][1])
    if not getattr(ctx.adapter, "fused_add_in_place", False):
        if not n_x and not n_r:
            return ctx.record("fused_add_untouched", "pass")
        parts = [f"{name} ({n} of {a.size} elements)" for name, n, a in (("x", n_x, x), ("residual", n_r, res)) if n]
        message = "written in place: " + ", ".join(parts) + " (the adapter does not declare fused_add_in_place)"
        return ctx.record("fused_add_untouched", "fail", message, diagnosis=own("fused-inputs-modified", message))
    # The in-place form: the residual's buffer holds the sum; x holds its input or y.
    fmt = ctx.case.precision.compute
    want = rounded(st["written"], fmt).astype(fmt.np_dtype)
    problems = []
    if bits(res) != bits(want):
        problems.append(f"the residual buffer differs from x + residual in {changed(res, bits(want))} of {res.size} "
                        f"elements")
    y = got[0] if isinstance(got, tuple) else None
    if n_x and not (y is not None and np.asarray(y).dtype == x.dtype and np.shape(y) == x.shape and bits(x) == bits(np.asarray(y))):
        problems.append(f"x's buffer holds neither its input nor y ({n_x} of {x.size} elements changed)")
    if not problems:
        return ctx.record("fused_add_untouched", "pass", metrics={"in_place": True})
    message = "; ".join(problems)
    d = own("in-place-residual-not-sum" if problems[0].startswith("the residual") else "fused-inputs-modified", message)
    return ctx.record("fused_add_untouched", "fail", message, metrics={"in_place": True}, diagnosis=d)


def grad(ctx: CaseRun) -> dict:
    """`fused_add_grad`: gradients through both outputs."""
    st = _state(ctx)
    case, prec = ctx.case, ctx.case.precision
    fmt = prec.compute
    dres = residual_grad(case)
    x, res, dy, dr = copies(_input(st, "x"), _input(st, "residual"), ctx.arrays.dy, dres)
    called = once(ctx, "grad_fused_add", ctx.adapter.grad_fused_add, ctx.layer, x, res, dy, dr)
    got = outcome(ctx, "fused_add_grad", called, "grad_fused_add", parts=3)
    if isinstance(got, dict):
        return got
    dx, dres_in, dscale = got
    semantics = st.get("semantics") or next(iter(st["refs"]))
    ref = st["refs"][semantics]
    want, magnitude = fused_add_grads(ref, dres)
    n = case.reduction_length
    tol_x, tol_s = tolerance.grad_x(fmt, n), tolerance.grad_scale(fmt, n, case.rows)
    try:
        parts = [("dx", dx, want, magnitude, tol_x, fmt.name), ("d(residual)", dres_in, want, magnitude, tol_x, fmt.name)]
        if dscale is not None:
            parts.append(("dscale", dscale, ref.dscale, ref.dscale_magnitude, tol_s, prec.param_dtype_judged))
        scores = [(name, score(v, w, fmt, dt, tol, magnitude=m, axes=case.axes if name != "dscale" else None), v, w, m, tol)
                  for name, v, w, m, tol, dt in parts]
    except BaseException as exc:
        return ctx.record("fused_add_grad", "error", suite_error("scoring", exc))
    metrics = {f"{name}_max_units": s.metrics.get("max_units") for name, s, *_ in scores}
    metrics["sum_precision"] = semantics
    bad = [(name, s, v, w, m, tol) for name, s, v, w, m, tol in scores if s.status != "pass"]
    if not bad:
        return ctx.record("fused_add_grad", "pass", metrics=metrics, tolerance=tol_x.to_json(), seconds=called.seconds)
    name, s, v, w, m, tol = bad[0]
    out = ctx.record("fused_add_grad", "fail", f"{name}: {s.message}", metrics=metrics | s.metrics,
                     tolerance=tol.to_json(), seconds=called.seconds)
    if "out_dtype" in s.metrics:
        out["diagnosis"] = _diagnose_grad(ctx, st, semantics, name, numeric_array(v), w, m, tol, dres)
    return out


def _diagnose_grad(ctx, st, semantics, name, observed, expected, magnitude, tol, dres) -> dict:
    case, prec = ctx.case, ctx.case.precision
    fmt = prec.compute
    ref = st["refs"][semantics]
    summed = rounded(_input(st, "x").astype(np.float64) + _input(st, "residual").astype(np.float64), FORMATS[semantics])
    if name == "dscale":
        return catalogue(summed, ctx.scale, ctx.arrays.dy, case.axes, ctx.eps, "grad_scale", observed, fmt.name,
                         prec.param.name, expected, fmt, tol, magnitude)
    alternatives = [Alternative("grad-residual-dropped", f"{name} is rmsnorm's dx alone: the written-back residual's "
                                                         "gradient is not added", ref.dx)]
    found = explain(observed, expected, alternatives, lambda o, r: ulp_errors(o, r, fmt, magnitude), tol.limit)
    if found:
        return found
    # The part through the normalization: what is left once the residual's own gradient is taken out.
    return catalogue(summed, ctx.scale, ctx.arrays.dy, case.axes, ctx.eps, "grad_x", observed - np.asarray(dres, np.float64),
                     fmt.name, prec.param.name, ref.dx, fmt, tol, ref.dx_magnitude)
