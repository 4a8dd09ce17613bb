"""A plain function as an adapter: `f(x, weight, eps) -> y` in torch, JAX or numpy.

`conformance run --adapter mypkg.kernels:rms_norm --function torch` (the ref
`function:torch:mypkg.kernels:rms_norm`, which conformance/execution/loading.py turns into a
subclass of the class below with `fn` set):

- `build` makes the weight: the case's scale (shaped as the sizes of the normalized axes, in
  the parameter dtype) as a framework array; `eps` is the case's epsilon, 1e-6 where the case
  asks for the implementation's default (a function has none the suite could read).
- The function normalizes the trailing axes given by the weight's shape; one that takes a
  keyword `axis` is also given the normalized axes (a tuple of non-negative ints) and runs the
  non-trailing cases too.  Cases with no normalized axis are declined.
- `call` converts x to the framework and the output back to numpy in the dtype the function
  produced.  Gradients by the framework's autodiff: torch autograd, `jax.vjp`; none for numpy.
"""
from __future__ import annotations

import inspect

import numpy as np

from conformance.adapter import Adapter

DEFAULT_EPSILON = 1e-6
KINDS = ("torch", "jax", "numpy")


class _Layer:
    def __init__(self, weight, eps, axes, axis_keyword):
        self.weight, self.eps, self.axes = weight, eps, axes
        self.kwargs = {"axis": axes} if axis_keyword else {}


class FunctionAdapter(Adapter):
    """The common part; `fn` is the user's function, set by `wrap`."""

    kind = "numpy"
    fn = None

    @classmethod
    def _takes_axis(cls) -> bool:
        try:
            params = inspect.signature(cls.fn).parameters
        except (TypeError, ValueError):
            return False
        return "axis" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    def supports(self, spec):
        if not spec.axes:
            return "a function f(x, weight, eps) normalizes the axes of its weight: needs at least one axis"
        if not spec.is_trailing and not self._takes_axis():
            return "the function normalizes the trailing axes of its weight's shape (it takes no `axis` keyword)"
        return None

    def _eps(self, spec) -> float:
        return DEFAULT_EPSILON if spec.epsilon is None else spec.epsilon

    def _apply(self, layer, x, weight):
        return type(self).fn(x, weight, layer.eps, **layer.kwargs)

    def config(self, layer):
        return {"eps": layer.eps, "epsilon": layer.eps, "axis": list(layer.axes), "function": self.kind}


class NumpyFunction(FunctionAdapter):
    kind = "numpy"

    def load(self):
        return {"numpy": np.__version__}

    def build(self, spec):
        return _Layer(np.array(spec.scale, copy=True), self._eps(spec), spec.axes, self._takes_axis())

    def call(self, layer, x):
        return np.asarray(self._apply(layer, x, layer.weight))


class TorchFunction(FunctionAdapter):
    kind = "torch"
    device_family = "torch"

    def load(self):
        import torch

        from conformance.adapters._convert import use_torch_device

        use_torch_device(self.device)
        self.torch = torch
        return {"torch": torch.__version__}

    def build(self, spec):
        from conformance.adapters._steps import to_torch

        return _Layer(to_torch(spec.scale), self._eps(spec), spec.axes, self._takes_axis())

    def call(self, layer, x):
        from conformance.adapters._steps import from_torch, to_torch

        with self.torch.no_grad():
            return from_torch(self._apply(layer, to_torch(x), layer.weight))

    def grad(self, layer, x, dy):
        from conformance.adapters._steps import from_torch, to_torch

        xt = to_torch(x).requires_grad_(True)
        wt = layer.weight.detach().clone().requires_grad_(True)
        y = self._apply(layer, xt, wt)
        dx, dw = self.torch.autograd.grad(y, (xt, wt), to_torch(dy).to(y.dtype), allow_unused=True)
        return (from_torch(dx) if dx is not None else np.zeros_like(x),
                from_torch(dw) if dw is not None else np.zeros_like(np.asarray(layer.weight.detach().cpu())))


class JaxFunction(FunctionAdapter):
    kind = "jax"
    device_family = "jax"
    env = {"JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}  # float64 as a user running it must set; as the JAX adapters

    def load(self):
        import jax

        self.jax = jax
        return {"jax": jax.__version__}

    def build(self, spec):
        import jax.numpy as jnp

        return _Layer(jnp.asarray(spec.scale), self._eps(spec), spec.axes, self._takes_axis())

    def call(self, layer, x):
        import jax.numpy as jnp

        return np.asarray(self._apply(layer, jnp.asarray(x), layer.weight))

    def grad(self, layer, x, dy):
        import jax.numpy as jnp

        y, back = self.jax.vjp(lambda xx, ww: self._apply(layer, xx, ww), jnp.asarray(x), layer.weight)
        dx, dw = back(jnp.asarray(dy).astype(y.dtype))
        return np.asarray(dx), np.asarray(dw)


BY_KIND = {"torch": TorchFunction, "jax": JaxFunction, "numpy": NumpyFunction}


def wrap(fn, kind: str, ref: str) -> type[Adapter]:
    """An adapter class for the function `fn` of framework `kind`; named after `ref` by the loader."""
    base = BY_KIND[kind]
    return type(f"{base.__name__}[{getattr(fn, '__qualname__', 'fn')}]", (base,),
                {"fn": staticmethod(fn), "__module__": __name__, "__doc__": getattr(fn, "__doc__", None)})
