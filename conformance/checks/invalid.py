"""`invalid_config`: what a framework does with an invalid or borderline configuration.

There is no single right answer for most of them (cases/invalid.py), so the record says what
happened (`outcome`): a clear error of the framework at build or call passes, a silent result is
scored against the formula where the mathematics defines one, and only a silent wrong number fails;
an exception of the adapter's own code is an `adapter error at build|call` (an error, never a pass).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.cases.invalid import CHECK, Invalid
from conformance.checks.records import adapter_own, framework_error, record
from conformance.numerics import tolerance
from conformance.numerics.compare import numeric_array, score
from conformance.numerics.dtypes import FORMATS, dtype_name
from conformance.numerics.oracle import oracle
from conformance.spec import LayerSpec, canonical_axes


@dataclass(frozen=True)
class InvalidRun:
    """What the check of an invalid configuration gets: it builds the layer itself."""

    adapter: object
    case: Invalid

    def record(self, check: str, status: str, message: str = "", **fields) -> dict:
        return record(self.case, self.adapter.name, check, status, message, **fields)


def invalid_config(run: InvalidRun) -> dict:
    """What the framework does with an invalid or borderline configuration (cases/invalid.py)."""
    adapter, inv = run.adapter, run.case
    x, scale = inv.arrays()
    spec = LayerSpec(inv.shape, inv.axis, inv.epsilon, inv.dtype, scale)

    def rec(status, outcome, message, **fields):
        return record(inv, adapter.name, CHECK, status, message, outcome=outcome, **fields)

    try:
        reason = adapter.supports(spec)
    except BaseException as exc:  # the adapter's translation itself cannot express it
        reason = f"cannot be expressed ({type(exc).__name__}: {exc})"
    if reason:
        return rec("unsupported", "not expressible", str(reason))
    try:
        layer = adapter.build(spec)
    except BaseException as exc:
        return _raised(rec, "build", exc)
    try:
        y = adapter.call(layer, x)
    except BaseException as exc:
        return _raised(rec, "call", exc)
    try:
        y = numeric_array(y)
    except TypeError as exc:
        return rec("fail", "silent wrong result", f"returned {exc}")
    if not inv.has_reference:
        return rec("pass", "silent result", f"returned {dtype_name(y)} of shape {y.shape} without complaint; "
                   "there is no single right answer to score it against",
                   metrics={"out_dtype": dtype_name(y), "out_shape": list(y.shape)})
    axes = canonical_axes(inv.axis, len(inv.shape))
    ref = oracle(x.astype(np.float64), scale, np.zeros(x.shape), axes, inv.epsilon)
    metrics = {"out_dtype": dtype_name(y), "out_shape": list(y.shape)}
    if y.dtype.kind in "biu":  # a normalization cannot be an integer: the result was truncated
        return rec("fail", "silent wrong result", f"returned {dtype_name(y)} values {y.ravel()[:4].tolist()}, the "
                   f"formula gives {np.round(ref.y.ravel()[:4], 4).tolist()}", metrics=metrics)
    fmt = FORMATS["float32"]
    try:
        s = score(y, ref.y, fmt, dtype_name(y), tolerance.forward(fmt, x.shape[-1]), axes=axes)
    except (TypeError, ValueError) as exc:
        return rec("fail", "silent wrong result", f"returned something not comparable: {exc}", metrics=metrics)
    if s.status == "pass":
        return rec("pass", "silent result, agrees with the formula", "", metrics=s.metrics)
    return rec("fail", "silent wrong result", s.message, metrics=s.metrics)


def _raised(rec, step: str, exc: BaseException) -> dict:
    """The framework refusing the configuration passes; the adapter's own code raising
    (checks/records.py: adapter_own) is an adapter error, never a refusal."""
    if adapter_own(exc):
        return rec("error", f"adapter error at {step}", framework_error(step, exc))
    return rec("pass", f"error at {step}", framework_error(step, exc))
