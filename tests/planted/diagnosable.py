"""One planted bug per entry of the diagnosis catalogue (conformance/diagnosis/hypotheses.py).

Each adapter is the numpy reference with one thing changed, the way real kernels
get it wrong, and declares the diagnosis it must get (`expect`, tests/planted/expect.py);
tests/engine/test_diagnosis.py checks that each gets exactly that diagnosis.
"""
from __future__ import annotations

import numpy as np

from conformance.adapters.numpy_reference import NumpyReference, _compute_dtype
from tests.planted.expect import Expect

NORMAL = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"
TINY = "f32/4x32/ax-1/eps1e-05/tiny/rand/s0"  # mean(x²) ~ 1e-6: epsilon's placement shows


def _placed(layer, scale):
    return np.reshape(scale, layer.shape)


class _Formula(NumpyReference):
    """The reference with hooks: the statistic, the scale, the gradient terms."""

    def _stats_axes(self, layer):
        return layer.axes

    def _ms(self, layer, xc):
        return np.mean(xc * xc, axis=self._stats_axes(layer), keepdims=True)

    def _rrms(self, layer, xc):
        return 1.0 / np.sqrt(self._ms(layer, xc) + layer.epsilon)

    def _scale(self, layer, ct):
        return layer.scale.astype(ct)

    def call(self, layer, x):
        ct = _compute_dtype(x)
        xc = x.astype(ct)
        with np.errstate(all="ignore"):
            y = xc * self._rrms(layer, xc).astype(ct) * self._scale(layer, ct)
        return y.astype(x.dtype)


class EpsIgnored(_Formula):
    name = "planted-eps-ignored"
    expect = Expect(TINY, ("forward",), "eps-ignored")

    def _rrms(self, layer, xc):
        return 1.0 / np.sqrt(self._ms(layer, xc))


class EpsTimesTen(_Formula):
    name = "planted-eps-times-ten"
    expect = Expect(TINY, ("forward",), "eps-different")

    def _rrms(self, layer, xc):
        return 1.0 / np.sqrt(self._ms(layer, xc) + 10 * layer.epsilon)


class SumNotMean(_Formula):
    name = "planted-sum-not-mean"
    expect = Expect(NORMAL, ("forward",), "divisor")

    def _ms(self, layer, xc):
        return np.sum(xc * xc, axis=layer.axes, keepdims=True)


class ScaleIgnored(_Formula):
    name = "planted-scale-ignored"
    expect = Expect(NORMAL, ("forward",), "scale-ignored")

    def _scale(self, layer, ct):
        return np.ones((), ct)


class ScaleOnePlus(_Formula):
    name = "planted-scale-one-plus"
    expect = Expect(NORMAL, ("forward",), "scale-one-plus")

    def _scale(self, layer, ct):
        return 1 + layer.scale.astype(ct)


class ScaleOnLastAxis(_Formula):
    """Plain broadcasting of a (n,) scale: it meets the last axis, whichever axis is normalized."""

    name = "planted-scale-last-axis"
    expect = Expect("f32/2x8x8/ax1/eps1e-06/normal/rand/s0", ("forward",), "scale-wrong-axis")

    def _scale(self, layer, ct):
        return layer.scale.reshape(layer.scale_shape).astype(ct)


class ScaleTransposed(_Formula):
    name = "planted-scale-transposed"
    expect = Expect("f32/2x8x8/ax-2,-1/eps1e-06/normal/rand/s0", ("forward",), "scale-transposed")

    def _scale(self, layer, ct):
        return _placed(layer, layer.scale.reshape(layer.scale_shape).T).astype(ct)


class LastAxisOnly(_Formula):
    name = "planted-last-axis-only"
    expect = Expect("f32/2x4x8/ax-2,-1/eps1e-06/normal/rand/s0", ("forward",), "other-axes")

    def _stats_axes(self, layer):
        return (len(layer.shape) - 1,)


class LayerNorm(_Formula):
    name = "planted-layernorm"
    expect = Expect(NORMAL, ("forward",), "mean-subtracted")

    def call(self, layer, x):
        xc = x.astype(np.float64)
        xc = xc - np.mean(xc, axis=layer.axes, keepdims=True)
        y = xc / np.sqrt(np.mean(xc * xc, axis=layer.axes, keepdims=True) + layer.epsilon) * layer.scale
        return y.astype(x.dtype)


