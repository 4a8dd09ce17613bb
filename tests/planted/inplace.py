"""Planted kernels that write into the arrays the suite hands them (the `inputs_untouched` check).

Each is numpy-reference with one in-place bug, as a fused kernel that reuses its input buffer
would have it; the results they return are right, so only inputs_untouched can catch them.
"""
from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters.numpy_reference import NumpyReference


class NormalizesXInPlace(NumpyReference):
    """The forward pass writes y into x's buffer (an in-place kernel) and returns that buffer's copy."""

    name = "planted-x-in-place"

    def call(self, layer, x):
        y = super().call(layer, x)
        out = y.copy()
        np.copyto(x, y.astype(x.dtype))
        return out


class ScalesDyInPlace(NumpyReference):
    """The backward pass multiplies dy by the scale in place before using it."""

    name = "planted-dy-in-place"

    def grad(self, layer, x, dy):
        dx, dscale = super().grad(layer, x, dy.copy())
        dy *= layer.scale.astype(dy.dtype)
        return dx, dscale


class NoGradients(NumpyReference):
    """Correct, but forward only: withdraws the gradients (and jvp, hvp) it would inherit."""

    name = "planted-forward-only"
    grad, jvp, hvp = Adapter.grad, Adapter.jvp, Adapter.hvp  # the contract's "not provided"
