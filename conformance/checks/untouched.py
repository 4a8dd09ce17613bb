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


def snapshot(arrays) -> dict[str, bytes]:
    """The bytes of each array handed over (the case's own arrays, before any call)."""
    return {name: np.ascontiguousarray(getattr(arrays, name)).tobytes() for name in HANDED_OVER}


def inputs_untouched(ctx) -> dict:
    changed = []
    for name in HANDED_OVER:
        now = np.ascontiguousarray(getattr(ctx.arrays, name))
        if now.tobytes() != ctx.before[name]:
            width = max(now.dtype.itemsize, 1)
            a, b = (np.frombuffer(v, np.uint8).reshape(-1, width) for v in (now.tobytes(), ctx.before[name]))
            changed.append(f"{name} ({int(np.any(a != b, axis=1).sum())} of {now.size} elements)")
    if not changed:
        return ctx.record("inputs_untouched", "pass")
    message = "written in place: " + ", ".join(changed)
    return ctx.record("inputs_untouched", "fail", message, diagnosis=diagnosis("inputs-modified", "property", message))
