"""The catalogue of alternative semantics a diagnosis tries, simplest first (the last tie-break).

Each hypothesis is one short numpy function, like an ONNX reference op: given the
case's arrays (`Arrays`) it returns what an implementation with that other
semantics would output for one check (`forward`, `grad_x`, `grad_scale`) in
float64, and a detail naming any parameter it solved from the observed output
(an effective epsilon, a divisor, a relative error), with that parameter as
evidence.  It returns None where it does not apply (a transposed scale needs two
axes).  diagnose.py scores the observed result against every prediction with the
check's own tolerance and keeps the one that explains it best (diagnose.py: sound,
then the fewest values solved from the observed result, the smallest error, this order).

Most of them are the generalized formula of formula.py with another parameter; the
range and precision ones evaluate the formula in another format (formula.in_dtype),
so they predict what its overflows and roundings give, never copy the observed values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from conformance.diagnosis.formula import ORDERS, Arrays, Prediction, general, in_dtype, pick, plain, row_length
from conformance.numerics.dtypes import FORMATS
from conformance.numerics.oracle import oracle, placed


@dataclass(frozen=True)
class Hypothesis:
    id: str
    klass: str  # semantics, precision, parameters, range, special-values, dtype
    title: str  # what a maintainer would write, completed by the finding's adapters
    checks: tuple[str, ...]
    # None where it does not apply, or a Prediction (formula.py) or (prediction, detail), or a
    # list of them; a tuple's third element names the format whose tolerance judges it.
    predict: Callable[[Arrays], "Prediction | tuple | list | None"]


# -- solved parameters ---------------------------------------------------------------------
def _row_gain(a: Arrays) -> np.ndarray | None:
    """The observed y / (x * s) per row (median over elements that carry signal)."""
    s_b = placed(a.scale, a.x.ndim, a.axes)
    with np.errstate(all="ignore"):
        base = a.x * s_b
        ratio = np.where(np.abs(base) > 1e-300, a.observed / base, np.nan)
    if not np.isfinite(ratio).any():
        return None
    moved = np.moveaxis(ratio, a.axes, list(range(ratio.ndim - len(a.axes), ratio.ndim)))
    rows = moved.reshape(-1, math.prod(ratio.shape[k] for k in a.axes) or 1)
    return np.nanmedian(rows, axis=1)


def _mean_square_rows(a: Arrays) -> np.ndarray:
    moved = np.moveaxis(a.x, a.axes, list(range(a.x.ndim - len(a.axes), a.x.ndim)))
    rows = moved.reshape(-1, math.prod(a.x.shape[k] for k in a.axes) or 1)
    return np.mean(rows * rows, axis=1)


KNOWN_EPSILONS = {
    "float32's machine epsilon": float(np.finfo(np.float32).eps),
    "float16's machine epsilon": float(np.finfo(np.float16).eps),
    "bfloat16's machine epsilon": 2.0 ** -7,
    "float64's machine epsilon": float(np.finfo(np.float64).eps),
    "1e-5": 1e-5, "1e-6": 1e-6, "1e-8": 1e-8, "1e-12": 1e-12,
}


def name_epsilon(value: float, requested: float) -> str:
    if requested and abs(value - float(np.float32(requested))) <= 1e-3 * requested and value != requested:
        return " (the requested epsilon rounded to float32)"
    for name, known in KNOWN_EPSILONS.items():
        if abs(value - known) <= 0.02 * known:
            return f" (= {name})"
    return ""


def different_epsilon(a: Arrays):
    if a.check != "forward":  # gradients cannot be solved for epsilon: try the usual suspects
        candidates = {float(np.float32(a.eps)), *KNOWN_EPSILONS.values()} - {a.eps}
        return [Prediction(pick(a, general(a, eps=e)), f"effective epsilon {e:.3g}{name_epsilon(e, a.eps)}, "
                           f"requested {a.eps:g}", evidence={"epsilon": e, "requested": a.eps})
                for e in sorted(candidates)]
    gain = _row_gain(a)
    if gain is None:
        return None
    with np.errstate(all="ignore"):
        solved = 1.0 / (gain * gain) - _mean_square_rows(a)
    solved = solved[np.isfinite(solved)]
    if not solved.size:
        return None
    eps = float(np.median(solved))
    # A solved value within 2% of a known one is that one (the rest is another error's noise),
    # so a requested epsilon disturbed by lost squares does not pass for "another epsilon".
    known = [float(np.float32(a.eps)), a.eps, *KNOWN_EPSILONS.values()]
    near = [k for k in known if abs(eps - k) <= 0.02 * k]
    eps = min(near, key=lambda k: abs(eps - k)) if near else eps
    if eps < 0 or math.isclose(eps, a.eps, rel_tol=1e-9):
        return None
    return Prediction(pick(a, general(a, eps=eps)), f"effective epsilon {eps:.3g}{name_epsilon(eps, a.eps)}, "
                      f"requested {a.eps:g}", evidence={"epsilon": eps, "requested": a.eps}, free=0 if near else 1)


# Kernels pad a row to their block: the row length rounded up to a power of two or to a multiple
# of one of these (a Triton kernel's BLOCK_SIZE, a warp's 32 lanes).
PAD_MULTIPLES = (16, 32, 64, 128)


def padded(n: int) -> dict[str, int]:
    """n rounded up as kernels pad it, by law: {"a power of two": 64, "a multiple of 16": 64, ...}."""
    out = {"a power of two": 1 << max(0, (n - 1).bit_length())}
    out.update({f"a multiple of {m}": -(-n // m) * m for m in PAD_MULTIPLES})
    return out


def _divisor_candidates(a: Arrays, n: int) -> list[int]:
    """Counts a kernel divides by instead of n: the sum (1), n - 1, n padded up, an axis' size,
    the number of rows, the input's size."""
    rows = a.x.size // n if n else 0
    found = {1, n - 1, *padded(n).values(), *a.x.shape, rows, a.x.size}
    return sorted(d for d in found if d >= 1 and d != n)


