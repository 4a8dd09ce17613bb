"""The float64 reference: RMS normalization and its analytic gradients.

    r      = 1 / sqrt(mean(x**2, axes) + eps),   xn = x * r
    y      = xn * scale
    dx     = r * (scale * dy - xn * mean(scale * dy * xn, axes))
             (= r*scale*dy - x*r**3*mean(scale*dy*x), the form most implementations write)
    dscale = sum over the other axes of dy * xn

Rows whose values are all finite are computed on x / max|x| (and eps / max|x|**2)
where that matters (see `oracle`): the same function, but it cannot overflow or
underflow in float64, so the oracle stays exact for float64 inputs near the
format's limits.  Rows holding
NaN or Inf, and all-zero rows, keep m = 1, i.e. the formula as written: IEEE arithmetic then
decides where NaN and Inf appear, which is the pattern implementations must match.

Alongside each gradient the oracle returns its *magnitude*: the sum of the
absolute values of the terms the gradient is made of.  Gradients subtract
nearly equal terms, so their rounding error is proportional to this magnitude,
not to the (possibly cancelled) result; tolerance.py scores against it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Reference:
    y: np.ndarray
    dx: np.ndarray
    dscale: np.ndarray
    dx_magnitude: np.ndarray
    dscale_magnitude: np.ndarray


def placed(scale: np.ndarray, rank: int, axes: tuple[int, ...]) -> np.ndarray:
    """The scale (shaped as the sizes of `axes`) reshaped to broadcast against a rank-`rank` input."""
    shape = [1] * rank
    for a, size in zip(axes, np.shape(scale)):
        shape[a] = size
    return np.reshape(scale, shape)


BLOCK_ELEMENTS = 1 << 20  # above this, the oracle runs in blocks of rows: its temporaries stay bounded


def oracle(x, scale, dy, axes: tuple[int, ...], eps: float) -> Reference:
    """Forward and gradients in float64; `axes` sorted and non-negative.

    Dividing by m = 1 leaves zero and non-finite rows on the literal formula.  Every row is its
    own computation, so a large case runs in blocks of rows along the first axis that is not
    normalized, into preallocated outputs (dscale's partial sums added block by block): memory
    beyond the outputs is that of one block, whatever the case's size.
    """
    s = placed(np.asarray(scale, np.float64), np.ndim(x), axes)
    other = tuple(a for a in range(np.ndim(x)) if a not in axes)
    if np.size(x) <= BLOCK_ELEMENTS or not other:
        return _rows(np.asarray(x, np.float64), s, np.asarray(dy, np.float64), axes, float(eps))
    x, dy = np.asarray(x), np.asarray(dy)
    lead = other[0]
    step = max(1, BLOCK_ELEMENTS // (x.size // x.shape[lead]))
    y, dx, dx_mag = np.empty(x.shape), np.empty(x.shape), np.empty(x.shape)
    dscale = dscale_mag = 0.0
    for start in range(0, x.shape[lead], step):
        block = [slice(None)] * x.ndim
        block[lead] = slice(start, start + step)
        block = tuple(block)
        part = _rows(x[block].astype(np.float64), s, dy[block].astype(np.float64), axes, float(eps))
        y[block], dx[block], dx_mag[block] = part.y, part.dx, part.dx_magnitude
        dscale, dscale_mag = dscale + part.dscale, dscale_mag + part.dscale_magnitude
    return Reference(y, dx, dscale, dx_mag, dscale_mag)


def _rows(x: np.ndarray, s: np.ndarray, dy: np.ndarray, axes: tuple[int, ...], eps: float) -> Reference:
    """The oracle of whole rows, in float64 (`s` placed against x)."""
    with np.errstate(all="ignore"):
        # Per-row magnitude m; 1 where scaling would not help (zero or non-finite rows).
        if x.size:
            m = np.max(np.abs(x), axis=axes, keepdims=True) if axes else np.abs(x)
        else:
            m = np.ones([1 if a in axes else d for a, d in enumerate(x.shape)])
        # Rescale only where it helps: above 1, x*x may overflow; with eps == 0, tiny
        # rows may underflow.  Below 1 with eps > 0, eps dominates any underflowed
        # square, and eps / m**2 could itself overflow.
        rescale = np.isfinite(m) & (m > 0) & ((m > 1) | (eps == 0))
        m = np.where(rescale, m, 1.0)
        xh = x / m
        scaled_eps = eps / (m * m) if eps else 0.0  # 0 / (tiny m)**2 would be NaN
        rh = 1.0 / np.sqrt(np.mean(xh * xh, axis=axes, keepdims=True) + scaled_eps)
        # Everything below goes through xn = x * r, which is O(1): products with
        # subnormal x never round before they are scaled up.
        xn = xh * rh
        y = xn * s
        sdy = s * dy
        proj = np.mean(sdy * xn, axis=axes, keepdims=True)
        proj_abs = np.mean(np.abs(sdy * xn), axis=axes, keepdims=True)
        r = rh / m  # overflows only where the true gradient does
        dx = r * (sdy - xn * proj)
        dx_mag = r * (np.abs(sdy) + np.abs(xn) * proj_abs)
        other = tuple(a for a in range(x.ndim) if a not in axes)
        dscale = np.sum(dy * xn, axis=other)
        dscale_mag = np.sum(np.abs(dy * xn), axis=other)
    return Reference(y, dx, dscale, dx_mag, dscale_mag)
