"""`call`, `grad`, `jvp` and `hvp` of the Flax adapters, all from the layer's forward as a pure
function (`_apply(static, params, x)`).

The training step is `(static, params, x, dy) -> (y, dx, dparams)`: forward and `jax.vjp`
compiled together, as a training step runs them; `call()` returns its primal output.  The
static part (graphdef, module) holds epsilon, dtypes and axes, so it is the compile key.
"""
from __future__ import annotations

import numpy as np

# The environment of every JAX-family worker: float64 as a user running it must enable it; the
# CPU unless --device sends the adapter to the accelerator (then JAX_PLATFORMS=cuda).
JAX_ENV = {"JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}


def jvp_of(jax, forward, x, v):
    """(y, J v): forward mode through `forward`, a function of x alone."""
    return jax.jvp(forward, (x,), (v,))


def hvp_of(jax, forward, x, dy, v):
    """The gradient in x of <dx(x; dy), v>: `forward`'s vjp, differentiated again."""
    def inner(xx):  # <dx, v>; its gradient is exact whatever the sum's own rounding
        y, pullback = jax.vjp(forward, xx)
        return (pullback(dy.astype(y.dtype))[0] * v).sum()

    return jax.grad(inner)(x)


class JittedStep:
    env = JAX_ENV
    device_family = "jax"
    worker_group = "jax"

    def _compile(self, fn):
        """How the step, jvp and hvp run: `jax.jit` with the layer's static part as the key
        (the op-by-op mode, flax-nnx-eager, returns `fn` itself)."""
        return self.jax.jit(fn, static_argnums=0)

    def _step_args(self, layer) -> tuple:
        """(static, params) of the layer: the compile key and the differentiated state."""
        raise NotImplementedError

    def _dscale(self, layer, leaves: list):
        return np.asarray(leaves[0]) if leaves else None

    def _apply(self, static, params, x):
        """The layer's forward as a pure function of its parameters."""
        raise NotImplementedError

    def _steps(self) -> dict:
        """The compiled training step, jvp and hvp, made once per adapter."""
        if not hasattr(self, "_compiled_steps"):
            jax, apply = self.jax, self._apply

            def step(static, params, x, dy):
                y, pullback = jax.vjp(lambda p, xx: apply(static, p, xx), params, x)
                dparams, dx = pullback(dy.astype(y.dtype))
                return y, dx, dparams

            def jvp(static, params, x, v):
                return jvp_of(jax, lambda xx: apply(static, params, xx), x, v)

            def hvp(static, params, x, dy, v):
                return hvp_of(jax, lambda xx: apply(static, params, xx), x, dy, v)

            self._compiled_steps = {name: self._compile(fn) for name, fn in
                                    (("step", step), ("jvp", jvp), ("hvp", hvp))}
        return self._compiled_steps

    def call(self, layer, x):
        y, _, _ = self._steps()["step"](*self._step_args(layer), x, np.zeros_like(x))
        return np.asarray(y)

    def grad(self, layer, x, dy):
        _, dx, dparams = self._steps()["step"](*self._step_args(layer), x, dy)
        return np.asarray(dx), self._dscale(layer, self.jax.tree.leaves(dparams))

    # -- the property checks' methods (conformance/checks/properties.py): jitted like the step --
    def jvp(self, layer, x, v):
        y, t = self._steps()["jvp"](*self._step_args(layer), x, v)
        return np.asarray(y), np.asarray(t)

    def hvp(self, layer, x, dy, v):
        return np.asarray(self._steps()["hvp"](*self._step_args(layer), x, dy, v))
