"""Metrics of one result against the oracle, and the pass/fail decision.

Each check yields a `Score`: the status, JSON-safe metrics and, for anything
that is not a pass, a message naming the first reason and the worst element.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conformance.numerics.dtypes import FloatFormat, dtype_name
from conformance.numerics.tolerance import Tolerance


SCORED = {"ulp": "max_ulp", "units": "max_units"}  # the metric each kind of tolerance is judged by
EXCEEDED = "error "  # how the reason for a scored error beyond its tolerance starts (accepted deviations read it)


@dataclass(frozen=True)
class Score:
    status: str  # "pass" or "fail"
    metrics: dict = field(default_factory=dict)
    message: str = ""


def ulp_of(value: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """The spacing of `fmt` at |value| (smallest subnormal at 0, the top binade's above max)."""
    # The binade from float64's exponent bits (a = 1.m * 2**E): one integer pass instead of frexp,
    # abs and masks over kernel-sized arrays.  0 and float64's subnormals clip to the format's
    # emin; a non-finite value (exponent bits all ones) reads as E = -1, where it is never compared.
    a = np.asarray(value, np.float64)
    biased = (((a if a.flags.c_contiguous else a.copy()).view(np.int64) >> 52) & 0x7FF).astype(np.int32)
    biased = np.where(biased == 0x7FF, 1022, biased)
    return np.ldexp(1.0, np.clip(biased - 1023, fmt.emin, fmt.emax) - fmt.digits + 1)


def ulp_error(result: np.ndarray, ref: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """|result - ref| in ULPs of `fmt` at the reference (fractional: 0.5 is correctly rounded)."""
    with np.errstate(all="ignore"):
        return np.abs(np.asarray(result, np.float64) - ref) / ulp_of(ref, fmt)


def nonfinite_mismatch(result64: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Where NaN/±Inf differ: `expected` is the reference rounded to the output format,
    so a finite float64 value that overflows the format is expected as Inf."""
    rn, en = np.isnan(result64), np.isnan(expected)
    with np.errstate(invalid="ignore"):
        inf_differs = (np.isinf(result64) | np.isinf(expected)) & (result64 != expected)
    return (rn != en) | (~rn & ~en & inf_differs)


def _rms_rows(ref: np.ndarray, axes: tuple[int, ...] | None, finite: bool = False) -> np.ndarray:
    with np.errstate(all="ignore"):
        sq = ref * ref if finite else np.where(np.isfinite(ref), ref * ref, 0.0)
        if axes is None:
            return np.sqrt(np.mean(sq)) if sq.size else np.float64(0.0)
        return np.sqrt(np.mean(sq, axis=axes, keepdims=True)) if axes else np.sqrt(sq)


def numeric_array(value) -> np.ndarray:
    """`value` as a numeric numpy array; TypeError saying what it is otherwise.

    An adapter returns numpy arrays; anything else (a framework tensor that still
    requires grad, strings, objects) is the adapter's wrong output, scored `fail`."""
    try:
        array = np.asarray(value)
    except BaseException as exc:
        raise TypeError(f"a {type(value).__name__} that numpy cannot convert ({type(exc).__name__}: {exc})") from None
    if array.dtype.kind not in "fiub" and array.dtype.name != "bfloat16":
        raise TypeError(f"a {type(value).__name__} of dtype {array.dtype}, not numbers")
    return array


def _describe(index: tuple, got: float, want: float) -> str:
    return f"at {[int(k) for k in index]}: got {got:.9g}, expected {want:.9g}"


def _judged(quotient: np.ndarray) -> np.ndarray:
    """An error quotient as judged.  NaN quotients only arise where nothing was compared (a
    non-finite magnitude or reference RMS); the pattern check has judged those elements: 0.  A
    quotient that overflows is a real error far beyond any tolerance (0.5 where the exact result
    is 0 is 1e323 ULP of float64): it stays the largest float, never 0, and stays JSON-safe.
    One pass over the array where neither occurs (its maximum is finite)."""
    if quotient.size and np.isfinite(np.max(quotient)):
        return quotient
    return np.where(np.isnan(quotient), 0.0, np.minimum(quotient, np.finfo(np.float64).max))


def score(
    result: np.ndarray,
    ref: np.ndarray,
    fmt: FloatFormat,
    expected_dtype: str | None,
    tol: Tolerance,
    *,
    magnitude: np.ndarray | None = None,
    axes: tuple[int, ...] | None = None,
) -> Score:
    """Compare one output with its float64 reference.

    tol.metric "ulp" scores ULPs of `fmt`; "units" scores |error| / magnitude / u
    (gradients, see tolerance.py), which needs `magnitude`.  `axes` are the
    normalized axes, for the error relative to the RMS of each reference row.
    """
    try:
        result = numeric_array(result)
    except TypeError as exc:
        return Score("fail", {"out_type": type(result).__name__}, f"the adapter returned {exc}")
    out_dtype = dtype_name(result)
    metrics: dict = {"out_dtype": out_dtype, "out_shape": list(result.shape)}
    if result.shape != ref.shape:
        return Score("fail", metrics, f"shape {result.shape} differs from the expected {ref.shape}")
    r64 = result.astype(np.float64)
    with np.errstate(all="ignore"):
        # The common case, without the masks below: a finite result, and a reference that stays
        # finite when rounded to the format (|ref| <= its largest value; NaN fails the test).
        # Kernel-sized arrays make every pass over them count.
        bad_pattern = None
        finite = not ref.size or float(np.max(np.abs(ref))) <= fmt.max
        if finite and np.isfinite(r64).all():
            diff = np.abs(r64 - ref)
        else:
            expected_pattern = ref.astype(fmt.np_dtype).astype(np.float64)
            bad_pattern = nonfinite_mismatch(r64, expected_pattern)
            compared = np.isfinite(r64) & np.isfinite(expected_pattern) & ~bad_pattern
            diff = np.where(compared, np.abs(r64 - ref), 0.0)
        ulps = _judged(diff / ulp_of(ref, fmt))
        rms = _rms_rows(ref, axes, finite)  # per row: small
        rel_rms = diff / rms  # a metric only: where the RMS is 0 or Inf, shown as 0
        if not np.all((rms > 0) & np.isfinite(rms)):
            rel_rms = np.where(np.isfinite(rel_rms), rel_rms, 0.0)
        if magnitude is not None:
            units = _judged(diff / np.maximum(magnitude, fmt.tiny) / fmt.unit_roundoff)
    scored = ulps if tol.metric == "ulp" else units
    if bad_pattern is None:
        bad_pattern = np.zeros(ref.shape, bool)
    metrics.update(
        max_abs=float(diff.max(initial=0.0)),
        max_rel_rms=float(rel_rms.max(initial=0.0)),
        max_ulp=float(ulps.max(initial=0.0)),
        nonfinite_mismatch=int(bad_pattern.sum()),
    )
    if magnitude is not None:
        metrics["max_units"] = float(units.max(initial=0.0))
    reasons = []
    if expected_dtype and out_dtype != expected_dtype:  # None: the framework's to choose
        reasons.append(f"dtype {out_dtype} differs from the input's {expected_dtype}")
    if bad_pattern.any():
        i = tuple(int(k) for k in np.argwhere(bad_pattern)[0])
        reasons.append(
            f"NaN/Inf pattern differs in {int(bad_pattern.sum())} element(s), first "
            + _describe(i, r64[i], expected_pattern[i])
        )
    if metrics[SCORED[tol.metric]] > tol.limit:
        i = np.unravel_index(int(np.argmax(scored)), scored.shape)
        unit = "ULP" if tol.metric == "ulp" else "u of the gradient's magnitude"
        reasons.append(
            f"{EXCEEDED}{scored[i]:.4g} {unit} > tolerance {tol.limit:.3g} " + _describe(i, r64[i], ref[i])
        )
    if reasons:
        return Score("fail", metrics, "; ".join(reasons))
    return Score("pass", metrics)
