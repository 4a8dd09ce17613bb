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

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from conformance.numerics.arrays import into
from conformance.numerics.threads import ordered


@dataclass(frozen=True, eq=False)
class Reference:
    """The oracle's results (a field the oracle was not asked for is None)."""

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


BLOCK_ELEMENTS = 1 << 20  # above this, the oracle and the scoring run in blocks of rows: temporaries stay bounded
FIELDS = ("y", "dx", "dscale")  # what a block of the oracle can be asked for (dx with its magnitude, dscale too)


@dataclass(frozen=True)
class Blocked:
    """A reference given block by block: `at(index)` is (reference, magnitude or None) of the rows
    an entry of `blocks` indexes (Oracle.blocked: computed as they are scored, kept nowhere)."""

    shape: tuple[int, ...]
    blocks: tuple[tuple, ...]
    at: Callable[[tuple], tuple[np.ndarray, np.ndarray | None]]


def row_blocks(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[tuple, ...]:
    """Index tuples covering an array of `shape` in blocks of whole rows along axis 0 (where axis 0
    is not normalized) of about BLOCK_ELEMENTS, or one block `()` of everything."""
    size = math.prod(shape)
    if not shape or size <= BLOCK_ELEMENTS or (axes is not None and 0 in axes) or not shape[0]:
        return ((),)
    step = max(1, BLOCK_ELEMENTS // (size // shape[0]))
    return tuple((slice(k, k + step),) for k in range(0, shape[0], step))


def assembled(fn: Callable[[tuple], tuple[np.ndarray, ...]], shape: tuple[int, ...],
              blocks: tuple[tuple, ...]) -> tuple[np.ndarray, ...]:
    """The whole float64 arrays whose rows `fn(block)` computes block by block (a tuple of arrays
    shaped as those rows), the blocks on threads (threads.ordered)."""
    if len(blocks) == 1:
        return fn(blocks[0])
    out: tuple[np.ndarray, ...] = ()
    for block, parts in ordered(lambda b: (b, fn(b)), blocks):
        out = out or tuple(np.empty(shape) for _ in parts)
        for whole, part in zip(out, parts):
            whole[block] = part
    return out


def oracle(x, scale, dy, axes: tuple[int, ...], eps: float) -> Reference:
    """Forward and gradients in float64; `axes` sorted and non-negative (every field at once:
    Oracle computes a kernel-sized case's block by block, as it is scored)."""
    return Oracle(x, scale, dy, axes, eps).full()


class Oracle:
    """The float64 reference of one case, computed when asked: whole (`full`, kept), or by blocks
    of rows (`rows`, for the fields asked, kept nowhere but for a value or two per row and dscale's
    partial sums) so that scoring a kernel-sized case holds one block of float64 temporaries, never
    float64 copies of the whole case.

    Dividing by m = 1 leaves zero and non-finite rows on the literal formula.  Every row is its
    own computation, so a block's values are bit for bit those of the whole; dscale's partial sums
    are added block by block.
    """

    def __init__(self, x, scale, dy, axes: tuple[int, ...], eps: float):
        self.x, self.dy = np.asarray(x), np.asarray(dy)
        self.s = placed(np.asarray(scale, np.float64), self.x.ndim, axes)
        self.axes, self.eps = axes, float(eps)
        self.blocks = row_blocks(self.x.shape, axes)
        self._full: Reference | None = None
        self._dscale: tuple[np.ndarray, np.ndarray] | None = None
        self._y: np.ndarray | None = None
        # Per block, what is small and computed again by every field otherwise: each row's
        # statistics (m, 1/rms), and dscale's partial sums, which the dx pass adds for a few passes
        # where a dscale pass of its own would read the case again (the same values either way).
        self._stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._dscale_parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def shape(self) -> tuple[int, ...]:
        return self.x.shape

    def rows(self, block: tuple, fields: tuple[str, ...] = FIELDS) -> Reference:
        """The reference of the rows `block` indexes (an entry of `blocks`), only `fields` computed
        (the others None); the whole case's, kept, where it is one block."""
        if block == ():
            return self.full()
        if self._full is not None:
            f = self._full
            return Reference(f.y[block], f.dx[block], None, f.dx_magnitude[block], None)
        key = block[0].start  # slices are no dict keys before Python 3.12; a block is its first row
        if "dx" in fields and self._dscale is None and key not in self._dscale_parts:
            fields = (*fields, "dscale")
        part, stats = _rows(self.x[block].astype(np.float64), self.s, self.dy[block].astype(np.float64), self.axes,
                            self.eps, fields, self._stats.get(key))
        if self.axes:  # one value per row (without axes m is elementwise: the size of the case)
            self._stats[key] = stats
        if "dscale" in fields:
            self._dscale_parts[key] = (part.dscale, part.dscale_magnitude)
        return part

    def blocked(self, field: str) -> Blocked:
        """`field` ("y"; "dx", with its magnitude) block by block, as compare.score reads it."""
        def at(block):
            part = self.rows(block, (field,))
            return (part.y, None) if field == "y" else (part.dx, part.dx_magnitude)
        return Blocked(self.shape, self.blocks, at)

    def full(self) -> Reference:
        """Every field over the whole case (kept: the consumers that need whole arrays)."""
        if self._full is None:
            if len(self.blocks) == 1:
                self._full, _ = _rows(self.x.astype(np.float64), self.s, self.dy.astype(np.float64), self.axes,
                                      self.eps)
            else:
                def fields(block):
                    part = self.rows(block)
                    return part.y, part.dx, part.dx_magnitude
                y, dx, dx_mag = assembled(fields, self.shape, self.blocks)
                dscale, dscale_mag = self.dscale()
                self._full = Reference(y, dx, dscale, dx_mag, dscale_mag)
        return self._full

    def y(self) -> np.ndarray:
        """The forward reference over the whole case, alone (kept: the fused forms read it whole)."""
        if self._full is None and self._y is None and len(self.blocks) > 1:
            (self._y,) = assembled(lambda b: (self.rows(b, ("y",)).y,), self.shape, self.blocks)
        return self._y if self._y is not None else self.full().y

    def dscale(self) -> tuple[np.ndarray, np.ndarray]:
        """(dscale, its magnitude): one pass over the blocks, kept."""
        if self._dscale is None:
            if len(self.blocks) == 1 or self._full is not None:
                full = self.full()
                self._dscale = (full.dscale, full.dscale_magnitude)
            else:
                missing = [b for b in self.blocks if b[0].start not in self._dscale_parts]
                for _ in ordered(lambda b: self.rows(b, ("dscale",)), missing):
                    pass  # rows() keeps each block's partial sums
                dscale = dscale_mag = 0.0
                for block in self.blocks:  # added in the blocks' order, whichever pass computed them
                    part, part_mag = self._dscale_parts[block[0].start]
                    dscale, dscale_mag = dscale + part, dscale_mag + part_mag
                self._dscale = (dscale, dscale_mag)
                self._dscale_parts.clear()
        return self._dscale


class Lazy:
    """An Oracle read as a Reference: each field computed when first read, y alone (the forward
    checks of several candidate semantics), the gradients all at once (the one a backward check
    scores).  The fused forms keep one per candidate and score the gradients of one."""

    def __init__(self, oracle: Oracle):
        self.oracle = oracle

    y = property(lambda self: self.oracle.y())
    dx = property(lambda self: self.oracle.full().dx)
    dx_magnitude = property(lambda self: self.oracle.full().dx_magnitude)
    dscale = property(lambda self: self.oracle.dscale()[0])
    dscale_magnitude = property(lambda self: self.oracle.dscale()[1])


def lazy(x, scale, dy, axes: tuple[int, ...], eps: float) -> Lazy:
    """oracle()'s Reference, each field computed when first read (Lazy)."""
    return Lazy(Oracle(x, scale, dy, axes, eps))


def _rows(x: np.ndarray, s: np.ndarray, dy: np.ndarray, axes: tuple[int, ...], eps: float,
          fields: tuple[str, ...] = FIELDS, stats: tuple[np.ndarray, np.ndarray] | None = None
          ) -> tuple[Reference, tuple[np.ndarray, np.ndarray]]:
    """The oracle of whole rows, in float64 (`s` placed against x): the `fields` asked for, and the
    rows' statistics (m, 1/rms of x / m), which `stats` gives where they were computed before."""
    y = dx = dx_mag = dscale = dscale_mag = None
    with np.errstate(all="ignore"):
        if stats is None:
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
        else:
            m, rh = stats
            xh = x / m
        # Everything below goes through xn = x * r, which is O(1): products with
        # subnormal x never round before they are scaled up.
        # In place (arrays.into): one block's temporaries fewer, the same values.
        xn = np.multiply(xh, rh, out=into(xh))
        if "y" in fields:
            y = xn * s
        if "dx" in fields:
            sdy = s * dy
            p = sdy * xn
            proj = np.mean(p, axis=axes, keepdims=True)
            proj_abs = np.mean(np.abs(p, out=into(p)), axis=axes, keepdims=True)
            r = rh / m  # overflows only where the true gradient does
            dx = r * (sdy - xn * proj)
            dx_mag = r * (np.abs(sdy, out=into(sdy)) + np.abs(xn) * proj_abs)
        if "dscale" in fields:
            other = tuple(a for a in range(x.ndim) if a not in axes)
            p = dy * xn
            dscale = np.sum(p, axis=other)
            dscale_mag = np.sum(np.abs(p, out=into(p)), axis=other)
    return Reference(y, dx, dscale, dx_mag, dscale_mag), (m, rh)
