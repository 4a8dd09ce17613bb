"""The checks against the float64 oracle: `forward`, `out_dtype`, `grad_x`, `grad_scale`.

Each scores one result with the tolerance of tolerance.py and, where it does not pass,
attaches the diagnosis (diagnosis/diagnose.py).  `out_dtype` judges the forward output's dtype
apart from its values: a right value in float32 for a float16 input is a dtype finding, not a
wrong number.
"""
from __future__ import annotations

from conformance.checks.context import CaseRun
from conformance.checks.records import framework_error, suite_error
from conformance.diagnosis.diagnose import diagnosis
from conformance.numerics import tolerance
from conformance.numerics.compare import numeric_array, score
from conformance.numerics.dtypes import dtype_name


def _scored(ctx: CaseRun, check: str, tol, seconds: float, result, expected, expected_dtype: str,
            **kwargs) -> dict:
    """Score one result, and diagnose it if it does not pass; an exception of the scoring
    itself is that check's `error`, nothing more."""
    fmt = ctx.case.precision.compute
    try:
        s = score(result, expected, fmt, expected_dtype, tol, **kwargs)
        out = ctx.record(check, s.status, s.message, metrics=s.metrics, tolerance=tol.to_json(), seconds=seconds)
    except BaseException as exc:
        return ctx.record(check, "error", suite_error("scoring", exc))
    if s.status != "pass" and "out_dtype" in s.metrics:
        try:
            out["diagnosis"] = ctx.diagnose(check, numeric_array(result), fmt, tol)
        except BaseException as exc:
            out["diagnosis"] = diagnosis("unexplained", "unexplained", suite_error("the diagnosis", exc))
    return out


def forward(ctx: CaseRun) -> dict:
    """The output's values against the oracle; its dtype is out_dtype's to judge."""
    called, prec = ctx.forward(), ctx.case.precision
    if called.error is not None:
        return ctx.record("forward", "error", framework_error("call", called.error))
    y = called.value
    try:
        got_dtype = dtype_name(numeric_array(y))
    except TypeError:
        got_dtype = prec.compute.name
    out = _scored(ctx, "forward", tolerance.forward(prec.compute, ctx.case.reduction_length), called.seconds,
                  y, ctx.oracle.blocked("y"), got_dtype, axes=ctx.case.axes)
    if out["status"] == "pass" or "out_dtype" in out["metrics"]:
        ctx.y = y  # numeric: what out_dtype and a rebuilt layer's output are compared with
    return out


def out_dtype(ctx: CaseRun) -> dict:
    if ctx.y is None:
        return ctx.record("out_dtype", "unsupported", "no numeric forward output (see the forward record)")
    got, expected = dtype_name(numeric_array(ctx.y)), ctx.case.precision.compute.name
    if got == expected:
        return ctx.record("out_dtype", "pass", metrics={"out_dtype": got})
    return ctx.record("out_dtype", "fail", f"returns {got} for a {ctx.case.dtype} case (expected {expected})",
                      metrics={"out_dtype": got},
                      diagnosis=diagnosis("out-dtype", "dtype", f"returns {got} where the case's dtype is {expected}"))


def _gradient(ctx: CaseRun, check: str):
    """(dx, dscale, seconds) of the one backward pass, or the record that ends `check` early."""
    called = ctx.gradients()
    if isinstance(called.error, NotImplementedError):  # grad() is provided, but not for this input
        return ctx.record(check, "unsupported", str(called.error) or "the adapter has no gradients for this case")
    try:
        if called.error is not None:
            raise called.error
        dx, dscale = called.value  # a non-pair raises here: the adapter's error
    except BaseException as exc:
        return ctx.record(check, "error", framework_error("grad", exc))
    return dx, dscale, called.seconds


def grad_x(ctx: CaseRun) -> dict:
    got = _gradient(ctx, "grad_x")
    if isinstance(got, dict):
        return got
    dx, _, seconds = got
    case = ctx.case
    return _scored(ctx, "grad_x", tolerance.grad_x(case.precision.compute, case.reduction_length), seconds,
                   dx, ctx.oracle.blocked("dx"), case.precision.compute.name, axes=case.axes)


def grad_scale(ctx: CaseRun) -> dict:
    got = _gradient(ctx, "grad_scale")
    if isinstance(got, dict):
        return got
    _, dscale, seconds = got
    if dscale is None:
        return ctx.record("grad_scale", "unsupported", "the layer has no scale gradient")
    case, prec = ctx.case, ctx.case.precision
    # dscale is in the parameters' dtype, but its error is that of the compute dtype.
    expected, magnitude = ctx.oracle.dscale()
    return _scored(ctx, "grad_scale", tolerance.grad_scale(prec.compute, case.reduction_length, case.rows),
                   seconds, dscale, expected, prec.param_dtype_judged, magnitude=magnitude)
