"""Non-contiguous copies of an input, for the `layout` property (conformance/checks/properties.py).

Each returns an array with the values of `x` whose memory is laid out otherwise; NotImplementedError
where the layout does not apply to `x`'s shape.  Adapters whose framework takes numpy arrays as
they are pass `numpy_layout(x, name)` to their call; torch adapters use
`conformance.adapters._convert.torch_layout` (framework code stays in adapters/).
"""
from __future__ import annotations

import numpy as np

# Elements past each row's end in a row-strided buffer: a token slice of a wider activation (a
# fused QKV projection's output, say), as vLLM's and FlashInfer's kernel tests feed their kernels.
ROW_PADDING = 64


def numpy_layout(x: np.ndarray, name: str) -> np.ndarray:
    if name == "transposed":  # the last two axes swapped in memory
        if x.ndim < 2:
            raise NotImplementedError("a transposed view needs two axes")
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -1, -2)), -1, -2)
    if name == "strided":  # every other element of a buffer twice as long
        if x.ndim < 1:
            raise NotImplementedError("a strided view needs an axis")
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    if name == "row-strided":  # each row a slice of a wider buffer (a row stride above its length)
        if x.ndim < 2:
            raise NotImplementedError("a row-strided view needs rows")
        big = np.zeros(x.shape[:-1] + (x.shape[-1] + ROW_PADDING,), x.dtype)
        big[..., :x.shape[-1]] = x
        return big[..., :x.shape[-1]]
    if name == "negative-strides":  # the last axis reversed in memory
        if x.ndim < 1:
            raise NotImplementedError("a reversed view needs an axis")
        return np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    raise NotImplementedError(f"numpy has no {name} layout")

