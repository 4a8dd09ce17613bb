"""Non-contiguous copies of an input, for the `layout` property (conformance/properties.py).

Each returns an array with the values of `x` whose memory is laid out otherwise; NotImplementedError
where the layout does not apply to `x`'s shape.  Adapters whose framework takes numpy arrays as
they are pass `numpy_layout(x, name)` to their call; torch adapters use `torch_layout`.
"""
from __future__ import annotations

import numpy as np


def numpy_layout(x: np.ndarray, name: str) -> np.ndarray:
    if name == "transposed":  # the last two axes swapped in memory
        if x.ndim < 2:
            raise NotImplementedError("a transposed view needs two axes")
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -1, -2)), -1, -2)
    if name == "strided":  # every other element of a buffer twice as long
        if x.ndim < 1:
            raise NotImplementedError("a strided view needs an axis")
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    if name == "negative-strides":  # the last axis reversed in memory
        if x.ndim < 1:
            raise NotImplementedError("a reversed view needs an axis")
        return np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    raise NotImplementedError(f"numpy has no {name} layout")


def torch_layout(x: np.ndarray, name: str):
    """The torch tensor of `x` in that layout (torch has no negative strides)."""
    import torch

    from conformance.adapters._convert import torch_from_numpy

    t = torch_from_numpy(np.ascontiguousarray(x))
    if name == "channels-last":
        if t.ndim != 4:
            raise NotImplementedError("channels_last is a rank-4 memory format")
        return t.contiguous(memory_format=torch.channels_last)
    if name == "transposed":
        if t.ndim < 2:
            raise NotImplementedError("a transposed view needs two axes")
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if name == "strided":
        if t.ndim < 1:
            raise NotImplementedError("a strided view needs an axis")
        big = torch.zeros(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype)
        big[..., ::2] = t
        return big[..., ::2]
    raise NotImplementedError(f"torch has no {name} layout")
