"""The quantized form: the output quantized to fp8 (float8_e4m3fn) with a static scale, fused.

vLLM and FlashInfer fuse `y_q = fp8(saturate(rmsnorm(x) * w / scale))` into the normalization.
The `quantized` check (optional `call_quantized`) calls it with the scales of vLLM's tests
(0.01, 1, 10) and one that saturates (cases/fused.py), and scores each output in fp8 units
against the oracle (numerics/fused.py): exact, or one unit off where the exact value lies within
the float32 intermediate's error of a rounding boundary (tolerance.quantized_zone).  Its classic
bugs are its own diagnoses: no saturation (NaN beyond ±448), rounding toward zero, the scale
multiplied instead of divided.
"""
from __future__ import annotations

import numpy as np

from conformance.cases.fused import QUANT_SCALES, saturating_scale
from conformance.checks.context import CaseRun
from conformance.checks.fused import call, copies, outcome
from conformance.checks.records import suite_error
from conformance.diagnosis.fused import own
from conformance.numerics import tolerance
from conformance.numerics.compare import numeric_array
from conformance.numerics.dtypes import dtype_name
from conformance.numerics.fused import FP8, fp8_units, near_boundary, quantized as fp8_oracle

# The classic bugs, each an oracle with one thing changed: (diagnosis id, detail, oracle keywords).
BUGS = (("fp8-no-saturation", "values beyond ±448 become NaN: the output is not clamped before the fp8 cast",
         {"saturate": False}),
        ("fp8-toward-zero", "fp8 values are rounded toward zero (truncated), not to the nearest even",
         {"toward_zero": True}),
        ("fp8-scale-multiplied", "the output is multiplied by the scale instead of divided by it",
         {"multiplied": True}))


def _fp8_or_numeric(value) -> np.ndarray:
    """The adapter's output as an array: float8_e4m3fn as it is, anything else as the other checks
    read it (compare.numeric_array: a numeric array, or TypeError saying what it is)."""
    if isinstance(value, np.ndarray) and dtype_name(value) == FP8.name:
        return value
    return numeric_array(value)


def _scales(y) -> tuple[float, ...]:
    extra = saturating_scale(y)
    return tuple(float(np.float32(s)) for s in QUANT_SCALES + ((extra,) if extra else ()))


