"""RMS normalization in numpy, computed in the input's own dtype.

The reference a kernel author would write first: square, mean, add epsilon,
rsqrt, multiply.  Half-precision inputs are upcast to float32 for the whole
computation and the result is rounded back once, as the frameworks that do
this well do; float32 and float64 are computed natively.  Gradients use the
analytic formula in the same precision; dscale's sum over the rows is pairwise (as a blocked
kernel's partial sums are).  Default epsilon: 1e-6.

All three fused forms, as kernels of their own in the same compute dtype (so a planted bug of
`call` or `grad` stays out of them): the residual add with the sum kept in float32 for half
inputs (`fused_add_sum = "float32"`, FlashInfer's semantics), written back rounded once; the
offset layer with offset + w added in float32 at build (float64 for float64 weights); the fp8
output clamped to ±448 and cast to float8_e4m3fn from the float32 intermediate.
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


# -- the fused forms: kernels of their own, in the compute dtype, as a fused kernel computes them --
FP8_MAX = 448.0  # float8_e4m3fn's largest finite value: the kernels clamp to it before the cast


def normalized(layer, xc):
    """x * rsqrt(mean(x**2) + eps) * scale, every step in xc's dtype (the fused kernels' body)."""
    ct = xc.dtype
    with np.errstate(all="ignore"):
        r = (1.0 / np.sqrt(np.mean(xc * xc, axis=layer.axes, keepdims=True) + layer.epsilon)).astype(ct)
        return xc * r * layer.scale.astype(ct), r


def fused_add(layer, x, residual):
    """(y, new_residual): the sum in the compute dtype (float32 for half inputs, as FlashInfer
    adds), normalized there; only the written-back residual is rounded to the input's dtype."""
    ct = _compute_dtype(x)
    summed = np.asarray(x, order="C").astype(ct) + np.asarray(residual, order="C").astype(ct)
    y, _ = normalized(layer, summed)
    return y.astype(x.dtype), summed.astype(x.dtype)


def fused_add_grad(layer, x, residual, dy, dresidual):
    """(d(x), d(residual), dscale): the sum's gradient is rmsnorm's dx plus the written-back
    residual's gradient, and reaches x and residual alike."""
    ct = _compute_dtype(x)
    summed = x.astype(ct) + residual.astype(ct)
    dyc, s = dy.astype(ct), layer.scale.astype(ct)
    with np.errstate(all="ignore"):
        _, r = normalized(layer, summed)
        proj = np.mean(s * dyc * summed, axis=layer.axes, keepdims=True)
        d = r * s * dyc - summed * r**3 * proj + dresidual.astype(ct)
        other = tuple(a for a in range(x.ndim) if a not in layer.axes)
        dscale = np.sum(dyc * summed * r, axis=other)
    return d.astype(x.dtype), d.astype(residual.dtype), dscale.astype(layer.scale.dtype)


def quantized(layer, x, scale):
    """fp8(clamp(y / scale, -448, 448)): y in the compute dtype, never rounded to the input's."""
    ct = _compute_dtype(x)
    y, _ = normalized(layer, np.asarray(x, order="C").astype(ct))
    with np.errstate(all="ignore"):
        v = np.clip(y / ct.type(scale), -FP8_MAX, FP8_MAX)
    return v.astype(ml_dtypes.float8_e4m3fn)


def offset_scale(w: np.ndarray, offset: float) -> np.ndarray:
    """offset + w, added in float32 (in float64 for float64 weights), once, at build."""
    wide = np.dtype(np.float64) if np.dtype(w.dtype) == np.float64 else np.dtype(np.float32)
    return wide.type(offset) + w.astype(wide)


def _pairwise_sum(v: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The sum over `axes` in pairwise order: numpy sums pairwise only along a contiguous last axis
    (over the rows of a C-ordered array it adds one row after another, an error growing with the
    row count, as a one-lane accumulator's does), so the summed axes are moved last first."""
    if not axes:
        return v
    moved = np.ascontiguousarray(np.moveaxis(v, axes, range(v.ndim - len(axes), v.ndim)))
    return moved.reshape(moved.shape[:v.ndim - len(axes)] + (-1,)).sum(axis=-1)


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
            dscale = _pairwise_sum(dyc * xc * r, other)
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

    # -- the fused forms --
    fused_add_sum = "float32"  # the sum normalized in float32 for half inputs (fused_add above)

    def call_fused_add(self, layer, x, residual):
        return fused_add(layer, x, residual)

    def grad_fused_add(self, layer, x, residual, dy, dresidual):
        return fused_add_grad(layer, x, residual, dy, dresidual)

    def build_offset(self, spec):
        """A layer whose scale is offset + w (offset_scale); call and grad as for any layer."""
        eps = DEFAULT_EPSILON if spec.epsilon is None else spec.epsilon
        return NumpyLayer(spec.axes, eps, offset_scale(spec.scale, spec.offset), len(spec.input_shape))

    def call_quantized(self, layer, x, scale):
        return quantized(layer, x, scale)

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
