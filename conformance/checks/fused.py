"""What the checks of the fused forms share: the cases they run on, their calls, their records.

Inference engines rarely call a bare RMS normalization: they fuse it with the residual add
(fused_add.py), apply the scale as (1 + w) (offset.py) or quantize the output to fp8
(quantized.py).  Each form is an optional extension of the adapter contract (conformance/
adapter.py), with its own float64 oracle (conformance/numerics/fused.py), its checks in the
registry and its own diagnoses (conformance/diagnosis/fused.py).

The forms run on ordinary cases of every suite (`applies`), with their extra inputs derived from
the case (cases/fused.py), so the standard and kernels suites include them without new case
fields.
"""
from __future__ import annotations

import math

import numpy as np

from conformance.cases.case import Case
from conformance.checks.context import CaseRun, _call
from conformance.checks.records import framework_error
from conformance.diagnosis.fused import OWN

# The data a residual stream carries: the range and special-value distributions are the plain
# checks' business, and a zero scale makes every semantics the same.
DISTRIBUTIONS = ("normal", "shifted", "mixed", "spike")
# Each form holds a few float64 oracles of the whole input (both sums, both multipliers, four
# quantization scales): beyond this the plain checks' cases of the same shape family show enough.
MAX_ELEMENTS = 1 << 21


def applies(case) -> bool:
    """The cases of the fused forms: the hidden dimension of a transformer layer, i.e. the last
    axis alone of a non-empty input of rank 1 or more, up to MAX_ELEMENTS, with ordinary data and
    a non-zero scale; each dtype and shape of a suite's last-axis layouts (16 cases of `smoke`,
    25 of `standard`, 15 of `kernels`)."""
    if not isinstance(case, Case) or not case.shape or case.rows == 0 or math.prod(case.shape) > MAX_ELEMENTS:
        return False
    return case.axes == (len(case.shape) - 1,) and case.distribution in DISTRIBUTIONS and case.scale != "zeros"


def titles(*ids: str) -> dict[str, str]:
    """The finding titles of the form's own diagnoses, for a Check's `diagnoses`."""
    return {i: OWN[i][1] for i in ids}


def shared(ctx: CaseRun) -> dict:
    """What the checks of one case's fused forms leave for each other (the inputs handed over,
    the oracles, the semantics an output follows): working state of that CaseRun."""
    return ctx.__dict__.setdefault("fused_state", {})


def once(ctx: CaseRun, key: str, fn, *args):
    """`fn(*args)` the first time `key` is asked for in this case (context.Called)."""
    return ctx.once(key, fn, *args)


def call(fn, *args):
    """One guarded call into the adapter (context.Called), not memoized."""
    return _call(fn, *args)


def outcome(ctx: CaseRun, check: str, called, method: str, parts: int | None = None):
    """The value of a call, or the record that ends `check`: `unsupported` where the provided
    method declines this input (NotImplementedError), `error` where it raised or returned
    something other than `parts` values."""
    if isinstance(called.error, NotImplementedError):
        return ctx.record(check, "unsupported", str(called.error) or f"{method}() does not take this case")
    if called.error is not None:
        return ctx.record(check, "error", framework_error(method, called.error))
    if parts is None:
        return called.value
    value = called.value
    if not isinstance(value, (tuple, list)) or len(value) != parts:
        return ctx.record(check, "fail", f"{method}() returned {type(value).__name__}, not {parts} arrays",
                          diagnosis={"id": "unexplained", "class": "unexplained",
                                     "detail": f"{method}() returned {type(value).__name__}, not {parts} arrays"})
    return tuple(value)


def copies(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Fresh C-contiguous copies: what is handed to a fused form, so the case's own arrays stay as
    they are whatever it writes."""
    return tuple(np.array(a, copy=True, order="C") for a in arrays)


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def changed(now: np.ndarray, before: bytes) -> int:
    """How many elements of `now` differ in their bits from `before`."""
    width = max(now.dtype.itemsize, 1)
    a = np.frombuffer(bits(now), np.uint8).reshape(-1, width)
    b = np.frombuffer(before, np.uint8).reshape(-1, width)
    return int(np.any(a != b, axis=1).sum())


def semantics_evidence(observed, expected, predicted, fmt) -> dict:
    """Got / expected / predicted where an output follows another semantics than the expected
    one: the element where it is that semantics' correct rounding and furthest from the expected
    value's (so the evidence shows the choice, never contradicts it)."""
    from conformance.numerics.fused import rounded

    o = np.asarray(observed, np.float64)
    e, p = np.asarray(expected, np.float64), np.asarray(predicted, np.float64)
    if o.shape != e.shape or not o.size:
        return {}
    with np.errstate(invalid="ignore"):
        shown = (o == rounded(p, fmt)) & (rounded(e, fmt) != rounded(p, fmt)) & np.isfinite(o)
        gain = np.where(shown, np.abs(o - e) - np.abs(o - p), -np.inf)
    if not np.isfinite(gain).any():
        return {}
    at = tuple(int(k) for k in np.unravel_index(int(np.argmax(gain)), gain.shape))
    return {"index": list(at), "got": float(o[at]), "expected": float(e[at]), "predicted": float(p[at])}
