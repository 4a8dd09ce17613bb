"""Adapters that each break one property of conformance/checks/properties.py on purpose.

`Derivatives` is the numpy reference (with its layout, jvp and hvp methods); every other adapter
here changes one thing of it, so each must fail its own property check and nothing else.
"""
from __future__ import annotations

import numpy as np

from conformance.adapters.numpy_reference import NumpyReference, _compute_dtype
from conformance.numerics.layouts import numpy_layout


class Derivatives(NumpyReference):
    """The numpy reference, which has every property method."""

    name = "planted-derivatives"


class BatchVariant(Derivatives):
    """Sums the squares in another order when the batch holds more than 4 rows, as a kernel that
    picks its reduction strategy by batch size does."""

    name = "planted-batch-variant"

    def _rrms(self, layer, xc):
        n = int(np.prod([xc.shape[a] for a in layer.axes]))
        if xc.size <= 4 * n:
            return super()._rrms(layer, xc)
        k = len(layer.axes)
        squares = np.moveaxis(xc * xc, layer.axes, range(xc.ndim - k, xc.ndim))
        flat = squares.reshape(squares.shape[:xc.ndim - k] + (-1,))
        total = sum(part.sum(axis=-1) for part in np.array_split(flat, 3, axis=-1))  # three partial sums
        keep = [1 if a in layer.axes else xc.shape[a] for a in range(xc.ndim)]
        return 1.0 / np.sqrt(total.reshape(keep) / xc.dtype.type(n) + layer.epsilon)


class EveryOtherCall(Derivatives):
    """Flips the last bit of the first element on every second call of a layer."""

    name = "planted-every-other-call"

    def call(self, layer, x):
        y = super().call(layer, x)
        layer.calls = getattr(layer, "calls", 0) + 1
        if layer.calls % 2 == 0 and y.size:
            bits = y.reshape(-1).view(f"u{y.dtype.itemsize}")
            bits[0] ^= 1
        return y


class SignRounding(Derivatives):
    """Rounds negative results one step down (in the compute dtype), positive ones to nearest."""

    name = "planted-sign-rounding"

    def call(self, layer, x):
        ct = _compute_dtype(x)
        xc = np.asarray(x, order="C").astype(ct)
        with np.errstate(all="ignore"):
            y = xc * self._rrms(layer, xc).astype(ct) * layer.scale.astype(ct)
            y = np.where(y < 0, np.nextafter(y, ct.type(-np.inf)), y)
        return y.astype(x.dtype)


class IgnoresStrides(Derivatives):
    """Reads the buffer behind a view as if it were contiguous."""

    name = "planted-ignores-strides"

    def call_layout(self, layer, x, name):
        view = numpy_layout(x, name)
        buffer = view.base if view.base is not None else view
        return self.call(layer, np.ascontiguousarray(buffer).reshape(-1)[:view.size].reshape(view.shape))


class WrongJvp(Derivatives):
    """Forgets the projection term of the directional derivative: t = r * scale * v."""

    name = "planted-wrong-jvp"

    def jvp(self, layer, x, v):
        xc = x.astype(np.float64)
        r = 1.0 / np.sqrt(np.mean(xc * xc, axis=layer.axes, keepdims=True) + layer.epsilon)
        return self.call(layer, x), (r * layer.scale * v.astype(np.float64)).astype(x.dtype)


class FirstOrderOnly(Derivatives):
    """A backward that cannot itself be differentiated, as a fused kernel without a double-backward."""

    name = "planted-first-order-only"

    def hvp(self, layer, x, dy, v):
        raise RuntimeError("the backward kernel is not differentiable (no double backward registered)")


class MagnitudePath(Derivatives):
    """Rows holding a value above 16 in magnitude take another code path (three partial sums of
    the squares), as a kernel that picks a strategy by the data's range does: right values, but
    f(8x) is not f(x) scaled exactly."""

    name = "planted-magnitude-path"

    def _rrms(self, layer, xc):
        k = len(layer.axes)
        n = int(np.prod([xc.shape[a] for a in layer.axes]))
        squares = np.moveaxis(xc * xc, layer.axes, range(xc.ndim - k, xc.ndim))
        flat = squares.reshape(squares.shape[:xc.ndim - k] + (n,))
        parts = sum(part.sum(axis=-1) for part in np.array_split(flat, 3, axis=-1))
        big = np.max(np.abs(np.moveaxis(xc, layer.axes, range(xc.ndim - k, xc.ndim))).reshape(flat.shape), axis=-1,
                     initial=0) > 16
        keep = [1 if a in layer.axes else xc.shape[a] for a in range(xc.ndim)]
        total = np.where(big, parts, flat.sum(axis=-1)).reshape(keep)
        return 1.0 / np.sqrt(total / xc.dtype.type(n) + layer.epsilon)
