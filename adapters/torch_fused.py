"""The fused forms as a PyTorch user writes them where no fused kernel is at hand (this project's
reference module for them, as vLLM's tests write theirs): `x + residual` in the input's dtype,
then the layer (`torch.nn.RMSNorm` or `torch.nn.functional.rms_norm`) on the sum; the layer's
output divided by a float32 scale, clamped to float8_e4m3fn's range, cast.

Plain functions of numpy and torch (adapters/_snippets.py's rules), used by the torch adapters
(adapters/torch_nn.py): the add and the cast are eager torch, the normalization is the layer's.
"""
from __future__ import annotations

from conformance.adapters._steps import from_torch, to_torch


def from_torch_fp8(t):
    """A torch float8_e4m3fn tensor as an ml_dtypes float8_e4m3fn array (its bits)."""
    import ml_dtypes
    import torch

    bits = t.detach().cpu().contiguous().view(torch.uint8).numpy()
    return bits.view(ml_dtypes.float8_e4m3fn)


def torch_fused_add(fn, x, residual):
    """(fn(x + residual), x + residual): the sum in the input's dtype, as PyTorch adds two tensors
    of it, then the layer on it; nothing written in place."""
    import torch

    with torch.no_grad():
        summed = to_torch(x) + to_torch(residual)
        return from_torch(fn(summed)), from_torch(summed)


def torch_fused_add_backward(fn, params, x, residual, dy, dresidual):
    """(dx, d(residual), [gradient of each of params]): autograd's backward through both outputs of
    the fused add, y from dy and the sum from dresidual."""
    import torch

    xt, rt = to_torch(x).requires_grad_(True), to_torch(residual).requires_grad_(True)
    for p in params:
        p.grad = None
    summed = xt + rt
    y = fn(summed)
    torch.autograd.backward([y, summed], [to_torch(dy).to(y.dtype), to_torch(dresidual).to(summed.dtype)])
    return from_torch(xt.grad), from_torch(rt.grad), [from_torch(p.grad) for p in params]


def torch_quantized(fn, x, scale):
    """fp8(clamp(fn(x) / scale)): the scale a float32 tensor of one element (so a half output is
    divided in float32, as vLLM's reference does), clamped to float8_e4m3fn's finite range, cast
    (to nearest even)."""
    import torch

    fp8 = torch.float8_e4m3fn
    with torch.no_grad():
        y = fn(to_torch(x))
        s = torch.tensor([scale], dtype=torch.float32, device=y.device)
        limit = torch.finfo(fp8).max
        return from_torch_fp8((y / s).clamp(min=-limit, max=limit).to(fp8))
