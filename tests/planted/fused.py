"""Planted bugs of the fused forms: the residual add, the (1 + w) offset, the fp8 output.

Each is the numpy reference with one classic bug of a fused kernel, declaring the case, the
checks that must fail there and the diagnosis they must carry (`expect`, tests/planted/expect.py);
the correct variants (the other valid sum semantics, the in-place form) must pass every check.
tests/engine/test_fused.py checks that each bug fails its own check and no other.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from conformance.adapters.numpy_reference import (NumpyLayer, NumpyReference, _compute_dtype, fused_add, normalized,
                                                  offset_scale, quantized)
from tests.planted.expect import Expect

F32 = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"
F16 = "f16/4x32/ax-1/eps1e-06/normal/rand/s0"
BF16 = "bf16/4x32/ax-1/eps1e-06/normal/rand/s0"
F64 = "f64/4x32/ax-1/eps1e-06/normal/rand/s0"


# -- the fused add ---------------------------------------------------------------------------------
class ResidualNotWritten(NumpyReference):
    """Normalizes the sum but hands the residual back as it came: the residual stream stalls."""

    name = "planted-residual-not-written"
    expect = Expect(F32, ("fused_add_residual",), "residual-not-written", also=(F16,))

    def call_fused_add(self, layer, x, residual):
        y, _ = fused_add(layer, x, residual)
        return y, residual


class ResidualIsOutput(NumpyReference):
    """Writes the normalized output where the sum belongs."""

    name = "planted-residual-is-output"
    expect = Expect(F32, ("fused_add_residual",), "residual-is-output")

    def call_fused_add(self, layer, x, residual):
        y, _ = fused_add(layer, x, residual)
        return y, y.copy()


class ResidualInFloat32(NumpyReference):
    """Writes the float32 sum back for half inputs, not the sum in the residual's own dtype."""

    name = "planted-residual-float32"
    expect = Expect(F16, ("fused_add_residual",), "residual-dtype")

    def call_fused_add(self, layer, x, residual):
        y, _ = fused_add(layer, x, residual)
        return y, x.astype(np.float32) + residual.astype(np.float32)


class NormalizesX(NumpyReference):
    """Writes the sum back but normalizes x, the layer's input, instead of it."""

    name = "planted-normalizes-x"
    expect = Expect(F32, ("fused_add",), "normalizes-x", also=(BF16,))

    def call_fused_add(self, layer, x, residual):
        _, new = fused_add(layer, x, residual)
        y, _ = normalized(layer, x.astype(_compute_dtype(x)))
        return y.astype(x.dtype), new


class SumInFloat16(NumpyReference):
    """Declares the sum in float32 (as FlashInfer) but adds and normalizes it in float16: the sum of
    half inputs is rounded before it is normalized."""

    name = "planted-sum-in-float16"
    fused_add_sum = "float32"
    expect = Expect(F16, ("fused_add",), "sum-lower-precision")

    def call_fused_add(self, layer, x, residual):
        summed = x.astype(np.float16) + residual.astype(np.float16)
        y, _ = normalized(layer, summed.astype(np.float32))
        return y.astype(x.dtype), summed.astype(x.dtype)


class SumInFloat16OnFloat32(SumInFloat16):
    """The same kernel on float32 inputs: the output and the written-back residual lose 13 bits."""

    name = "planted-sum-in-float16-f32"
    expect = Expect(F32, ("fused_add", "fused_add_residual"), "sum-lower-precision")


class KeepsFloat32DeclaresInput(NumpyReference):
    """Declares the sum in the input's dtype (as vLLM) but normalizes the float32 sum."""

    name = "planted-declares-input-sum"
    fused_add_sum = "input"
    expect = Expect(F16, ("fused_add",), "sum-precision-undeclared", also=(BF16,))


class OverwritesX(NumpyReference):
    """Writes y into x's buffer without declaring the in-place form: the caller's x is gone."""

    name = "planted-overwrites-x"
    expect = Expect(F32, ("fused_add_untouched",), "fused-inputs-modified")

    def call_fused_add(self, layer, x, residual):
        y, new = fused_add(layer, x, residual)
        np.copyto(x, y)
        return y.copy(), new


class InPlaceForgetsResidual(NumpyReference):
    """Declares the in-place form (vLLM's) and returns the right sum, but leaves the residual's
    buffer as it was."""

    name = "planted-in-place-forgets-residual"
    fused_add_in_place = True
    expect = Expect(F32, ("fused_add_untouched",), "in-place-residual-not-sum")


class GradDropsResidual(NumpyReference):
    """The backward pass forgets the gradient that flows in through the written-back residual."""

    name = "planted-grad-drops-residual"
    expect = Expect(F32, ("fused_add_grad",), "grad-residual-dropped")

    def grad_fused_add(self, layer, x, residual, dy, dresidual):
        return super().grad_fused_add(layer, x, residual, dy, np.zeros_like(dresidual))


