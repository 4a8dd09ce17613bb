"""Metrics of one result against the oracle, and the pass/fail decision.

Each check yields a `Score`: the status, JSON-safe metrics and, for anything
that is not a pass, a message naming the first reason and the worst element.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conformance.numerics.arrays import EXPONENT_BITS, float64_bits, into
from conformance.numerics.dtypes import FloatFormat, dtype_name
from conformance.numerics.oracle import Blocked, row_blocks
from conformance.numerics.threads import ordered
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
    # 2**E from float64's exponent bits (a = ±1.m * 2**E, the sign and mantissa masked off), clipped
    # to the format's binades, times 2**(1 - digits): three passes over kernel-sized arrays, every
    # step exact.  0 and float64's subnormals clip to the format's emin; a non-finite value (all
    # exponent bits set, read as Inf) to its emax, where it is never compared.
    binade = (float64_bits(value) & EXPONENT_BITS).view(np.float64)
    binade = np.clip(binade, 2.0 ** fmt.emin, 2.0 ** fmt.emax, out=into(binade))
    return np.multiply(binade, 2.0 ** (1 - fmt.digits), out=into(binade))


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
    """The RMS of each row of `ref` (of every element with `axes` None), its NaN/Inf left out."""
    with np.errstate(all="ignore"):
        # All finite (two reductions, no temporary: NaN propagates through both), the mask is the
        # identity: one product fewer over a kernel-sized array, the same sums.
        finite = finite or not ref.size or bool(np.isfinite(np.max(ref)) and np.isfinite(np.min(ref)))
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


def _judged(quotient: np.ndarray) -> tuple[np.ndarray, float]:
    """An error quotient as judged, and its largest value.  NaN quotients only arise where nothing
    was compared (a non-finite magnitude or reference RMS); the pattern check has judged those
    elements: 0.  A quotient that overflows is a real error far beyond any tolerance (0.5 where
    the exact result is 0 is 1e323 ULP of float64): it stays the largest float, never 0, and stays
    JSON-safe.  One pass over the array where neither occurs (its maximum is finite)."""
    top = float(np.max(quotient)) if quotient.size else 0.0
    if np.isfinite(top):
        return quotient, max(top, 0.0)
    judged = np.where(np.isnan(quotient), 0.0, np.minimum(quotient, np.finfo(np.float64).max))
    return judged, float(judged.max(initial=0.0))


def _of_arrays(ref: np.ndarray, magnitude: np.ndarray | None, axes: tuple[int, ...] | None) -> Blocked:
    def at(block):  # () indexes a 0-d array to a scalar: the arrays themselves
        return (ref[block], None if magnitude is None else magnitude[block]) if block else (ref, magnitude)
    return Blocked(ref.shape, row_blocks(ref.shape, axes), at)


def _block_errors(result, ref, fmt: FloatFormat, magnitude, axes, global_rms, metric: str) -> dict:
    """The errors of one block: the largest of each metric (max_abs, max_rel_rms, max_ulp and,
    with a magnitude, max_units), the scored error of each element (`scored`: ULPs or units, as
    `metric` says), the result as float64 (`r64`) and, where it is not all finite, the NaN/Inf
    pattern (`bad`, `pattern`; else None).  In place where it can be: on kernel-sized arrays every
    pass and every fresh allocation counts."""
    r64 = result.astype(np.float64)
    out: dict = {"r64": r64, "bad": None, "pattern": None}
    with np.errstate(all="ignore"):
        # The common case, without the masks below: a reference that stays finite when rounded to
        # the format (|ref| <= its largest value; NaN fails the test) and a finite result, which
        # the largest difference tells (NaN and Inf propagate to it).  Reductions rather than
        # elementwise masks: no temporaries.
        finite = not ref.size or max(float(np.max(ref)), -float(np.min(ref))) <= fmt.max
        if finite:
            diff = np.subtract(r64, ref)
            diff = np.abs(diff, out=into(diff))
            out["max_abs"] = float(diff.max(initial=0.0))
        if not finite or not np.isfinite(out["max_abs"]):
            out["pattern"] = ref.astype(fmt.np_dtype).astype(np.float64)
            out["bad"] = nonfinite_mismatch(r64, out["pattern"])
            compared = np.isfinite(r64) & np.isfinite(out["pattern"]) & ~out["bad"]
            diff = np.where(compared, np.abs(r64 - ref), 0.0)
            out["max_abs"] = float(diff.max(initial=0.0))
        ulps = ulp_of(ref, fmt)
        ulps, out["max_ulp"] = _judged(np.divide(diff, ulps, out=into(ulps)))
        rms = global_rms if global_rms is not None else _rms_rows(ref, axes, finite)  # per row: small
        # The error relative to its row's RMS, a metric only (where the RMS is 0 or Inf, shown as
        # 0): the largest of a row is its largest error over its RMS, one reduction, no temporary.
        rel_rms = (np.max(diff, axis=axes, keepdims=True) if axes and diff.size else diff) / rms
        if not np.all((rms > 0) & np.isfinite(rms)):
            rel_rms = np.where(np.isfinite(rel_rms), rel_rms, 0.0)
        out["max_rel_rms"] = float(np.max(rel_rms, initial=0.0))
        out["scored"] = ulps
        if magnitude is not None:
            # diff / max(magnitude, tiny) / u, u a power of two: its multiplication by 1/u is exact.
            units = np.maximum(magnitude, fmt.tiny)
            units = np.divide(diff, units, out=into(units))
            units = np.multiply(units, 1.0 / fmt.unit_roundoff, out=into(units))
            units, out["max_units"] = _judged(units)
            if metric == "units":
                out["scored"] = units
    return out


def score(
    result: np.ndarray,
    ref: np.ndarray | Blocked,
    fmt: FloatFormat,
    expected_dtype: str | None,
    tol: Tolerance,
    *,
    magnitude: np.ndarray | None = None,
    axes: tuple[int, ...] | None = None,
) -> Score:
    """Compare one output with its float64 reference.

    tol.metric "ulp" scores ULPs of `fmt`; "units" scores |error| / magnitude / u
    (gradients, see tolerance.py), which needs `magnitude` (a Blocked reference brings its own).
    `axes` are the normalized axes, for the error relative to the RMS of each reference row.
    """
    try:
        result = numeric_array(result)
    except TypeError as exc:
        return Score("fail", {"out_type": type(result).__name__}, f"the adapter returned {exc}")
    out_dtype = dtype_name(result)
    metrics: dict = {"out_dtype": out_dtype, "out_shape": list(result.shape)}
    if result.shape != ref.shape:
        return Score("fail", metrics, f"shape {result.shape} differs from the expected {ref.shape}")
    scored_key = SCORED[tol.metric]
    worst = {"max_abs": 0.0, "max_rel_rms": 0.0, "max_ulp": 0.0, "max_units": 0.0}
    bad_count, first_bad, top = 0, None, None  # top: (scored error, index, got, expected)
    blocked = ref if isinstance(ref, Blocked) else _of_arrays(ref, magnitude, axes)
    global_rms = _rms_rows(ref, None) if axes is None else None  # one RMS over every element (dscale: never Blocked)

    def errors(block):
        ref_part, magnitude_part = blocked.at(block)
        return block, ref_part, _block_errors(result[block] if block else result, ref_part, fmt, magnitude_part, axes,
                                              global_rms, tol.metric)
    for block, ref_part, part in ordered(errors, blocked.blocks):
        offset = block[0].start if block else 0

        def at(i, offset=offset):  # an index of the block, in the array's coordinates
            return (i[0] + offset, *i[1:]) if i else i
        for key in worst:
            if key in part:
                worst[key] = max(worst[key], part[key])
        if part["bad"] is not None and part["bad"].any():
            bad_count += int(part["bad"].sum())
            if first_bad is None:
                i = tuple(int(k) for k in np.argwhere(part["bad"])[0])
                first_bad = (at(i), float(part["r64"][i]), float(part["pattern"][i]))
        # The worst element is named only beyond the tolerance: only a block whose largest error
        # exceeds it and the worst so far is searched (the first block with the overall largest).
        scored, largest = part["scored"], part[scored_key]
        if scored.size and largest > tol.limit and (top is None or largest > top[0]):
            i = np.unravel_index(int(np.argmax(scored)), scored.shape)
            top = (float(scored[i]), at(i), float(part["r64"][i]), float(ref_part[i]))
    metrics.update(max_abs=worst["max_abs"], max_rel_rms=worst["max_rel_rms"], max_ulp=worst["max_ulp"],
                   nonfinite_mismatch=bad_count)
    if "max_units" in part:
        metrics["max_units"] = worst["max_units"]
    reasons = []
    if expected_dtype and out_dtype != expected_dtype:  # None: the framework's to choose
        reasons.append(f"dtype {out_dtype} differs from the input's {expected_dtype}")
    if bad_count:
        i, got, want = first_bad
        reasons.append(f"NaN/Inf pattern differs in {bad_count} element(s), first " + _describe(i, got, want))
    if metrics[scored_key] > tol.limit:
        error, i, got, want = top
        unit = "ULP" if tol.metric == "ulp" else "u of the gradient's magnitude"
        reasons.append(f"{EXCEEDED}{error:.4g} {unit} > tolerance {tol.limit:.3g} " + _describe(i, got, want))
    if reasons:
        return Score("fail", metrics, "; ".join(reasons))
    return Score("pass", metrics)