def _divisor_detail(d: float, n: int) -> str:
    if d == 1:
        return "the mean of x² sums instead of averaging"
    laws = [name.removeprefix("a ") for name, v in padded(n).items() if v == d and d > n]
    return f"the mean of x² divides by {d:g} instead of {n}" + (f" (n rounded up to a {' or '.join(laws)})" if laws else "")


def wrong_divisor(a: Arrays):
    """Another count than n divides the sum of squares: solved from the forward output, tried
    among the usual counts for gradients.  The solved divisor is the diagnosis's evidence, so a
    finding can state its law across cases (reports/findings.py: n rounded up to 32, ...)."""
    n = row_length(a)
    if a.check != "forward":
        out = []
        for d in _divisor_candidates(a, n):
            ev = {"divisor": d, "n": n}
            out.append(Prediction(pick(a, general(a, divisor=float(d))), _divisor_detail(d, n), evidence=ev))
            out.append(Prediction(pick(a, general(a, divisor=float(d), exact_derivative=False)),
                                  _divisor_detail(d, n) + ", the backward formula with that 1/rms", evidence=ev))
        return out
    gain = _row_gain(a)
    if gain is None:
        return None
    with np.errstate(all="ignore"):
        solved = n * _mean_square_rows(a) / (1.0 / (gain * gain) - a.eps)
    solved = solved[np.isfinite(solved) & (solved > 0)]
    if not solved.size:
        return None
    d = float(np.median(solved))
    # A kernel divides by a count: the sum (1), n - 1, another axis' size, the batch, n padded up
    # to its block...  An effective divisor that is no whole number up to the input's size or the
    # largest padding is another story (the squares underflowing in half precision solve to
    # divisors in the millions).
    if abs(d - n) < 0.5 or abs(d - round(d)) >= 0.05 or not 1 <= round(d) <= max(a.x.size, *padded(n).values()):
        return None
    d = float(round(d))
    return Prediction(pick(a, general(a, divisor=d)), _divisor_detail(d, n), evidence={"divisor": int(d), "n": n},
                      free=1)


