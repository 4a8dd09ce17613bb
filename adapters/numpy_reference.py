"""RMS normalization in numpy, computed in the input's own dtype.

The reference a kernel author would write first: square, mean, add epsilon,
rsqrt, multiply.  Half-precision inputs are upcast to float32 for the whole
computation and the result is rounded back once, as the frameworks that do
this well do; float32 and float64 are computed natively.  Gradients use the
analytic formula in the same precision.  Default epsilon: 1e-6.
"""
from __future__ import annotations

import json
import os

import ml_dtypes
import numpy as np

from conformance.adapter import Adapter
from conformance.numerics.layouts import numpy_layout

DEFAULT_EPSILON = 1e-6


class NumpyLayer:
    def __init__(self, axes, epsilon, scale, rank):
        self.axes = tuple(axes)
        self.epsilon = epsilon
        self.scale_shape = tuple(np.shape(scale))
        self.shape = [1] * rank
        for a, size in zip(self.axes, self.scale_shape):
            self.shape[a] = size
        self.scale = np.reshape(scale, self.shape)

    def get_config(self):
        return {"axis": list(self.axes), "epsilon": self.epsilon, "rank": len(self.shape)}


def _compute_dtype(x: np.ndarray) -> np.dtype:
    """float32 for half precision (and integer or boolean inputs), else the input's own float dtype."""
    dtype = np.dtype(x.dtype)  # bfloat16 is kind "V" in numpy: itemsize decides
    return dtype if dtype.kind not in "biu" and dtype.itemsize >= 4 else np.dtype(np.float32)


class NumpyReference(Adapter):
    name = "numpy-reference"
    worker_group = "numpy"
    packages = ("numpy",)
    owners = ("rmsnorm-conformance", "numpy")  # this project's own kernel

    def load(self):
        return {"numpy": np.__version__}

    def defaults(self) -> dict:
        return {"axis": "given", "epsilon": DEFAULT_EPSILON, "scale_init": "given", "parameter_dtype": "the input's dtype"}

    def build(self, spec):
        eps = DEFAULT_EPSILON if spec.epsilon is None else spec.epsilon
        return NumpyLayer(spec.axes, eps, spec.scale, len(spec.input_shape))

    def _rrms(self, layer, xc):
        return 1.0 / np.sqrt(np.mean(xc * xc, axis=layer.axes, keepdims=True) + layer.epsilon)

    def call(self, layer, x):
        ct = _compute_dtype(x)
        # Contiguous first: numpy sums a strided view in another order, and the kernel's bits
        # should not depend on how the caller laid out its input (the `layout` property).
        xc = np.asarray(x, order="C").astype(ct)
        with np.errstate(all="ignore"):
            y = xc * self._rrms(layer, xc).astype(ct) * layer.scale.astype(ct)
        return y if np.dtype(x.dtype).kind in "biu" else y.astype(x.dtype)

    def grad(self, layer, x, dy):
        ct = _compute_dtype(x)
        xc, dyc, s = x.astype(ct), dy.astype(ct), layer.scale.astype(ct)
        with np.errstate(all="ignore"):
            r = self._rrms(layer, xc).astype(ct)
            proj = np.mean(s * dyc * xc, axis=layer.axes, keepdims=True)
            dx = r * s * dyc - xc * r**3 * proj
            other = tuple(a for a in range(x.ndim) if a not in layer.axes)
            dscale = np.sum(dyc * xc * r, axis=other)
        return dx.astype(x.dtype), dscale.astype(layer.scale.dtype)

    def jvp(self, layer, x, v):
        """The directional derivative r*s*(v - xn*mean(xn*v)), xn = x*r, in the compute dtype."""
        ct = _compute_dtype(x)
        xc, vc, s = np.asarray(x, order="C").astype(ct), v.astype(ct), layer.scale.astype(ct)
        with np.errstate(all="ignore"):
            r = self._rrms(layer, xc).astype(ct)
            xn = xc * r
            t = r * s * (vc - xn * np.mean(xn * vc, axis=layer.axes, keepdims=True))
        return self.call(layer, x), t.astype(x.dtype)

    def hvp(self, layer, x, dy, v):
        """The gradient of <dx, v>: r^2 (3 p b xn - a xn - b s dy - p v) with row means
        a = mean(v s dy), b = mean(v xn), p = mean(s dy xn), in the compute dtype."""
        ct = _compute_dtype(x)
        xc, dyc, vc = np.asarray(x, order="C").astype(ct), dy.astype(ct), v.astype(ct)
        with np.errstate(all="ignore"):
            r = self._rrms(layer, xc).astype(ct)
            xn, sdy = xc * r, layer.scale.astype(ct) * dyc

            def mean(t):
                return np.mean(t, axis=layer.axes, keepdims=True)

            a, b, p = mean(vc * sdy), mean(vc * xn), mean(sdy * xn)
            h = r * r * (3 * p * b * xn - a * xn - b * sdy - p * vc)
        return h.astype(x.dtype)

    def call_layout(self, layer, x, layout):
        """The kernel above, given a non-contiguous numpy view."""
        return self.call(layer, numpy_layout(x, layout))

    def config(self, layer):
        return layer.get_config()

    def rebuild(self, layer):
        c = layer.get_config()
        return NumpyLayer(c["axis"], c["epsilon"], layer.scale.reshape(layer.scale_shape).copy(), c["rank"])

    def save_load(self, layer, folder):
        # Raw bytes plus dtype name: np.save cannot round-trip ml_dtypes' bfloat16.
        path = os.path.join(folder, "layer")
        scale = layer.scale.reshape(layer.scale_shape)
        with open(path + ".bin", "wb") as f:
            f.write(scale.tobytes())
        with open(path + ".json", "w") as f:
            json.dump(layer.get_config() | {"dtype": scale.dtype.name, "shape": list(scale.shape)}, f)
        with open(path + ".json") as f:
            c = json.load(f)
        with open(path + ".bin", "rb") as f:
            dtype = np.dtype(ml_dtypes.bfloat16) if c["dtype"] == "bfloat16" else np.dtype(c["dtype"])
            loaded = np.frombuffer(f.read(), dtype).reshape(c["shape"]).copy()
        return NumpyLayer(c["axis"], c["epsilon"], loaded, c["rank"])

    def parameters(self, layer):
        return {"scale": layer.scale.reshape(layer.scale_shape)}
