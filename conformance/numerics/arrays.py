"""What the numerics of kernel-sized arrays share: in-place outputs, and float64's bits.

On a 4096 × 8192 case every fresh temporary is 256 MiB of float64 and every pass over it counts:
the oracle, the scoring and fp8 rounding write into arrays they already hold (`into`), and read
binades from float64's exponent bits rather than through frexp/ldexp (`float64_bits`).
"""
from __future__ import annotations

import numpy as np

EXPONENT_BITS = np.int64(0x7FF0000000000000)  # float64's exponent field


def into(v):
    """`v` as the `out=` of an operation that may overwrite it: itself where it is an array, None
    (a fresh result) where it is a rank-0 value, which numpy returns as a scalar."""
    return v if isinstance(v, np.ndarray) and v.ndim else None


def float64_bits(v) -> np.ndarray:
    """The bits of `v` as float64, viewed as int64 (C-contiguous, a copy only where it is not; its
    rank kept, where ascontiguousarray would make a scalar 1-d)."""
    a = np.asarray(v, np.float64)
    return (a if a.flags.c_contiguous else a.copy()).view(np.int64)
