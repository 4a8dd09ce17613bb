"""The extra inputs of the fused forms, derived from a case's id and seed (no new case fields).

The fused forms' checks run on ordinary cases of any suite (conformance/checks/fused.py,
`applies`); what they need beyond x, the scale and dy follows from the case alone, like its
arrays (case.py), each from a generator of its own so that adding one never changes another:

- `residual`: the residual stream the fused add adds x to, 4 times larger than x's typical
  values (a transformer's residual stream outgrows each layer's output), in the compute dtype;
- `residual_grad`: the gradient flowing into the written-back residual, in the compute dtype;
- `offset_weight`: the weight w of a layer that applies (1 + w), in the parameter dtype, drawn
  where computing 1 + w in the weight's dtype loses bits (vllm-project/vllm#3653, #29810):
  w near 0 (1 + w rounds to 1 in bfloat16), near 15.8125 (16.8125 needs 9 significant bits),
  near -1 (1 + w tiny: the multiplier's relative accuracy) and ordinary values;
- `QUANT_SCALES`: the static scales of the quantized form, as vLLM's tests use them; the
  quantized check adds one more from the oracle's output, a power of two that saturates.
"""
from __future__ import annotations

import zlib

import numpy as np

from conformance.cases.case import Case, _from_rows

RESIDUAL_SCALE = 4.0
QUANT_SCALES = (0.01, 1.0, 10.0)
# One value each, in turn along the row: (low, high) of a uniform draw, or a literal weight.
OFFSET_WEIGHTS = ((-2.0**-7, 2.0**-7), 15.8125, (14.0, 16.0), (-1.1, -0.9), (-0.5, 0.5))


def _rng(case: Case, what: str) -> np.random.Generator:
    key = f"{case.id.rsplit('/', 1)[0]}/{what}"
    return np.random.default_rng([case.seed, zlib.crc32(key.encode())])


def residual(case: Case) -> np.ndarray:
    """The residual input of the fused add, shaped as x, in the compute dtype."""
    rng = _rng(case, "residual")
    rows = RESIDUAL_SCALE * rng.standard_normal((case.rows, case.reduction_length))
    return _from_rows(rows, case.shape, case.axes).astype(case.precision.compute.np_dtype).copy(order="C")


def residual_grad(case: Case) -> np.ndarray:
    """The upstream gradient of the written-back residual, shaped as x, in the compute dtype."""
    rng = _rng(case, "residual-grad")
    return rng.standard_normal(case.shape).astype(case.precision.compute.np_dtype)


def offset_weight(case: Case) -> np.ndarray:
    """w of a layer applying (1 + w), shaped as the scale, in the parameter dtype."""
    rng = _rng(case, "offset-weight")
    size = int(np.prod(case.scale_shape))
    values = np.empty(size)
    for k in range(size):
        kind = OFFSET_WEIGHTS[k % len(OFFSET_WEIGHTS)]
        values[k] = kind if isinstance(kind, float) else rng.uniform(*kind)
    w = values.reshape(case.scale_shape)
    if case.precision.framework_defaults:  # as the scale (case.py): exact in whatever dtype the framework keeps it
        w = w.astype(case.precision.compute.np_dtype)
    return w.astype(case.precision.param.np_dtype)


def saturating_scale(y: np.ndarray) -> float | None:
    """A power of two that puts the largest |y| between 512 and 1024 times it, beyond fp8's 448:
    every case then shows whether the quantization saturates.  None where y has no finite non-zero."""
    a = np.abs(np.asarray(y, np.float64))
    a = a[np.isfinite(a) & (a > 0)]
    if not a.size:
        return None
    return float(2.0 ** (int(np.ceil(np.log2(a.max()))) - 10))
