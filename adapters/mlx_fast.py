"""MLX's fused RMS norm, `mlx.core.fast.rms_norm(x, weight, eps)`, as an MLX user calls it.

- It normalizes the last axis of an input of rank >= 1 with a one-dimensional weight of that
  axis's size: other axes, several axes, rank 0 and an empty axis list are declined.
- `weight` is the case's scale in the parameter dtype (float32 for the mixed and default
  precisions: a function has no defaults).  `eps` is a C++ `float`: the case's value rounded
  to float32, which `effective()` reports.  The function has no default epsilon; the `epsdefault`
  cases use `mlx.nn.RMSNorm`'s (1e-5), read from its signature.
- Numerics as MLX has them: on the CPU (`mlx-cpu`, the Linux build) `RMSNorm::use_fallback` is
  true, so the op is its composed fallback (mlx/fast.cpp): x cast to float32, times
  `rsqrt(mean(square(x), -1) + eps)`, cast to the output type `result_type(x, weight)` (float32 for
  half inputs with a float32 weight), then times the weight cast to that type.
- Inputs become MLX arrays in their own dtype (`mx.array` alone would make float32 of a float64
  numpy array); bfloat16 crosses as its 16 bits.  Outputs come back in the dtype MLX produced.
- Gradients: `mx.vjp` of the function in x and the weight (dy cast to y's dtype); `jvp` with
  `mx.jvp`, `hvp` with `mx.grad` of the vjp.  A function: nothing to rebuild or save.
"""
from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._snippets import bind, invoke, snippet


def to_mlx(a):
    """A numpy array as an MLX array of the same dtype; bfloat16 travels as its 16 bits (an
    ml_dtypes array, or the bits themselves as uint16)."""
    import mlx.core as mx

    if a.dtype.name in ("bfloat16", "uint16"):
        return mx.array(np.ascontiguousarray(a).view(np.uint16)).view(mx.bfloat16)
    if a.dtype.kind == "f":  # mx.array alone makes float32 of float64
        return mx.array(a, dtype=getattr(mx, a.dtype.name))
    return mx.array(a)


def from_mlx(a):
    """An MLX array as a numpy array in its dtype: bfloat16 as ml_dtypes' (its bits as uint16
    where ml_dtypes is not installed)."""
    import mlx.core as mx

    if a.dtype != mx.bfloat16:
        return np.array(a)
    bits = np.array(a.view(mx.uint16))
    try:
        import ml_dtypes
    except ImportError:
        return bits
    return bits.view(ml_dtypes.bfloat16)


def mlx_default_epsilon():
    """mlx.nn.RMSNorm's default epsilon (the fast function has none)."""
    import inspect

    import mlx.nn as nn

    return inspect.signature(nn.RMSNorm).parameters["eps"].default


def mlx_fast_rmsnorm(eps, scale):
    """(eps, weight): the function's arguments besides x; the weight the case's scale."""
    return (mlx_default_epsilon() if eps is None else eps), to_mlx(np.asarray(scale))


def mlx_fast_apply(layer, x):
    import mlx.core as mx

    eps, weight = layer
    return mx.fast.rms_norm(x, weight, eps)


def mlx_call(apply, layer, x):
    """apply(layer, x) on x as an MLX array, evaluated, back in numpy."""
    return from_mlx(apply(layer, to_mlx(x)))


def mlx_vjp(apply, layer, weight, x, dy):
    """(dx, dweight): `mx.vjp` of apply in x and the weight, pulled back from dy in y's dtype; the
    weight goes in through `with_weight(layer, w)`."""
    import mlx.core as mx

    def f(xx, w):
        return apply(with_weight(layer, w), xx)

    xm, dym = to_mlx(x), to_mlx(dy)
    y_dtype = f(xm, weight).dtype
    _, (dx, dw) = mx.vjp(f, [xm, weight], [dym.astype(y_dtype)])
    return from_mlx(dx), from_mlx(dw)


def with_weight(layer, w):
    """The layer with its weight `w`: for the function, the (eps, weight) pair; for an
    mlx.nn module, the module with `w` as its weight parameter (as nn.value_and_grad updates it)."""
    if isinstance(layer, tuple):
        return layer[0], w
    layer.update({"weight": w})
    return layer


class MlxFast(Adapter):
    name = "mlx"
    worker_group = "mlx"
    packages = ("mlx", "mlx-cpu|mlx-metal")  # its backend: the Linux CPU build, or Apple's Metal one
    owners = ("mlx",)
    apply_fn = staticmethod(mlx_fast_apply)

    def load(self):
        import importlib.metadata

        import mlx.core as mx

        self.mx = mx
        versions = {"mlx": mx.__version__}
        for backend in ("mlx-cpu", "mlx-metal"):
            try:
                versions[backend] = importlib.metadata.version(backend)
            except importlib.metadata.PackageNotFoundError:
                pass
        return versions

    def supports(self, spec):
        if not spec.is_last_axis:
            return "mlx.core.fast.rms_norm normalizes the last axis only (one axis, rank >= 1)"
        return None

    def build(self, spec):
        return bind(mlx_fast_rmsnorm, spec)

    def _weight(self, layer):
        return layer[1]

    def _eps(self, layer) -> float:
        return layer[0]

    def call(self, layer, x):
        return mlx_call(self.apply_fn, layer, x)

    def grad(self, layer, x, dy):
        return mlx_vjp(self.apply_fn, layer, self._weight(layer), x, dy)

    def jvp(self, layer, x, v):
        _, (t,) = self.mx.jvp(lambda xx: self.apply_fn(layer, xx), [to_mlx(x)], [to_mlx(v)])
        return self.call(layer, x), from_mlx(t)

    def hvp(self, layer, x, dy, v):
        mx = self.mx
        f = lambda xx: self.apply_fn(layer, xx)  # noqa: E731
        xm, vm = to_mlx(x), to_mlx(v)
        dym = to_mlx(dy).astype(f(xm).dtype)

        def inner(xx):
            return (mx.vjp(f, [xx], [dym])[1][0] * vm).sum()

        return from_mlx(mx.grad(inner)(xm))

    def snippet(self, spec) -> dict:
        return snippet(mlx_fast_rmsnorm, mlx_fast_apply, mlx_call, build=invoke("layer", mlx_fast_rmsnorm),
                       call="out = mlx_call(mlx_fast_apply, layer, x)")

    def parameters(self, layer):
        return {"weight": from_mlx(self._weight(layer))}

    def effective(self, layer) -> dict:
        """eps is a C++ float: the requested value rounded to float32."""
        return {"epsilon": float(np.float32(self._eps(layer))), "scale": from_mlx(self._weight(layer))}

    def config(self, layer):
        eps, weight = layer
        return {"eps": eps, "epsilon": eps, "weight_shape": list(weight.shape), "weight_dtype": str(weight.dtype)}

    def defaults(self) -> dict:
        return {"axis": "-1", "epsilon": "required (mlx.nn.RMSNorm: %g)" % mlx_default_epsilon(),
                "scale_init": "given (weight=None: no scale)", "parameter_dtype": "the weight's"}