class Float32Inside(_Formula):
    name = "planted-float32-inside"
    expect = Expect("f64/4x32/ax-1/eps1e-06/normal/rand/s0", ("forward",), "lower-precision")

    def call(self, layer, x):
        return super().call(layer, x.astype(np.float32)).astype(x.dtype)


class FlushesSubnormals(_Formula):
    name = "planted-flushes-subnormals"
    expect = Expect("f32/4x32/ax-1/eps1e-06/subnormal/rand/s0", ("forward",), "subnormals-flushed")

    def call(self, layer, x):
        tiny = np.finfo(_compute_dtype(x)).tiny
        return super().call(layer, np.where(np.abs(x) < tiny, 0, x).astype(x.dtype))


class FlushesToZero(FlushesSubnormals):
    """A CPU's flush-to-zero mode as XLA sets it: subnormal inputs read as 0 and every subnormal
    result flushed too, so dscale's dy·x of a tiny normal x is 0 before 1/rms scales it up (flax
    on bfloat16 subnormals: a prediction that flushed the inputs only left those columns nonzero)."""

    name = "planted-flushes-to-zero"
    expect = Expect("bf16/2x4096/ax-1/eps1e-05/subnormal/zeros/s0", ("grad_scale",), "subnormals-flushed")

    def grad(self, layer, x, dy):
        ct = _compute_dtype(x)
        tiny = np.finfo(ct).tiny

        def flushed(v):
            return np.where(np.abs(v) < tiny, ct.type(0), v).astype(ct)

        xc, dyc = flushed(x.astype(ct)), dy.astype(ct)
        dx, _ = super().grad(layer, xc.astype(x.dtype), dy)
        with np.errstate(all="ignore"):
            r = flushed(self._rrms(layer, xc).astype(ct))
            other = tuple(a for a in range(x.ndim) if a not in layer.axes)
            dscale = np.sum(flushed(flushed(dyc * xc) * r), axis=other)
        return dx, dscale.astype(layer.scale.dtype)


class ZeroForNaN(_Formula):
    """Rows holding NaN/Inf come out as finite numbers (nan_to_num on the output)."""

    name = "planted-zero-for-nan"
    expect = Expect("f32/4x32/ax-1/eps1e-06/nonfinite/rand/s0", ("forward",), "special-values")

    def call(self, layer, x):
        return np.nan_to_num(super().call(layer, x), nan=0.0, posinf=0.0, neginf=0.0)


class Float32Out(_Formula):
    """Right values, float32 out for a float16 input (type promotion in model code)."""

    name = "planted-float32-out"
    expect = Expect("f16/4x32/ax-1/eps1e-06/normal/rand/s0", ("out_dtype",), "out-dtype")

    def call(self, layer, x):
        return super().call(layer, x).astype(np.float32)