# -- correct variants: nothing to find --------------------------------------------------------------
class RoundedSum(NumpyReference):
    """The other valid semantics (vLLM's, Liger's): the sum rounded to the input dtype, then
    normalized in float32; declared as such."""

    name = "correct-rounded-sum"
    fused_add_sum = "input"

    def call_fused_add(self, layer, x, residual):
        summed = (x.astype(np.float64) + residual.astype(np.float64)).astype(x.dtype)
        y, _ = normalized(layer, summed.astype(_compute_dtype(x)))
        return y.astype(x.dtype), summed


class InPlace(NumpyReference):
    """The in-place form, declared: the sum into the residual's buffer, y into x's (vLLM)."""

    name = "correct-in-place"
    fused_add_in_place = True

    def call_fused_add(self, layer, x, residual):
        y, new = fused_add(layer, x, residual)
        np.copyto(residual, new)
        np.copyto(x, y)
        return x, residual


# -- the offset --------------------------------------------------------------------------------------
class OffsetInWeightDtype(NumpyReference):
    """1 + w added in the weight's dtype (bfloat16 for bfloat16 weights), vllm-project/vllm#3653."""

    name = "planted-offset-in-bf16"
    expect = Expect(BF16, ("offset_forward",), "offset-in-weight-dtype", also=(F16,))

    def build_offset(self, spec):
        w = spec.scale
        layer = super().build_offset(spec)
        layer.scale = np.reshape(w.dtype.type(spec.offset) + w, layer.shape)
        return layer


class OffsetInFloat32(NumpyReference):
    """1 + w added in float32 whatever the weight's dtype: float64 weights lose 29 bits."""

    name = "planted-offset-in-f32"
    expect = Expect(F64, ("offset_forward",), "offset-in-float32")

    def build_offset(self, spec):
        layer = super().build_offset(spec)
        m = offset_scale(spec.scale.astype(np.float32), spec.offset).astype(spec.scale.dtype)
        layer.scale = np.reshape(m, layer.shape)
        return layer


class OffsetIgnored(NumpyReference):
    """Builds the offset layer with w alone as its scale."""

    name = "planted-offset-ignored"
    expect = Expect(F32, ("offset_forward", "offset_grad"), "offset-ignored")

    def build_offset(self, spec):
        eps = 1e-6 if spec.epsilon is None else spec.epsilon
        return NumpyLayer(spec.axes, eps, spec.scale, len(spec.input_shape))


# -- the quantized output ----------------------------------------------------------------------------
FP8 = ml_dtypes.float8_e4m3fn


class NoSaturation(NumpyReference):
    """Casts y / scale to fp8 without clamping it first: beyond ±448 the cast gives NaN."""

    name = "planted-fp8-no-saturation"
    expect = Expect(F32, ("quantized",), "fp8-no-saturation", also=(BF16,))

    def call_quantized(self, layer, x, scale):
        ct = _compute_dtype(x)
        y, _ = normalized(layer, x.astype(ct))
        with np.errstate(all="ignore"):
            return (y / ct.type(scale)).astype(FP8)


class TowardZero(NumpyReference):
    """Truncates to fp8 (rounds toward zero) instead of rounding to the nearest even."""

    name = "planted-fp8-toward-zero"
    expect = Expect(F32, ("quantized",), "fp8-toward-zero")

    def call_quantized(self, layer, x, scale):
        q = quantized(layer, x, scale)
        ct = _compute_dtype(x)
        y, _ = normalized(layer, x.astype(ct))
        v = np.clip(y / ct.type(scale), -448, 448)
        bits = q.view(np.uint8).copy()
        away = np.abs(q.astype(np.float64)) > np.abs(v.astype(np.float64))  # rounded up in magnitude: one step back
        bits = np.where(away & ((bits & 0x7F) > 0), bits - 1, bits).astype(np.uint8)
        return bits.view(FP8)


class ScaleMultiplied(NumpyReference):
    """Multiplies by the scale where it should divide (the inverse scale taken twice)."""

    name = "planted-fp8-scale-multiplied"
    expect = Expect(F32, ("quantized",), "fp8-scale-multiplied")

    def call_quantized(self, layer, x, scale):
        return quantized(layer, x, 1.0 / scale)


class HalfBeforeFp8(NumpyReference):
    """Normalizes, rounds y to the half input's dtype, then quantizes (two kernels, not one): with
    near-zero weights y is subnormal in float16 and its rounding moves fp8 values by a unit."""

    name = "planted-fp8-half-intermediate"
    expect = Expect("f16/255x4096/ax-1/eps1e-06/spike/near_zero/s0", ("quantized",), "fp8-half-intermediate")

    def call_quantized(self, layer, x, scale):
        ct = _compute_dtype(x)
        y, _ = normalized(layer, x.astype(ct))
        y = y.astype(x.dtype).astype(ct)  # the first kernel's output, in the input's dtype
        with np.errstate(all="ignore"):
            return np.clip(y / ct.type(scale), -448, 448).astype(FP8)


class QuantizedAsFloat32(NumpyReference):
    """Returns the fp8 values widened to float32: the caller gets four times the bytes."""

    name = "planted-fp8-as-float32"
    expect = Expect(F32, ("quantized",), "quantized-dtype")

    def call_quantized(self, layer, x, scale):
        return quantized(layer, x, scale).astype(np.float32)
