"""`inputs_untouched`: the arrays the suite handed over hold the same bits after `call` and `grad`.

An in-place kernel (Liger-Kernel and vLLM ship in-place variants), or an adapter whose tensors
share memory with the numpy arrays of the case while a kernel writes into them, changes the
caller's x, dy or scale.  The bits are taken before `build` and compared after the forward and
the backward pass have run (the registry's `after`), whatever those gave.
"""
from __future__ import annotations

import numpy as np

from conformance.diagnosis.diagnose import diagnosis

HANDED_OVER = ("x", "dy", "scale")  # x to call and grad, dy to grad, the scale to build


def _bits(a: np.ndarray) -> np.ndarray:
    """The raw bytes of an array, one row per element (NaN payloads and -0.0 included)."""
    a = np.ascontiguousarray(a)
    return a.reshape(-1).view(np.uint8).reshape(-1, max(a.dtype.itemsize, 1))


def handed_over(before: dict[str, np.ndarray], arrays, name: str) -> np.ndarray:
    """The array `name` as it was handed over, from its snapshot: what the oracle reads, whatever
    a kernel writes into the caller's array meanwhile."""
    now = getattr(arrays, name)
    return before[name].reshape(-1).view(now.dtype).reshape(now.shape)


def snapshot(arrays) -> dict[str, np.ndarray]:
    """A copy of the bytes of each array handed over (the case's own arrays, before any call):
    one memory copy, where bytes objects cost two on kernel-sized arrays."""
    return {name: _bits(getattr(arrays, name)).copy() for name in HANDED_OVER}


def inputs_untouched(ctx) -> dict:
    changed = []
    for name in HANDED_OVER:
        now, before = _bits(getattr(ctx.arrays, name)), ctx.before[name]
        if not np.array_equal(now, before):
            changed.append(f"{name} ({int(np.any(now != before, axis=1).sum())} of {getattr(ctx.arrays, name).size} "
                           "elements)")
    if not changed:
        return ctx.record("inputs_untouched", "pass")
    message = "written in place: " + ", ".join(changed)
    return ctx.record("inputs_untouched", "fail", message, diagnosis=diagnosis("inputs-modified", "property", message))
