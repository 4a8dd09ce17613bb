"""Small torch and numpy helpers of the adapters (the conversions are in _steps.py: a repro
script copies them)."""
from __future__ import annotations

import numpy as np

from conformance.adapters._steps import to_torch
from conformance.numerics.layouts import ROW_PADDING


def use_torch_device(device: str) -> None:
    """Tensors and new modules on `device` ("cpu" or "cuda"), for the torch-family adapters:
    torch's default device, which `to_torch` puts tensors on."""
    import torch

    if device != "cpu":
        torch.set_default_device(device)


def torch_layout(x: np.ndarray, name: str):
    """The torch tensor of `x` in that layout (torch has no negative strides)."""
    import torch

    t = to_torch(np.ascontiguousarray(x))
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
    if name == "row-strided":
        if t.ndim < 2:
            raise NotImplementedError("a row-strided view needs rows")
        big = torch.zeros(t.shape[:-1] + (t.shape[-1] + ROW_PADDING,), dtype=t.dtype)
        big[..., :t.shape[-1]] = t
        return big[..., :t.shape[-1]]
    raise NotImplementedError(f"torch has no {name} layout")


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def torch_param_dtype(spec):
    """The `dtype=` of a torch module: the case's parameter dtype, or None (torch's
    default) where the case asks for a layer built with no dtype arguments."""
    return None if spec.no_dtype_args else torch_dtype(spec.param_dtype)


def describe_init(values) -> str:
    """How a freshly initialized parameter looks: "all 1", or random with its mean."""
    flat = np.asarray(values, np.float64).ravel()
    return f"all {flat[0]:g}" if flat.size and (flat == flat[0]).all() else f"random, mean {flat.mean():.3g}"
