"""Correct kernels that are not the numpy reference's bits: nothing here may get a diagnosis.

Each computes RMS normalization and its gradients right, in the compute dtype of the numpy
reference, but in another order or another way, as real kernels do; the last bits differ from
the reference's, never the verdict (tests/engine/test_diagnosis.py).  `OverflowSafe` is more
than correct: it rescales each row before squaring, so it passes where the reference's x²
overflows (the reference's `range` finding).
"""
from __future__ import annotations

import numpy as np

from conformance.adapters.numpy_reference import NumpyReference, _compute_dtype


class _Kernel(NumpyReference):
    """call and grad through one hook, `_normalized(layer, xc) -> (xn, r)` with xn = x * r."""

    def _normalized(self, layer, xc):
        r = self._rrms(layer, xc)
        return xc * r, r

    def call(self, layer, x):
        ct = _compute_dtype(x)
        xc = np.asarray(x, order="C").astype(ct)
        with np.errstate(all="ignore"):
            xn, _ = self._normalized(layer, xc)
            y = xn.astype(ct) * layer.scale.astype(ct)
        return y if np.dtype(x.dtype).kind in "biu" else y.astype(x.dtype)  # as the reference does

    def grad(self, layer, x, dy):
        """dx = r (s dy - xn mean(s dy xn)), dscale = sum(dy xn): the reference's formula, regrouped."""
        ct = _compute_dtype(x)
        xc, dyc, s = np.asarray(x, order="C").astype(ct), dy.astype(ct), layer.scale.astype(ct)
        with np.errstate(all="ignore"):
            xn, r = self._normalized(layer, xc)
            xn, r = xn.astype(ct), r.astype(ct)
            sdy = s * dyc
            dx = r * (sdy - xn * np.mean(sdy * xn, axis=layer.axes, keepdims=True))
            other = tuple(a for a in range(x.ndim) if a not in layer.axes)
            dscale = np.sum(dyc * xn, axis=other)
        return dx.astype(x.dtype), dscale.astype(layer.scale.dtype)


class Regrouped(_Kernel):
    """(x * r) * s, and the gradient regrouped around x * r."""

    name = "correct-regrouped"


class DividesBySqrt(_Kernel):
    """x / sqrt(mean(x²) + eps): a division where the reference multiplies by a reciprocal."""

    name = "correct-divides-by-sqrt"

    def _normalized(self, layer, xc):
        root = np.sqrt(np.mean(xc * xc, axis=layer.axes, keepdims=True) + layer.epsilon)
        return xc / root, 1.0 / root


class SequentialSum(_Kernel):
    """The squares summed one element after another (numpy sums pairwise), then divided by n."""

    name = "correct-sequential-sum"

    def _rrms(self, layer, xc):
        k = len(layer.axes)
        squares = np.moveaxis(xc * xc, layer.axes, range(xc.ndim - k, xc.ndim))
        n = int(np.prod([xc.shape[a] for a in layer.axes]))
        flat = squares.reshape(squares.shape[:xc.ndim - k] + (n,))
        total = np.zeros(flat.shape[:-1], xc.dtype)
        for j in range(flat.shape[-1]):
            total = total + flat[..., j]
        keep = [1 if a in layer.axes else xc.shape[a] for a in range(xc.ndim)]
        return 1.0 / np.sqrt(total.reshape(keep) / xc.dtype.type(n) + layer.epsilon)


class OverflowSafe(_Kernel):
    """Each row divided by its largest magnitude m before squaring: r = 1 / (m sqrt(mean((x/m)²) +
    eps/m²)), so x² never overflows and tiny rows never underflow (where eps/m² would overflow,
    eps alone decides and the plain formula is exact)."""

    name = "correct-overflow-safe"

    def _rrms(self, layer, xc):
        m = np.max(np.abs(xc), axis=layer.axes, keepdims=True)
        m = np.where((m > 0) & np.isfinite(m), m, xc.dtype.type(1))
        xs = xc / m
        eps_scaled = xc.dtype.type(layer.epsilon) / m / m
        safe = 1.0 / (m * np.sqrt(np.mean(xs * xs, axis=layer.axes, keepdims=True) + eps_scaled))
        plain = 1.0 / np.sqrt(np.mean(xc * xc, axis=layer.axes, keepdims=True) + layer.epsilon)
        return np.where(np.isfinite(eps_scaled), safe, plain).astype(xc.dtype)

    def _normalized(self, layer, xc):
        m = np.max(np.abs(xc), axis=layer.axes, keepdims=True)
        m = np.where((m > 0) & np.isfinite(m), m, xc.dtype.type(1))
        xs = xc / m
        eps_scaled = xc.dtype.type(layer.epsilon) / m / m
        root = np.sqrt(np.mean(xs * xs, axis=layer.axes, keepdims=True) + eps_scaled)
        r = self._rrms(layer, xc)
        return np.where(np.isfinite(eps_scaled), xs / root, xc * r), r
