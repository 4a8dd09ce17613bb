"""The float64 oracles of the fused forms: the residual add, the (offset + w) scale, fp8 output.

Each is stated exactly, on top of the plain oracle (oracle.py), from the values the adapter was
given (x, residual, w and the scale already rounded to their dtypes):

    fused add    sum = x + residual (exact: two values of the case's dtype add exactly in float64)
                 new_residual = fl_dtype(sum)                        the written-back residual
                 y = rmsnorm(fl_dtype(sum))   "the input dtype":    the sum rounded, then normalized
                 y = rmsnorm(fl_f32(sum))     "float32":            the sum kept in float32 (half inputs)
                 d(x) = d(residual) = rmsnorm's dx(sum; dy) + d(new_residual);  dscale as rmsnorm's
    offset       y = rmsnorm(x) * m,  m = fl_F(offset + w), F the format the kernel adds in:
                 float32 (or the weight's dtype where wider) is right; the weight's half dtype
                 (vllm-project/vllm#3653), or float32 for float64 weights, loses bits
    quantized    y_q = fp8(saturate(rmsnorm(x) * s / scale)): saturate clips to ±448, fp8 rounds
                 to the nearest float8_e4m3fn value, ties to even (subnormals included); NaN stays NaN

Where two semantics are valid (the residual sum of half inputs), both are scored and `follows`
says which one an output is; fp8 results are compared in units of the fp8 grid (`fp8_units`).
"""
from __future__ import annotations

import numpy as np

from conformance.numerics import tolerance
from conformance.numerics.arrays import EXPONENT_BITS, float64_bits, into
from conformance.numerics.dtypes import FORMATS, FP8_E4M3FN, FloatFormat
from conformance.numerics.oracle import Lazy, Reference, lazy

F32, F64 = FORMATS["float32"], FORMATS["float64"]


def rounded(values, fmt: FloatFormat) -> np.ndarray:
    """`values` rounded once to `fmt` (to nearest, ties to even; Inf beyond its range), as float64."""
    with np.errstate(all="ignore"):
        return np.asarray(values, np.float64).astype(fmt.np_dtype).astype(np.float64)


# -- the fused add ------------------------------------------------------------------------------
def sum_formats(compute: FloatFormat) -> tuple[FloatFormat, ...]:
    """The formats the sum may be normalized in, the first the one a kernel keeping it in float32
    uses: (float32, the input dtype) for half inputs; the input dtype alone otherwise."""
    return (F32, compute) if compute.digits < F32.digits else (compute,)


def fused_add(x, residual, scale, dy, axes: tuple[int, ...], eps: float, compute: FloatFormat
              ) -> tuple[np.ndarray, dict[str, Lazy]]:
    """(the written-back residual, {format name: the oracle of the sum normalized in that format},
    each field computed when first read)."""
    with np.errstate(all="ignore"):
        exact = np.asarray(x, np.float64) + np.asarray(residual, np.float64)
    written = rounded(exact, compute)
    return written, {f.name: lazy(rounded(exact, f), scale, dy, axes, eps) for f in sum_formats(compute)}


def fused_add_grads(ref: Reference | Lazy, dres) -> tuple[np.ndarray, np.ndarray]:
    """(d(x) = d(residual), its magnitude): the sum feeds both outputs, so its gradient is
    rmsnorm's dx plus the gradient of the written-back residual."""
    dres = np.asarray(dres, np.float64)
    return ref.dx + dres, ref.dx_magnitude + np.abs(dres)


# -- the offset ---------------------------------------------------------------------------------
def offset_multipliers(w, offset: float, param: FloatFormat) -> dict[str, np.ndarray]:
    """{format name: offset + w computed in that format}, the right one first: float32 for half
    and float32 weights, float64 for float64 weights; then the one that loses bits: the weight's
    own half dtype, or float32 for float64 weights (w cast to float32, then added there)."""
    w = np.asarray(w, np.float64)
    right = F64 if param.digits > F32.digits else F32
    out = {right.name: rounded(offset + w, right)}  # offset + w is exact in float64 for these weights
    if param.digits < F32.digits:
        out[param.name] = rounded(offset + w, param)
    elif param.digits > F32.digits:
        out[F32.name] = rounded(offset + rounded(w, F32), F32)
    return out


# -- which semantics an output follows ----------------------------------------------------------
def follows(observed, candidates: dict[str, np.ndarray], fmt: FloatFormat) -> str | None:
    """The candidate (its key) the observed output is, element by element, the correct rounding
    of, where the candidates' roundings differ (tolerance.SEMANTICS_*); None: indistinguishable."""
    keys = list(candidates)
    if len(keys) == 1:
        return keys[0]
    o = np.asarray(observed, np.float64)
    a, b = (rounded(candidates[k], fmt) for k in keys[:2])
    if o.shape != a.shape:
        return None
    with np.errstate(invalid="ignore"):
        telling = (a != b) & np.isfinite(a) & np.isfinite(b)
    n = int(telling.sum())
    if n < tolerance.SEMANTICS_MIN_ELEMENTS:
        return None
    hits = [int((o == c)[telling].sum()) for c in (a, b)]
    for k, (mine, other) in enumerate((hits, hits[::-1])):
        if mine >= tolerance.SEMANTICS_SHARE * n and mine >= tolerance.SEMANTICS_RATIO * other:
            return keys[k]
    return None


def telling_elements(candidates: dict[str, np.ndarray], fmt: FloatFormat) -> int:
    """On how many elements two candidates' roundings to `fmt` differ (0 for one candidate)."""
    if len(candidates) < 2:
        return 0
    a, b = (rounded(v, fmt) for v in list(candidates.values())[:2])
    with np.errstate(invalid="ignore"):
        return int(((a != b) & np.isfinite(a) & np.isfinite(b)).sum())


