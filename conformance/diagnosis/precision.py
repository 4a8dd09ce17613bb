"""Hypotheses about range, precision and IEEE special values: the formula evaluated in another format.

Overflowing or underflowing intermediates, flushed subnormals, a lower precision than the
input's, a float64 input cast to float32, one sequential accumulator, NaN/Inf propagated
another way.  They share one method, apart from the catalogue's semantic hypotheses
(hypotheses.py): the formula is computed in that format (formula.in_dtype, in each order
kernels write it), so each predicts what the format's overflows and roundings give and never
copies the observed values.
"""
from __future__ import annotations

import numpy as np

from conformance.diagnosis.formula import DISTINCT_ORDERS, Arrays, Prediction, general, in_dtype, pick, row_length
from conformance.diagnosis.sample import as_rows
from conformance.numerics.dtypes import FORMATS
from conformance.numerics.oracle import Oracle, placed


def _range_rows(a: Arrays) -> tuple[np.ndarray, str] | None:
    """Rows where x² overflows or the mean of squares underflows in the compute dtype."""
    fmt = FORMATS["float32" if a.compute in ("float16", "bfloat16") else a.compute]
    with np.errstate(all="ignore"):
        sq = (a.x * a.x)
        # Reductions, no elementwise temporaries (fmax: a NaN square overflows nothing, as in
        # any(sq > max)); the mean is the sum over n, as np.mean computes it.
        over = np.fmax.reduce(sq, axis=a.axes, keepdims=True) > fmt.max if a.axes else sq > fmt.max
        total = np.sum(sq, axis=a.axes, keepdims=True) if a.axes else sq
        over |= total > fmt.max
        ms = total / row_length(a) if a.axes else sq
        under = (ms < fmt.tiny) & (ms > 0) & (ms + a.eps < fmt.tiny * 2 ** 10)
    if over.any():
        largest = max(float(np.nanmax(a.x)), -float(np.nanmin(a.x)))  # |x| up to, without abs(x)
        return np.broadcast_to(over | under, a.x.shape), f"x² overflows {fmt.name} (|x| up to {largest:.3g})"
    if under.any():
        return np.broadcast_to(under, a.x.shape), f"mean(x²) underflows {fmt.name} (below {fmt.tiny:.3g}) with epsilon {a.eps:g}"
    if a.check == "grad_x" and a.compute in ("float16", "bfloat16"):
        # The two terms of dx (r s dy and the projection) can each be rounded to the input's
        # dtype before they are added (autodiff sums the gradients of x's uses in x's dtype):
        # with rows of tiny values, r is huge and a term overflows where their sum does not.
        half = FORMATS[a.compute]
        with np.errstate(all="ignore"):
            r = 1.0 / np.sqrt((np.mean(sq, axis=a.axes, keepdims=True) if a.axes else sq) + a.eps)
            term = np.abs(r * placed(a.scale, a.x.ndim, a.axes) * a.dy)
            big = np.isfinite(term) & (term > half.max)  # r = Inf is 0/0 in the formula: special values
            big = np.any(big, axis=a.axes, keepdims=True) if a.axes else big
        if big.any():
            return np.broadcast_to(big, a.x.shape), f"a term of dx (r·scale·dy) overflows {half.name} before the terms cancel"
    sub = (a.x != 0) & (np.abs(a.x) < fmt.tiny)
    if sub.any():  # products of subnormal inputs round absolutely, not relatively
        rows = np.any(sub, axis=a.axes, keepdims=True) if a.axes else sub
        return np.broadcast_to(rows, a.x.shape), f"subnormal inputs of {fmt.name} lose precision in products"
    return None


def _assumed_compute(a: Arrays) -> str:
    """The dtype a kernel that upcasts half precision computes in: float32 for half, else the case's."""
    return "float32" if a.compute in ("float16", "bfloat16") else a.compute


def _simulated(a: Arrays, dtype, detail: str, *, judged_in=None, evidence=None, **kw) -> list[Prediction]:
    """The formula evaluated in `dtype`, in each order kernels write it: specific predictions of
    what the overflows, underflows and roundings of that format give, never the observed values."""
    return [Prediction(pick(a, in_dtype(a, dtype, order, **kw)), detail, judged_in, evidence)
            for order in DISTINCT_ORDERS[a.check]]


def range_limit(a: Arrays):
    """Where the intermediates leave the compute dtype's range: what a computation in that dtype
    gives there (x² = Inf, 1/rms = 0, Inf·0 = NaN, ...), in each order kernels compute it."""
    found = _range_rows(a)
    if found is None:
        return None
    _, detail = found
    ct = _assumed_compute(a)
    out = _simulated(a, ct, detail)
    if a.compute in ("float16", "bfloat16") and a.check == "grad_x":
        # dx's terms each rounded to the input's dtype before they are added (autodiff sums the
        # gradients of x's uses in x's dtype): a term overflows where their sum would not.
        out += _simulated(a, ct, detail + "; dx's terms rounded to " + a.compute + " before they are added",
                          terms=FORMATS[a.compute].np_dtype)
    return out


