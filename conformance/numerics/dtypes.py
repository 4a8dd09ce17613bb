"""Floating-point formats the suite knows, with the constants its numerics derive from.

Every tolerance and ULP computation reads these numbers; nothing else in the
suite hard-codes a mantissa width or an exponent range.
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np


ML_DTYPES = ("bfloat16", "float8_e4m3fn")  # the formats numpy names only through ml_dtypes


@dataclass(frozen=True)
class FloatFormat:
    name: str  # numpy / framework name: "float16", "bfloat16", ...
    short: str  # the prefix in case ids: "f16"
    digits: int  # significand bits including the implicit one (p)
    emin: int  # exponent of the smallest normal number
    emax: int  # exponent of the largest finite number

    @property
    def np_dtype(self) -> np.dtype:
        if self.name in ML_DTYPES:  # numpy has no such type: ml_dtypes' (bfloat16, float8)
            return np.dtype(getattr(ml_dtypes, self.name))
        return np.dtype(self.name)

    @property
    def unit_roundoff(self) -> float:
        """u = 2**-p: the largest relative error of one correctly rounded operation."""
        return 2.0 ** -self.digits

    @property
    def tiny(self) -> float:
        """Smallest positive normal number."""
        return 2.0 ** self.emin

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.digits + 1)

    @property
    def max(self) -> float:
        return float(ml_dtypes.finfo(self.np_dtype).max)


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("float16", "f16", 11, -14, 15),
        FloatFormat("bfloat16", "bf16", 8, -126, 127),
        FloatFormat("float32", "f32", 24, -126, 127),
        FloatFormat("float64", "f64", 53, -1022, 1023),
    )
}
BY_SHORT: dict[str, FloatFormat] = {f.short: f for f in FORMATS.values()}
# The format fused kernels quantize their output to (vLLM's and FlashInfer's static-scale fp8):
# 4 exponent bits, 3 mantissa bits, no infinities ("fn"), largest finite 448 = 1.75 * 2**8,
# smallest normal 2**-6.  An output format of the quantized form, never a case dtype.
FP8_E4M3FN = FloatFormat("float8_e4m3fn", "f8e4m3fn", 4, -6, 8)


def dtype_name(array: np.ndarray) -> str:
    """The dtype's name as the suite spells it ('bfloat16' for ml_dtypes' and TF's type)."""
    return np.dtype(array.dtype).name


@dataclass(frozen=True)
class Precision:
    """What a case's `dtype` names: the format of inputs and outputs, and of the scale.

    Plain dtypes use one format for both; the Keras-style mixed-precision policies
    compute in half precision with float32 parameters.  The `default_` precisions
    feed half-precision inputs to a layer built with no dtype arguments at all,
    whatever the framework then chooses (what most users get): the scale
    is handed over in float32 holding values exact in the input's format, so any
    default parameter dtype stores it exactly, and neither the parameter's nor
    dscale's dtype is judged.
    """

    name: str
    short: str
    compute: FloatFormat  # x, dy, expected output and dx
    param: FloatFormat  # scale and dscale
    framework_defaults: bool = False

    @property
    def param_dtype_judged(self) -> str | None:
        """The dtype the scale parameter and dscale must have; None where the framework chooses."""
        return None if self.framework_defaults else self.param.name


PRECISIONS: dict[str, Precision] = {
    **{f.name: Precision(f.name, f.short, f, f) for f in FORMATS.values()},
    "mixed_float16": Precision("mixed_float16", "mf16", FORMATS["float16"], FORMATS["float32"]),
    "mixed_bfloat16": Precision("mixed_bfloat16", "mbf16", FORMATS["bfloat16"], FORMATS["float32"]),
    **{f"default_{h}": Precision(f"default_{h}", f"d{FORMATS[h].short}", FORMATS[h], FORMATS["float32"], True)
       for h in ("float16", "bfloat16")},
}
PRECISION_BY_SHORT: dict[str, Precision] = {p.short: p for p in PRECISIONS.values()}