class _Backward(NumpyReference):
    """The reference backward with hooks on its terms."""

    projection_sign = 1.0
    scale_in_dx = True
    dscale_rows_mean = False
    dscale_rms = True

    def grad(self, layer, x, dy):
        ct = _compute_dtype(x)
        xc, dyc, s = x.astype(ct), dy.astype(ct), layer.scale.astype(ct)
        with np.errstate(all="ignore"):
            r = self._rrms(layer, xc).astype(ct)
            sdy = s * dyc if self.scale_in_dx else dyc
            proj = np.mean(sdy * xc, axis=layer.axes, keepdims=True)
            dx = r * sdy - self.projection_sign * xc * r**3 * proj
            other = tuple(a for a in range(x.ndim) if a not in layer.axes)
            dscale = np.sum(dyc * xc * (r if self.dscale_rms else 1), axis=other)
            if self.dscale_rows_mean:
                dscale = dscale / ct.type(x.size // max(1, dscale.size))
        return dx.astype(x.dtype), dscale.astype(layer.scale.dtype)


class NoProjection(_Backward):
    name = "planted-no-projection"
    expect = Expect(NORMAL, ("grad_x",), "grad-no-projection")
    projection_sign = 0.0


class ProjectionSignFlipped(_Backward):
    name = "planted-projection-sign"
    expect = Expect(NORMAL, ("grad_x",), "grad-projection-sign")
    projection_sign = -1.0


class DxIgnoresScale(_Backward):
    name = "planted-dx-ignores-scale"
    expect = Expect(NORMAL, ("grad_x",), "grad-scale-ignored")
    scale_in_dx = False


class DscaleMean(_Backward):
    name = "planted-dscale-mean"
    expect = Expect(NORMAL, ("grad_scale",), "dscale-mean")
    dscale_rows_mean = True


class DscaleNoRms(_Backward):
    name = "planted-dscale-no-rms"
    expect = Expect(NORMAL, ("grad_scale",), "dscale-no-rms")
    dscale_rms = False


class OneUlpNoise(NumpyReference):
    """A correct kernel whose results are off by up to one ULP, at random: nothing to find."""

    name = "planted-one-ulp-noise"

    @staticmethod
    def _nudge(a):
        """±1 in the last bit of finite non-zero values (any float format, bfloat16 included)."""
        a = np.ascontiguousarray(a)
        bits = a.view(np.dtype(f"u{a.dtype.itemsize}")).copy()
        rng = np.random.default_rng(a.size)
        step = rng.integers(-1, 2, a.shape).astype(bits.dtype)  # -1, 0 or +1 (wraps as unsigned)
        with np.errstate(invalid="ignore"):
            movable = np.isfinite(a.astype(np.float64)) & (a != 0)
        bits = np.where(movable, bits + step, bits).astype(bits.dtype)
        return bits.view(a.dtype).reshape(a.shape)

    def call(self, layer, x):
        return self._nudge(super().call(layer, x))

    def grad(self, layer, x, dy):
        dx, dscale = super().grad(layer, x, dy)
        return self._nudge(dx), self._nudge(dscale)


class DeclinesEverything(NumpyReference):
    name = "planted-declines-everything"

    def supports(self, spec):
        return "this adapter declines every case"


class Float32Epsilon(NumpyReference):
    """Applies float32(epsilon), and says so through effective(): a parameters finding, right values."""

    name = "planted-float32-epsilon"
    expect = Expect("f64/4x32/ax-1/eps0.1/normal/rand/s0", ("parameters",), "effective-epsilon")

    def build(self, spec):
        layer = super().build(spec)
        layer.epsilon = float(np.float32(layer.epsilon))
        return layer

    def config(self, layer):
        return {**super().config(layer), "epsilon": None}  # the requested one is the case's

    def effective(self, layer):
        return {"epsilon": layer.epsilon}


# -- diagnoses that hold across cases, and the case's own range and precision --------------------
# The padded divisor on rows of 1, 8, 16 and 60: one law (n rounded up to 32) for every n.
PADDED_CASES = ("f32/2x8x8/ax1/eps1e-06/normal/rand/s0", "f32/4x1/ax-1/eps1e-06/normal/rand/s0",
                "f32/16/ax-1/eps1e-06/normal/rand/s0", "f32/3x4x5/ax0,1,2/eps1e-06/normal/rand/s0")
GRADIENTS_TOO = ("forward", "grad_x", "grad_scale")


class PaddedDivisor(NumpyReference):
    """The mean of x² divides by the row length rounded up to 32, as a Triton kernel that sums a
    zero-padded block and divides by BLOCK_SIZE; its backward is that formula's exact derivative."""

    name = "planted-padded-divisor"
    expect = Expect(PADDED_CASES[0], GRADIENTS_TOO, "divisor", also=PADDED_CASES[1:])
    block = 32

    def _divisor(self, layer, xc):
        n = int(np.prod([xc.shape[a] for a in layer.axes]))
        return xc.dtype.type(-(-n // self.block) * self.block)

    def _rrms(self, layer, xc):
        ms = np.sum(xc * xc, axis=layer.axes, keepdims=True) / self._divisor(layer, xc)
        return 1.0 / np.sqrt(ms + layer.epsilon)

    def grad(self, layer, x, dy):
        ct = _compute_dtype(x)
        xc, dyc, s = x.astype(ct), dy.astype(ct), layer.scale.astype(ct)
        with np.errstate(all="ignore"):
            r = self._rrms(layer, xc).astype(ct)
            proj = np.sum(s * dyc * xc, axis=layer.axes, keepdims=True) / self._divisor(layer, xc)
            dx = r * s * dyc - xc * r**3 * proj
            other = tuple(a for a in range(x.ndim) if a not in layer.axes)
            dscale = np.sum(dyc * xc * r, axis=other)
        return dx.astype(x.dtype), dscale.astype(layer.scale.dtype)


class HalfInHalf(NumpyReference):
    """float16 and bfloat16 computed in their own dtype, forward and backward (no upcast): x²
    overflows, the derivative of rsqrt overflows, sums of squares round; the numpy reference's
    formula otherwise.  Every diagnosis of it is range or precision, never semantics."""

    name = "planted-half-in-half"
    expect = Expect("f16/4x32/ax-1/eps1e-06/huge/rand/s0", GRADIENTS_TOO, "lower-precision")

    def _half(self, x):
        return np.dtype(x.dtype) if np.dtype(x.dtype).itemsize == 2 else _compute_dtype(x)

    def _rrms(self, layer, xc):
        ct = xc.dtype
        ms = np.sum(xc * xc, axis=layer.axes, keepdims=True, dtype=ct) / ct.type(np.prod([xc.shape[a] for a in layer.axes]))
        return ct.type(1) / np.sqrt(ms + ct.type(layer.epsilon))

    def call(self, layer, x):
        ct = self._half(x)
        xc = np.asarray(x, order="C").astype(ct)
        with np.errstate(all="ignore"):
            y = xc * self._rrms(layer, xc) * layer.scale.astype(ct)
        return y.astype(x.dtype)

    def grad(self, layer, x, dy):
        ct = self._half(x)
        n = ct.type(np.prod([x.shape[a] for a in layer.axes]))
        xc, dyc, s = x.astype(ct), dy.astype(ct), layer.scale.astype(ct)
        with np.errstate(all="ignore"):
            r = self._rrms(layer, xc)
            proj = np.sum(s * dyc * xc, axis=layer.axes, keepdims=True, dtype=ct) / n
            dx = r * s * dyc - xc * r**3 * proj
            other = tuple(a for a in range(x.ndim) if a not in layer.axes)
            dscale = np.sum(dyc * xc * r, axis=other, dtype=ct)
        return dx.astype(x.dtype), dscale.astype(layer.scale.dtype)


LONG_SPIKE = "f32/2x4096/ax-1/eps1e-06/spike/rand/s0"  # one 1e2 among 1e-2s: a running sum drops them


class OneLaneSum(_Formula):
    """x² summed in one sequential float32 accumulator (np.cumsum), the rest the reference's."""

    name = "planted-one-lane-sum"
    expect = Expect(LONG_SPIKE, ("forward",), "sequential-sum", also=("f32/2x4096/ax-1/eps1e-06/mixed/rand/s0",))

    def _ms(self, layer, xc):
        k = len(layer.axes)
        squares = np.moveaxis(xc * xc, layer.axes, range(xc.ndim - k, xc.ndim))
        flat = squares.reshape(squares.shape[:xc.ndim - k] + (-1,))
        total = np.cumsum(flat, axis=-1, dtype=xc.dtype)[..., -1]
        keep = [1 if a in layer.axes else xc.shape[a] for a in range(xc.ndim)]
        return total.reshape(keep) / xc.dtype.type(flat.shape[-1])


class Float32Cast(NumpyReference):
    """float64 inputs cast to float32 to be computed, forward and backward: values beyond
    float32's range become Inf at the cast (then Inf·0 = NaN), where float64 has no overflow."""

    name = "planted-float32-cast"
    expect = Expect("f64/4x32/ax-1/eps1e-06/huge/rand/s0", GRADIENTS_TOO, "cast-overflow")

    def call(self, layer, x):
        with np.errstate(all="ignore"):
            return super().call(layer, x.astype(np.float32)).astype(x.dtype)

    def grad(self, layer, x, dy):
        with np.errstate(all="ignore"):
            dx, dscale = super().grad(layer, x.astype(np.float32), dy.astype(np.float32))
        return dx.astype(x.dtype), dscale.astype(layer.scale.dtype)