def flushed_subnormals(a: Arrays):
    fmt = FORMATS[_assumed_compute(a)]
    sub = (a.x != 0) & (np.abs(a.x) < fmt.tiny)
    if not sub.any():
        return None
    exact, flushed = pick(a, general(a)), pick(a, general(a, x=np.where(sub, 0.0, a.x)))
    with np.errstate(all="ignore"):
        visible = (np.abs(exact - flushed) > 1e-3 * np.abs(exact)) | (np.isnan(exact) != np.isnan(flushed))
    if not visible.any():  # where flushing changes nothing, it cannot be told apart: not claimed
        return None
    detail = f"{int(sub.sum())} subnormal input(s) of {fmt.name} read as 0"
    # Also in the compute dtype: a flushed row of zeros is 0/0 = NaN there with epsilon 0.
    return [Prediction(flushed, detail)] + _simulated(a, fmt.name, detail, flush=True)


def lower_precision(a: Arrays):
    """float32 accuracy for a float64 input (the exact result, judged with float32's tolerance);
    half precision computed without upcasting, forward and gradients (the formula evaluated in the
    input's half dtype, judged with the case's own tolerance)."""
    if a.compute == "float64":
        return None if a.expected is None else [Prediction(a.expected, "float32 accuracy for a float64 input", "float32",
                                                           {"format": "float32"})]
    if a.compute not in ("float16", "bfloat16"):
        return None
    half, f32 = FORMATS[a.compute].np_dtype, np.dtype(np.float32)
    what = "computed" if a.check == "forward" else "gradients computed"
    out = _simulated(a, half, f"{what} in {a.compute} without upcasting", evidence={"format": a.compute})
    if a.check == "forward":
        scale = placed(a.scale, a.x.ndim, a.axes)
        with np.errstate(all="ignore"):
            # Only the squares in half precision, the statistics in float32 (as onnx.reference
            # does despite stash_type=1): subnormal inputs square to zero, huge ones to Inf.
            xh = a.x.astype(half)
            ms32 = np.mean((xh * xh).astype(f32), axis=a.axes, keepdims=True)
            squares = (xh.astype(f32) / np.sqrt(ms32 + f32.type(a.eps)) * scale.astype(f32)).astype(half)
        out.append(Prediction(squares.astype(np.float64), f"x² computed in {a.compute} before float32 statistics",
                              evidence={"format": a.compute}))
    return out


def cast_overflow(a: Arrays):
    """A float64 input cast to float32 to be computed: where |x| exceeds float32's range the cast
    itself gives Inf (then Inf·0 = NaN), elsewhere float32's accuracy."""
    if a.compute != "float64":
        return None
    f32 = FORMATS["float32"]
    with np.errstate(invalid="ignore"):
        over = np.isfinite(a.x) & (np.abs(a.x) > f32.max)  # an Inf in the input is no overflow of the cast
    if not over.any():
        return None
    detail = (f"the input is cast to float32, where {int(over.sum())} value(s) overflow "
              f"(|x| up to {np.nanmax(np.abs(a.x)):.3g} > {f32.max:.3g})")
    return _simulated(a, np.float32, detail, judged_in="float32", evidence={"format": "float32"}, cast=np.float32)


LANES = (1, 8)  # one accumulator; or one per SIMD lane of a float32 AVX register, added at the end
STEPS = 1 << 20  # partial sums a sequential sum of a few rows holds at once (rows x lanes x steps of a chunk)
FEW = 1024  # rows x lanes below which those rows are summed by np.add.accumulate


