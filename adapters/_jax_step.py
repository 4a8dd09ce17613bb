"""`call` and `grad` over one jitted training step, shared by the Flax adapters.

The step is `self._step(static, params, x, dy) -> (y, dx, dparams)`: forward and `jax.vjp`
compiled together, as a training step runs them; `call()` returns its primal output.
"""
from __future__ import annotations

import numpy as np


class JittedStep:
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