def _solve_gain(a: Arrays) -> float:
    """The constant factor c on 1/rms that brings the gradient closest to the observed one.

    With the reference's backward the gradient is c·L - c³·B (dx: L = g s dy, B = x g³ mean(s dy
    x); dscale: B = 0): two evaluations give L and B, and the squared misfit is a polynomial in c
    whose coefficients are six sums, searched on a grid."""
    with np.errstate(all="ignore"):
        one, two = (pick(a, general(a, gain=c, exact_derivative=False)) for c in (1.0, 2.0))
        b = (2.0 * one - two) / 6.0
        lin, o = one + b, a.observed
        ok = np.isfinite(lin) & np.isfinite(b) & np.isfinite(o)
        lin, b, o = lin[ok], b[ok], o[ok]
        ll, lb, bb, lo, bo = (float(np.sum(u * v)) for u, v in ((lin, lin), (lin, b), (b, b), (lin, o), (b, o)))

    def misfit(c: np.ndarray) -> np.ndarray:  # sum((c L - c³ B - o)²) without the constant sum(o²)
        return c**2 * ll - 2 * c**4 * lb + c**6 * bb - 2 * c * lo + 2 * c**3 * bo

    best = 1.0
    for width in (0.05, 0.001, 2e-5):
        grid = best + np.linspace(-width, width, 101)
        with np.errstate(all="ignore"):
            best = float(grid[int(np.nanargmin(misfit(grid)))]) if np.isfinite(misfit(grid)).any() else best
    return best


# The largest relative error an approximate rsqrt is credited with: hardware estimates give
# 12 bits or more (about 2.4e-4), a crude software one a few; a factor 2 off is not an rsqrt.
MAX_RSQRT_ERROR = 2.0 ** -4


def approximate_rsqrt(a: Arrays):
    if a.check != "forward":
        c = _solve_gain(a)
        if c == 1.0:
            return None
        return Prediction(pick(a, general(a, gain=c, exact_derivative=False)), f"1/rms off by a factor {c:.6g}",
                          evidence={"gain": c}, free=1)
    exact = general(a)[0]
    with np.errstate(all="ignore"):
        ratio = np.where(np.abs(exact) > 1e-300, a.observed / exact, np.nan)
    if not np.isfinite(ratio).any():
        return None
    per_row = np.nanmedian(ratio, axis=a.axes, keepdims=True) if a.axes else ratio
    per_row = np.where(np.isfinite(per_row), per_row, 1.0)
    worst = float(np.max(np.abs(per_row - 1.0)))
    if worst == 0.0 or worst > MAX_RSQRT_ERROR:
        return None
    return Prediction(exact * per_row, f"a constant relative error per row, up to {worst:.2g}",
                      evidence={"relative_error": worst}, free=int(per_row.size))


# -- range, precision, special values ------------------------------------------------------------
def _range_rows(a: Arrays) -> tuple[np.ndarray, str] | None:
    """Rows where x² overflows or the mean of squares underflows in the compute dtype."""
    fmt = FORMATS["float32" if a.compute in ("float16", "bfloat16") else a.compute]
    with np.errstate(all="ignore"):
        sq = (a.x * a.x)
        over = np.any(sq > fmt.max, axis=a.axes, keepdims=True) if a.axes else sq > fmt.max
        over |= (np.sum(sq, axis=a.axes, keepdims=True) if a.axes else sq) > fmt.max
        ms = np.mean(sq, axis=a.axes, keepdims=True) if a.axes else sq
        under = (ms < fmt.tiny) & (ms > 0) & (ms + a.eps < fmt.tiny * 2 ** 10)
    if over.any():
        return np.broadcast_to(over | under, a.x.shape), f"x² overflows {fmt.name} (|x| up to {np.nanmax(np.abs(a.x)):.3g})"
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
    return [Prediction(pick(a, in_dtype(a, dtype, order, **kw)), detail, judged_in, evidence) for order in ORDERS]


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


def _sequential_sumsq(a: Arrays, dtype) -> np.ndarray:
    """The sum of squares accumulated one element after another in `dtype` (one lane, as
    np.cumsum does), shaped as a keepdims reduction over the normalized axes."""
    k = len(a.axes)
    ct = np.dtype(dtype)
    with np.errstate(all="ignore"):
        xc = a.x.astype(ct)
        moved = np.moveaxis(xc * xc, a.axes, list(range(a.x.ndim - k, a.x.ndim)))
        flat = moved.reshape(moved.shape[:a.x.ndim - k] + (-1,))
        total = np.cumsum(flat, axis=-1, dtype=ct)[..., -1] if flat.shape[-1] else np.zeros(flat.shape[:-1], ct)
    keep = [1 if d in a.axes else a.x.shape[d] for d in range(a.x.ndim)]
    return total.astype(np.float64).reshape(keep)


