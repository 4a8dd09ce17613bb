"""`call`, `grad`, `jvp`, `hvp` and `snippet` of the JAX adapters (flax-nnx, flax-linen, equinox,
flax-nnx-eager), all from the layer's forward as a pure function.

An adapter names its framework code, module-level functions (adapters/_snippets.py): `build_fn`
(the script's names -> the framework's layer), `split_fn` (layer -> (static, params); None: the
layer is that pair already) and `apply_fn` ((static, params, x) -> y); and how the steps run,
`compile_fn` (adapters/_steps.py: jax.jit keyed on the static part unless the adapter says
otherwise).  The training step is forward and `jax.vjp` compiled together (`jax_vjp_step`), as a
training step runs them; `call()` returns its primal output.  The static part (graphdef, module)
holds epsilon, dtypes and axes, so it is the compile key.
"""
from __future__ import annotations

import functools

import numpy as np

from conformance.adapters._snippets import invoke, snippet
from conformance.adapters._steps import jax_hvp, jax_jvp, jax_primal, jax_step, jit_static

# The environment of every JAX-family worker: float64 as a user running it must enable it; the
# CPU unless --device sends the adapter to the accelerator (adapters/_devices.py).
JAX_ENV = {"JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}


class JittedStep:
    env = JAX_ENV
    device_family = "jax"
    worker_group = "jax"
    compile_fn = staticmethod(jit_static)
    split_fn = None  # build_fn and apply_fn: each adapter's, as staticmethods

    def _step_args(self, layer) -> tuple:
        """(static, params) of the layer: the compile key and the differentiated state."""
        return layer if self.split_fn is None else self.split_fn(layer)

    def _dscale(self, layer, leaves: list):
        return np.asarray(leaves[0]) if leaves else None

    def _steps(self) -> dict:
        """The compiled training step, jvp and hvp, made once per adapter."""
        if not hasattr(self, "_compiled_steps"):
            apply, compile = self.apply_fn, self.compile_fn
            self._compiled_steps = {"step": jax_step(apply, compile),
                                    "jvp": compile(functools.partial(jax_jvp, apply)),
                                    "hvp": compile(functools.partial(jax_hvp, apply))}
        return self._compiled_steps

    def call(self, layer, x):
        return jax_primal(self._steps()["step"], self._step_args(layer), x)

    def grad(self, layer, x, dy):
        _, dx, dparams = self._steps()["step"](*self._step_args(layer), x, dy)
        return np.asarray(dx), self._dscale(layer, self.jax.tree.leaves(dparams))

    # -- the property checks' methods: compiled like the step --
    def jvp(self, layer, x, v):
        y, t = self._steps()["jvp"](*self._step_args(layer), x, v)
        return np.asarray(y), np.asarray(t)

    def hvp(self, layer, x, dy, v):
        return np.asarray(self._steps()["hvp"](*self._step_args(layer), x, dy, v))

    def snippet(self, spec) -> dict:
        """Built by build_fn, called through the same training step, compiled the same way."""
        split = "layer" if self.split_fn is None else f"{self.split_fn.__name__}(layer)"
        entries = [f for f in (self.build_fn, self.split_fn, self.apply_fn, self.compile_fn) if f is not None]
        return snippet(*entries, jax_step, jax_primal, env=self.env, build=invoke("layer", self.build_fn),
                       call=f"out = jax_primal(jax_step({self.apply_fn.__name__}, {self.compile_fn.__name__}), "
                            f"{split}, x)")