def _sequential_sumsq(a: Arrays, dtype, lanes: int = 1) -> np.ndarray:
    """The sum of squares accumulated one element after another in `dtype`, in `lanes` interleaved
    accumulators (element k into lane k mod lanes, as a vectorized loop does) then added lane after
    lane; shaped as a keepdims reduction over the normalized axes."""
    ct = np.dtype(dtype)
    with np.errstate(all="ignore"):
        xc = a.x.astype(ct)
        sq = as_rows(xc * xc, a.axes)  # (rows, n), each row's elements in their order
        rows, n = sq.shape
        width = -(-n // lanes) * lanes  # the row padded with zeros to whole lanes (adding 0 changes no sum)
        if width != n:
            sq = np.concatenate([sq, np.zeros((rows, width - n), ct)], axis=1)
        # Each partial sum rounded to `dtype`, as the accumulator is.  A few rows (a diagnosis's
        # sample): each lane's running sum by np.add.accumulate, over chunks of steps that start
        # from the sum so far (one call per chunk, where the loop's calls would cost more than
        # their adds).  Many rows: column after column, one add of (rows, lanes) per step.  The
        # same sums either way, never a running sum of every element kept.
        if rows * lanes < FEW:
            steps = sq.reshape(rows, width // lanes, lanes)
            acc = np.zeros((rows, 1, lanes), ct)
            chunk = max(1, STEPS // max(rows * lanes, 1))
            for k in range(0, steps.shape[1], chunk):
                acc = np.add.accumulate(np.concatenate([acc, steps[:, k:k + chunk]], axis=1), axis=1)[:, -1:]
            acc = acc[:, 0]
        else:
            acc = np.zeros((rows, lanes), ct)
            for k in range(0, width, lanes):
                np.add(acc, sq[:, k:k + lanes], out=acc)
        total = acc[:, 0].copy()
        for lane in range(1, lanes):
            np.add(total, acc[:, lane], out=total)
    keep = [1 if d in a.axes else a.x.shape[d] for d in range(a.x.ndim)]
    return total.astype(np.float64).reshape(keep)


def sequential_sum(a: Arrays):
    """x² summed sequentially in the compute dtype (float32; for half inputs also the half dtype
    itself, whose running sum stagnates; for float64 inputs also float32, where a library casts
    them), in one accumulator or in LANES, the rest of the formula exact: a specific prediction,
    where an approximate rsqrt would need a free factor per row."""
    if row_length(a) < 2 or not a.axes:
        return None
    dtypes = [_assumed_compute(a)] + ([a.compute] if a.compute in ("float16", "bfloat16") else []) \
        + (["float32"] if a.compute == "float64" else [])
    out = []
    for dt in dtypes:
        for lanes in LANES if row_length(a) > max(LANES) else (1,):
            q = _sequential_sumsq(a, FORMATS[dt].np_dtype, lanes)
            detail = (f"x² summed sequentially in one {dt} accumulator" if lanes == 1 else
                      f"x² summed sequentially in {lanes} {dt} lanes, added at the end")
            evidence = {"format": dt, "lanes": lanes}
            out.append(Prediction(pick(a, general(a, sumsq=q)), detail, evidence=evidence))
            if a.check == "grad_x":  # dscale has no derivative of 1/rms: the same prediction again
                out.append(Prediction(pick(a, general(a, sumsq=q, exact_derivative=False)), detail, evidence=evidence))
    return out


BOUNDED = ("float16", "bfloat16", "float32")  # compute dtypes whose inputs bound the oracle's values


def _formula_nonfinite(a: Arrays) -> np.ndarray:
    """Where the input or the oracle's y or dx is NaN/Inf.  Where the formula is NaN/Inf is the
    oracle's call: it rescales rows, so float64 inputs near the format's limit, whose squares
    overflow in general(), are a range matter, not this one.

    For finite inputs of a half or float32 case (every nonzero |value| within [2**-149, 2**128])
    the oracle is finite but for 0/0, an all-zero row with epsilon 0: its 1/rms is at most
    sqrt(n) / 2**-149 and its terms below 2**256 n, so y and dx stay below float64's largest
    value, and that row is all that is looked for, without the oracle (a kernel-sized case's
    dscale is diagnosed whole).  Otherwise the oracle, by blocks of rows."""
    with np.errstate(all="ignore"):
        finite = [bool(np.isfinite(np.max(v)) and np.isfinite(np.min(v))) if np.size(v) else True
                  for v in (a.x, a.dy, a.scale)]
        if a.compute in BOUNDED and all(finite) and float(np.max(np.abs(a.scale), initial=0.0)) <= FORMATS["float32"].max:
            if a.eps != 0 or not a.x.size:
                return np.zeros(a.x.shape, bool)
            zero = np.max(np.abs(a.x), axis=a.axes, keepdims=True) == 0 if a.axes else a.x == 0
            return np.broadcast_to(zero, a.x.shape)
        ref = Oracle(a.x, a.scale, a.dy, a.axes, a.eps)
        bad = np.empty(a.x.shape, bool)
        for block in ref.blocks:
            part = ref.rows(block, ("y", "dx"))
            bad[block] = ~np.isfinite(a.x[block]) | ~np.isfinite(part.y) | ~np.isfinite(part.dx)
    return bad


def nonfinite_rows(a: Arrays):
    """Differs only in rows whose input holds NaN/Inf, or where the formula itself is NaN/Inf
    (0/0 with epsilon 0): IEEE special values propagated another way."""
    bad = _formula_nonfinite(a)
    if not bad.any():
        return None
    rows = np.broadcast_to(np.any(bad, axis=a.axes, keepdims=True) if a.axes else bad, a.x.shape)
    what = "inputs holding NaN/Inf" if (~np.isfinite(a.x)).any() else "rows where the formula is NaN/Inf (0/0)"
    if a.check == "grad_scale":
        return a.observed, f"{what} propagate differently into dscale"
    return np.where(rows, a.observed, pick(a, general(a))), f"{what} propagate differently"
