"""`call` and `grad` over one jitted training step, shared by the Flax adapters.

The step is `self._step(static, params, x, dy) -> (y, dx, dparams)`: forward and `jax.vjp`
compiled together, as a training step runs them; `call()` returns its primal output.
"""
from __future__ import annotations

import numpy as np


class JittedStep:
    def _compile(self, fn):
        """How the step, jvp and hvp run: `jax.jit` with the layer's static part as the key
        (the op-by-op mode, flax-nnx-eager, returns `fn` itself)."""
        return self.jax.jit(fn, static_argnums=0)
    def _step_args(self, layer) -> tuple:
        """(static, params) of the layer: the compile key and the differentiated state."""
        raise NotImplementedError

    def _dscale(self, layer, leaves: list):
        return np.asarray(leaves[0]) if leaves else None

    def call(self, layer, x):
        y, _, _ = self._step(*self._step_args(layer), x, np.zeros_like(x))
        return np.asarray(y)

    def grad(self, layer, x, dy):
        _, dx, dparams = self._step(*self._step_args(layer), x, dy)
        return np.asarray(dx), self._dscale(layer, self.jax.tree.leaves(dparams))

    # -- the property checks' methods (conformance/properties.py): jitted like the step --
    def _apply(self, static, params, x):
        """The layer's forward as a pure function of its parameters."""
        raise NotImplementedError

    def _derivatives(self):
        if not hasattr(self, "_jvp_step"):
            jax, apply = self.jax, self._apply

            def jvp(static, params, x, v):
                return jax.jvp(lambda xx: apply(static, params, xx), (x,), (v,))

            def hvp(static, params, x, dy, v):
                def inner(xx):  # <dx, v>; its gradient is exact whatever the sum's own rounding
                    y, pullback = jax.vjp(lambda z: apply(static, params, z), xx)
                    return (pullback(dy.astype(y.dtype))[0] * v).sum()

                return jax.grad(inner)(x)

            self._jvp_step = self._compile(jvp)
            self._hvp_step = self._compile(hvp)
        return self._jvp_step, self._hvp_step

    def jvp(self, layer, x, v):
        y, t = self._derivatives()[0](*self._step_args(layer), x, v)
        return np.asarray(y), np.asarray(t)

    def hvp(self, layer, x, dy, v):
        return np.asarray(self._derivatives()[1](*self._step_args(layer), x, dy, v))