def _judged(observed, y, scale, zone, **bug) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the error of each element in fp8 units where it is beyond the tolerance, else 0; the
    expected values; every element's fp8 units) of one output: exact, or one unit off where the
    exact value is near a rounding boundary (tolerance.quantized_zone)."""
    expected = fp8_oracle(y, scale, **bug)
    units = fp8_units(observed, expected)
    beyond = np.where(units == 0, 0.0, units)
    # Only an element off by at most the tolerance can be forgiven near a boundary: the boundary
    # is looked for there, not over a kernel-sized output that is mostly exact.
    maybe = (units > 0) & (units <= tolerance.quantized().limit)
    if maybe.any():
        with np.errstate(all="ignore"):
            exact = y[maybe] * scale if bug.get("multiplied") else y[maybe] / scale
        beyond[maybe] = np.where(near_boundary(exact, zone, saturate=bug.get("saturate", True)), 0.0, units[maybe])
    return beyond, expected, units


def quantized(ctx: CaseRun) -> dict:
    case, fmt = ctx.case, ctx.case.precision.compute
    y = ctx.oracle.y()
    zone = tolerance.quantized_zone(fmt, case.reduction_length)
    tol = tolerance.quantized()
    outputs, seconds = [], 0.0
    for scale in _scales(y):
        (x,) = copies(ctx.arrays.x)
        called = call(ctx.adapter.call_quantized, ctx.layer, x, scale)
        got = outcome(ctx, "quantized", called, "call_quantized")
        if isinstance(got, dict):
            return got
        seconds += called.seconds
        try:
            q = _fp8_or_numeric(got)
        except TypeError as exc:
            return ctx.record("quantized", "fail", f"the adapter returned {exc}", metrics={"scale": scale})
        outputs.append((scale, q))
    common = {"tolerance": tol.to_json() | {"zone": zone}, "seconds": seconds}
    dtypes = sorted({dtype_name(q) for _, q in outputs})
    metrics = {"out_dtype": "/".join(dtypes), "scales": [s for s, _ in outputs]}
    if dtypes != [FP8.name]:
        d = own("quantized-dtype", f"returns {'/'.join(dtypes)} where {FP8.name} is expected")
        return ctx.record("quantized", "fail", d["detail"], metrics=metrics, diagnosis=d, **common)
    shape = [s for _, q in outputs for s in [q.shape] if s != y.shape]
    if shape:
        return ctx.record("quantized", "fail", f"shape {shape[0]} differs from the expected {y.shape}", metrics=metrics)
    try:
        as_float = [(scale, q.astype(np.float64)) for scale, q in outputs]  # once each: fp8 to float64 is slow
        judged = [(scale, o, *_judged(o, y, scale, zone)) for scale, o in as_float]
    except BaseException as exc:
        return ctx.record("quantized", "error", suite_error("scoring", exc))
    off = [units for *_, units in judged]
    judged = [(scale, o, e, want) for scale, o, e, want, _ in judged]
    metrics |= {"max_fp8_units": max(float(u[np.isfinite(u)].max(initial=0.0)) for u in off),
                "beyond_tolerance": int(sum(int((e > 0).sum()) for _, _, e, _ in judged)),
                "saturated": int(sum(int((np.abs(o) == FP8.max).sum()) for _, o, _, _ in judged))}
    failing = [(scale, o, e, want) for scale, o, e, want in judged if (e > 0).any()]
    if not failing:
        return ctx.record("quantized", "pass", metrics=metrics, **common)
    scale, o, e, want = failing[0]
    i = tuple(int(k) for k in np.unravel_index(int(np.argmax(e)), e.shape))
    what = "the NaN pattern differs" if not np.isfinite(e[i]) else f"{e[i]:.0f} fp8 unit(s) off"
    message = (f"scale {scale:g}: {int((e > 0).sum())} element(s) beyond the tolerance, first {what} "
               f"at {list(i)}: got {float(o[i])!r}, expected {float(want[i])!r}")
    out = ctx.record("quantized", "fail", message, metrics=metrics, **common)
    out["diagnosis"] = _diagnose(y, judged, zone, (scale, i, o[i], want[i]), fmt)
    return out


def _diagnose(y, judged, zone, evidence, fmt) -> dict:
    """The first classic bug whose oracle the outputs pass on every scale, sound where they fail;
    then, for half inputs, the unfused form: y rounded to the input's dtype, then quantized (a
    double rounding, and where y is subnormal in the half dtype, an absolute error fp8 shows)."""
    scale_at, at, got, want = evidence
    alternatives = [(id_, detail, bug, y) for id_, detail, bug in BUGS]
    if fmt.name in ("float16", "bfloat16"):
        with np.errstate(all="ignore"):
            rounded = y.astype(fmt.np_dtype).astype(np.float64)
        alternatives.append(("fp8-half-intermediate", f"the output is rounded to {fmt.name} before it is quantized "
                             "(the normalization and the quantization not fused)", {}, rounded))
    for id_, detail, bug, y_seen in alternatives:
        explains, predicted = True, None
        for scale, o, _, _ in judged:
            err, expected, _ = _judged(o, y_seen, scale, zone, **bug)
            if (err > 0).any():
                explains = False
                break
            if scale == scale_at:
                predicted = float(expected[at])
        if explains:
            return own(id_, detail, {"index": list(at), "scale": scale_at, "got": float(got), "expected": float(want),
                                     "predicted": predicted})
    return {"id": "unexplained", "class": "unexplained", "detail": "no classic fp8 bug explains the quantized output",
            "evidence": {"index": list(at), "scale": scale_at, "got": float(got), "expected": float(want)}}
