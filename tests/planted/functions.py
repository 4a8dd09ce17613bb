"""Plain functions f(x, weight, eps) -> y for `--function torch|jax|numpy` (adapters/function.py)."""
import numpy as np


def _axes(x, weight):
    return tuple(range(x.ndim - weight.ndim, x.ndim))


def _out(y, x):
    """y in x's dtype; for integer or boolean inputs, the float result."""
    return y if np.dtype(x.dtype).kind in "biu" else y.astype(x.dtype)


def numpy_rms_norm(x, weight, eps):
    """Correct: half precision computed in float32, the output in the input's dtype."""
    ct = np.float64 if x.dtype == np.float64 else np.float32
    xc = np.asarray(x, order="C").astype(ct)
    with np.errstate(all="ignore"):
        r = 1 / np.sqrt(np.mean(xc * xc, axis=_axes(x, weight), keepdims=True) + ct(eps))
        return _out((xc * r.astype(ct) * weight.astype(ct)), x)


def numpy_eps_outside_sqrt(x, weight, eps):
    """Buggy: x / (sqrt(mean(x²)) + eps)."""
    ct = np.float64 if x.dtype == np.float64 else np.float32
    xc = np.asarray(x, order="C").astype(ct)
    with np.errstate(all="ignore"):
        r = 1 / (np.sqrt(np.mean(xc * xc, axis=_axes(x, weight), keepdims=True)) + ct(eps))
        return _out((xc * r.astype(ct) * weight.astype(ct)), x)


def numpy_rms_norm_axis(x, weight, eps, axis=None):
    """Correct, normalizing `axis` (any axes; the weight shaped as their sizes)."""
    axes = _axes(x, weight) if axis is None else tuple(axis)
    shape = [1] * x.ndim
    for a, n in zip(axes, weight.shape):
        shape[a] = n
    ct = np.float64 if x.dtype == np.float64 else np.float32
    xc = np.asarray(x, order="C").astype(ct)
    with np.errstate(all="ignore"):
        r = 1 / np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True) + ct(eps))
        return _out((xc * r.astype(ct) * weight.reshape(shape).astype(ct)), x)


def torch_rms_norm(x, weight, eps):
    """Correct, in torch: half precision computed in float32."""
    import torch

    dims = tuple(range(x.ndim - weight.ndim, x.ndim))
    ct = torch.float64 if x.dtype == torch.float64 else torch.float32
    xc = x.contiguous().to(ct)
    r = torch.rsqrt(xc.pow(2).mean(dim=dims, keepdim=True) + eps)
    y = xc * r * weight.to(ct)
    return y.to(x.dtype) if x.is_floating_point() else y  # integer inputs: the float result


def jax_rms_norm(x, weight, eps):
    """Correct, in JAX: half precision computed in float32."""
    import jax.numpy as jnp

    dims = tuple(range(x.ndim - weight.ndim, x.ndim))
    ct = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    xc = x.astype(ct)
    r = 1 / jnp.sqrt(jnp.mean(xc * xc, axis=dims, keepdims=True) + eps)
    y = xc * r * weight.astype(ct)
    return y.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else y  # integer inputs: the float result