def sequential_sum(a: Arrays):
    """x² summed in one sequential accumulator of the compute dtype (float32; for half inputs
    also the half dtype itself, whose running sum stagnates), the rest of the formula exact: a
    specific prediction, where an approximate rsqrt would need a free factor per row."""
    if row_length(a) < 2 or not a.axes:
        return None
    dtypes = [_assumed_compute(a)] + ([a.compute] if a.compute in ("float16", "bfloat16") else [])
    out = []
    for dt in dtypes:
        q = _sequential_sumsq(a, FORMATS[dt].np_dtype)
        detail = f"x² summed sequentially in one {dt} accumulator"
        out.append(Prediction(pick(a, general(a, sumsq=q)), detail, evidence={"format": dt}))
        if a.check != "forward":
            out.append(Prediction(pick(a, general(a, sumsq=q, exact_derivative=False)), detail, evidence={"format": dt}))
    return out


def nonfinite_rows(a: Arrays):
    """Differs only in rows whose input holds NaN/Inf, or where the formula itself is NaN/Inf
    (0/0 with epsilon 0): IEEE special values propagated another way."""
    exact = general(a)
    # Where the formula is NaN/Inf is the oracle's call: it rescales rows, so float64 inputs near
    # the format's limit, whose squares overflow in general(), are a range matter, not this one.
    ref = oracle(a.x, a.scale, a.dy, a.axes, a.eps)
    with np.errstate(all="ignore"):
        bad = ~np.isfinite(a.x) | ~np.isfinite(ref.y) | ~np.isfinite(ref.dx)
    if not bad.any():
        return None
    rows = np.broadcast_to(np.any(bad, axis=a.axes, keepdims=True) if a.axes else bad, a.x.shape)
    what = "inputs holding NaN/Inf" if (~np.isfinite(a.x)).any() else "rows where the formula is NaN/Inf (0/0)"
    if a.check == "grad_scale":
        return a.observed, f"{what} propagate differently into dscale"
    return np.where(rows, a.observed, pick(a, exact)), f"{what} propagate differently"


# -- scale layouts ---------------------------------------------------------------------------
def _scale_variant(kind: str):
    def predict(a: Arrays):
        rank, k = a.x.ndim, len(a.axes)
        if kind == "ignored":
            return pick(a, general(a, s_b=np.ones([1] * rank), dscale_factor=0.0)), ""
        if kind == "one-plus":
            return pick(a, general(a, s_b=placed(1.0 + a.scale, rank, a.axes))), ""
        if kind == "last-axes":  # plain broadcasting: the scale meets the trailing dimensions
            trailing = tuple(range(rank - k, rank))
            if trailing == a.axes or a.x.shape[rank - k:] != a.scale.shape:
                return None
            return pick(a, general(a, s_b=placed(a.scale, rank, trailing), layout=_reducer(trailing))), \
                f"scale laid on axes {list(trailing)} instead of {list(a.axes)}"
        if kind == "transposed":
            if k < 2 or a.scale.T.shape != a.scale.shape:
                return None
            return pick(a, general(a, s_b=placed(a.scale.T, rank, a.axes), layout=_reducer(a.axes, transpose=True))), ""
        raise ValueError(kind)
    return predict


def _reducer(axes: tuple[int, ...], transpose: bool = False):
    def reduce(full):
        other = tuple(k for k in range(full.ndim) if k not in axes)
        out = np.sum(full, axis=other)
        return out.T if transpose else out
    return reduce


# -- other axes ------------------------------------------------------------------------------------
def _other_axes(a: Arrays) -> list[tuple[tuple[int, ...], str]]:
    rank = a.x.ndim
    if not a.axes:  # a rank-0 input (or no axes): no other axes to take
        return []
    options = [((rank - 1,), "the last axis only"), ((a.axes[0],), "the first requested axis only"),
               (tuple(range(rank - len(a.axes), rank)), "the trailing axes"),
               (tuple(range(rank)), "every axis, the batch included (statistics shared across rows)")]
    seen, out = {a.axes}, []
    for axes, what in options:
        if rank and axes not in seen:
            seen.add(axes)
            out.append((axes, what))
    return out


def other_axes(a: Arrays):
    """Tried in turn, each with the scale where requested and where plain broadcasting puts
    it (the trailing axes); the first that explains the result wins."""
    rank, k = a.x.ndim, len(a.axes)
    trailing = tuple(range(rank - k, rank))
    layouts = [(None, None, "")]
    if trailing != a.axes and a.x.shape[rank - k:] == a.scale.shape:
        layouts.append((placed(a.scale, rank, trailing), _reducer(trailing), f", and the scale on axes {list(trailing)}"))
    return [(pick(a, general(a, stat_axes=axes, s_b=s_b, layout=layout)),
             f"statistics over {what} ({list(axes)}) instead of {list(a.axes)}{also}")
            for axes, what in _other_axes(a) for s_b, layout, also in layouts]