# -- fp8 ----------------------------------------------------------------------------------------
FP8 = FP8_E4M3FN


def fp8_round(values, saturate: bool = True, toward_zero: bool = False) -> np.ndarray:
    """float8_e4m3fn values of `values`, as float64: to nearest, ties to even (or toward zero),
    subnormals included, after clipping to ±448 where `saturate` (the fused kernels' clamp);
    without it, what overflows the format is NaN (it has no infinity).  NaN stays NaN."""
    v = np.asarray(values, np.float64)
    with np.errstate(all="ignore"):
        a = np.abs(v)
        if saturate:
            a = np.minimum(a, FP8.max, out=into(a))  # NaN stays NaN, Inf becomes 448
        spacing = _spacing(a)
        k = np.divide(a, spacing, out=into(a))
        k = np.floor(k, out=into(k)) if toward_zero else np.rint(k, out=into(k))  # np.rint: to nearest, ties to even
        r = np.multiply(k, spacing, out=into(k))  # Inf (unsaturated) stays Inf, NaN NaN
        r = np.where(r > FP8.max, np.nan, r)  # beyond the format, Inf included: NaN (it has no infinity)
        return np.copysign(r, v, out=into(r))


def _exponent(bits: np.ndarray) -> np.ndarray:
    """E of a = ±1.m * 2**E, from the exponent field of a's float64 bits (arrays.float64_bits;
    -1023 at 0 and float64's subnormals, 1024 at NaN/Inf): one integer pass, where frexp is several."""
    return ((bits >> 52) & 0x7FF) - 1023


def _spacing(a: np.ndarray) -> np.ndarray:
    """The distance between fp8 values around |a| (that of the subnormals below 2**-6): 2**E from
    float64's exponent bits (the sign and mantissa masked off), at least 2**emin, times 2**-3, in
    place (at 0 that of the subnormals; at NaN/Inf Inf, where nothing is rounded)."""
    binade = (float64_bits(a) & EXPONENT_BITS).view(np.float64)
    binade = np.maximum(binade, 2.0 ** FP8.emin, out=into(binade))
    return np.multiply(binade, 2.0 ** -(FP8.digits - 1), out=into(binade))


def fp8_order(values) -> np.ndarray:
    """Each fp8 value's place on the fp8 grid (0 for ±0, one step per representable value, negative
    below zero), as int64; the distance of two places is their distance in fp8 units.  `values`
    are fp8 values (as float64): the place is read from their float64 bits, biased exponent and
    the top mantissa bits, as the fp8 encoding lays them out (no conversion to fp8)."""
    v = np.asarray(values, np.float64)
    bits = float64_bits(v)  # once: the exponent and the top mantissa bits are both read from it
    e = _exponent(bits)
    top = (bits >> (52 - (FP8.digits - 1))) & ((1 << (FP8.digits - 1)) - 1)
    bias = 1 - FP8.emin
    with np.errstate(all="ignore"):
        normal = ((e + bias) << (FP8.digits - 1)) + top
        sub = np.rint(np.abs(v) * 2.0 ** -(FP8.emin - (FP8.digits - 1))).astype(np.int64)  # k * 2**-9: k
    magnitude = np.where(e >= FP8.emin, normal, sub)
    return np.where(np.signbit(v), -magnitude, magnitude)


def fp8_units(observed, expected) -> np.ndarray:
    """|observed - expected| in fp8 units, element by element; NaN against NaN is 0, NaN against
    a number Inf (the NaN pattern is judged apart).  Places are read only where the two differ (a
    correct kernel's output is mostly equal to the oracle's, element for element)."""
    o, e = np.asarray(observed, np.float64), np.asarray(expected, np.float64)
    on, en = np.isnan(o), np.isnan(e)
    differ = (o != e) & ~(on & en)  # equal values (±0 too) are 0 units apart
    out = np.zeros(np.broadcast_shapes(o.shape, e.shape))
    if differ.any():
        o, e = np.broadcast_to(o, out.shape)[differ], np.broadcast_to(e, out.shape)[differ]
        on, en = np.isnan(o), np.isnan(e)
        d = np.abs(fp8_order(np.where(on, 0.0, o)) - fp8_order(np.where(en, 0.0, e))).astype(np.float64)
        out[differ] = np.where(on | en, np.inf, d)
    return out


def near_boundary(values, zone: float, saturate: bool = True) -> np.ndarray:
    """Where an exact value lies within `zone` (relative) of a boundary between two fp8 values: a
    kernel's own rounding may put it on either side (tolerance.quantized_zone)."""
    v = np.asarray(values, np.float64)
    with np.errstate(all="ignore"):
        a = np.minimum(np.abs(v), FP8.max) if saturate else np.abs(v)
        spacing = _spacing(a)
        middle = (np.floor(a / spacing) + 0.5) * spacing
        return np.isfinite(a) & (np.abs(a - middle) <= zone * a)


def quantized(y, scale: float, saturate: bool = True, toward_zero: bool = False,
              multiplied: bool = False) -> np.ndarray:
    """The oracle of the quantized output from the plain oracle's y: fp8(saturate(y / scale));
    `multiplied` (y * scale), `saturate=False` and `toward_zero` are the classic bugs."""
    y = np.asarray(y, np.float64)
    with np.errstate(all="ignore"):
        v = y * scale if multiplied else y / scale
    return fp8_round(v, saturate, toward_zero)
