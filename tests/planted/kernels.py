"""Planted kernels for the kernels suite's thresholds (tests/engine/test_kernels.py)."""
from __future__ import annotations

import numpy as np

from conformance.adapters.numpy_reference import NumpyReference, _compute_dtype

BLOCK_ROWS = 256  # where the planted launch changes its reduction, as vLLM's kernel once did at 256 tokens


class BlockSizeChanges(NumpyReference):
    """From 256 rows on, the sum of squares runs in the other direction along each row: other bits
    for the same row, depending on how many rows share the launch (a batch-variant kernel)."""

    name = "planted-block-size-changes"

    def _rrms(self, layer, xc):
        sq = xc * xc
        if xc.ndim == 2 and xc.shape[0] >= BLOCK_ROWS:
            total = np.zeros(xc.shape[:1] + (1,), xc.dtype)
            for k in range(xc.shape[1] - 1, -1, -1):  # one lane, backwards
                total += sq[:, k:k + 1]
            return 1.0 / np.sqrt(total / xc.dtype.type(xc.shape[1]) + layer.epsilon)
        return super()._rrms(layer, xc)


class RefusesEpsilonZero(NumpyReference):
    """A correct kernel that asserts epsilon > 0, as many fused kernels do."""

    name = "planted-refuses-epsilon-zero"

    def supports(self, spec):
        return "epsilon must be positive" if spec.epsilon == 0.0 else super().supports(spec)


class SequentialSum(NumpyReference):
    """x² summed in one float32 accumulator, element after element (MLX's and tinygrad's CPU
    kernels do): fine on short rows, visible on the kernels suite's long spiky ones."""

    name = "planted-sequential-sum"

    def _rrms(self, layer, xc):
        ct = _compute_dtype(xc)
        rows = np.moveaxis(xc, layer.axes, range(xc.ndim - len(layer.axes), xc.ndim)).reshape(
            -1, int(np.prod([xc.shape[a] for a in layer.axes])))
        total = np.zeros(rows.shape[0], ct)
        for k in range(rows.shape[1]):
            total += rows[:, k] * rows[:, k]
        kept = [xc.shape[a] if a not in layer.axes else 1 for a in range(xc.ndim)]
        return 1.0 / np.sqrt(total.reshape(kept) / ct.type(rows.shape[1]) + ct.type(layer.epsilon))


class Float32SequentialSum(SequentialSum):
    """A float64 input cast to float32 and summed in one float32 accumulator (MLX's CPU path)."""

    name = "planted-float32-sequential-sum"

    def call(self, layer, x):
        return super().call(layer, x.astype(np.float32)).astype(x.dtype)