CATALOGUE: tuple[Hypothesis, ...] = (
    Hypothesis("special-values", "special-values", "NaN/Inf (in the input, or 0/0 in the formula) propagate differently",
               ("forward", "grad_x", "grad_scale"), nonfinite_rows),
    Hypothesis("range", "range", "intermediates overflow or underflow the compute dtype where the result is finite",
               ("forward", "grad_x", "grad_scale"), range_limit),
    # Flushing is a mode on top of plain IEEE arithmetic: where both predict the same, range.
    Hypothesis("subnormals-flushed", "range", "subnormal inputs are flushed to zero",
               ("forward", "grad_x", "grad_scale"), flushed_subnormals),
    Hypothesis("lower-precision", "precision", "computed in a lower precision than the input's dtype",
               ("forward", "grad_x", "grad_scale"), lower_precision),
    Hypothesis("cast-overflow", "precision", "a float64 input is cast to float32 to be computed, and overflows there",
               ("forward", "grad_x", "grad_scale"), cast_overflow),
    Hypothesis("sequential-sum", "precision", "x² is summed in one sequential accumulator (one lane)",
               ("forward", "grad_x", "grad_scale"), sequential_sum),
    Hypothesis("eps-outside-sqrt", "semantics", "epsilon is added outside the square root",
               ("forward", "grad_x", "grad_scale"), plain(eps_outside=True)),
    Hypothesis("eps-ignored", "parameters", "the requested epsilon is ignored",
               ("forward", "grad_x", "grad_scale"), plain(eps=0.0)),
    Hypothesis("eps-different", "parameters", "another epsilon than the one requested is applied",
               ("forward", "grad_x", "grad_scale"), different_epsilon),
    Hypothesis("divisor", "semantics", "the mean of squares uses another divisor",
               ("forward", "grad_x", "grad_scale"), wrong_divisor),
    # For dx, a scale ignored everywhere and one ignored by the backward alone are the same
    # prediction: grad-scale-ignored below names it.
    Hypothesis("scale-ignored", "semantics", "the scale is not applied",
               ("forward", "grad_scale"), _scale_variant("ignored")),
    Hypothesis("scale-one-plus", "parameters", "the scale is applied as (1 + w)",
               ("forward", "grad_x", "grad_scale"), _scale_variant("one-plus")),
    Hypothesis("scale-wrong-axis", "semantics", "the scale is applied along the trailing axes, not the normalized ones",
               ("forward", "grad_x", "grad_scale"), _scale_variant("last-axes")),
    Hypothesis("scale-transposed", "semantics", "a multi-axis scale is applied transposed",
               ("forward", "grad_x", "grad_scale"), _scale_variant("transposed")),
    Hypothesis("other-axes", "semantics", "the statistics are taken over other axes than requested",
               ("forward", "grad_x", "grad_scale"), other_axes),
    Hypothesis("mean-subtracted", "semantics", "the mean is subtracted (LayerNorm, not RMS normalization)",
               ("forward", "grad_x", "grad_scale"), plain(centered=True)),
    Hypothesis("approximate-rsqrt", "precision", "the reciprocal square root is approximate",
               ("forward", "grad_x", "grad_scale"), approximate_rsqrt),
    Hypothesis("grad-no-projection", "semantics", "dx treats 1/rms as a constant (the projection term is missing)",
               ("grad_x",), plain(grad_terms=(0.0, 1.0))),
    Hypothesis("grad-projection-sign", "semantics", "dx adds the projection term instead of subtracting it",
               ("grad_x",), plain(grad_terms=(-1.0, 1.0))),
    Hypothesis("grad-scale-ignored", "semantics", "dx ignores the scale",
               ("grad_x",), plain(grad_terms=(1.0, 0.0))),
    Hypothesis("dscale-mean", "semantics", "dscale is averaged over the rows instead of summed",
               ("grad_scale",), lambda a: (general(a)[2] / max(1, a.x.size // max(1, a.scale.size)), "")),
    Hypothesis("dscale-no-rms", "semantics", "dscale misses the 1/rms factor",
               ("grad_scale",), plain(dscale_rms=False)),
)
BY_ID = {h.id: h for h in CATALOGUE}
