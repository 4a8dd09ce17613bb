"""A plain numpy function, the first step of the README's quick start: no adapter class.

    conformance run --suite smoke --adapter examples.my_function:rms_norm --function numpy
"""
import numpy as np


def rms_norm(x, weight, eps):
    """Normalize over the trailing axes the weight's shape gives; half precision in float32."""
    axes = tuple(range(x.ndim - weight.ndim, x.ndim))
    compute = np.float64 if x.dtype == np.float64 else np.float32
    xc = x.astype(compute)
    r = 1 / np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True) + compute(eps))
    y = xc * r * weight.astype(compute)
    return y if x.dtype.kind in "biu" else y.astype(x.dtype)  # an integer input gets a float output
