"""The value an adapter builds its layer from (the adapter contract: conformance/adapter.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def canonical_axes(axis: tuple[int, ...], rank: int) -> tuple[int, ...]:
    """Sorted non-negative form of the requested axes; ValueError if out of range or repeated."""
    out = []
    for a in axis:
        if not -rank <= a < rank:
            raise ValueError(f"axis {a} out of range for rank {rank}")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


@dataclass(frozen=True, eq=False)
class LayerSpec:
    """What to build: a layer normalizing `axis` of inputs shaped `input_shape`.

    `axis` is exactly what the case requests (negative, unsorted, non-trailing);
    translating it is the adapter's job.  `scale` holds the effective multiplier,
    shaped as the sizes of the normalized axes in ascending axis order, in the
    dtype of the layer's parameters.  `epsilon` is None for "the implementation's
    default".  `dtype` is a dtype name or a mixed-precision policy name.
    `offset` is what the layer adds to its weight before multiplying: 0.0 for `build` (the
    weight is the scale), 1.0 for the offset form's `build_offset` (Gemma's `1 + w`, with
    `scale` holding w itself).
    """

    input_shape: tuple[int, ...]
    axis: tuple[int, ...]
    epsilon: float | None
    dtype: str
    scale: np.ndarray
    offset: float = 0.0

    @property
    def axes(self) -> tuple[int, ...]:
        """The requested axes, sorted and non-negative."""
        return canonical_axes(self.axis, len(self.input_shape))

    @property
    def is_trailing(self) -> bool:
        """True when the normalized axes are the last len(axes) dimensions."""
        rank = len(self.input_shape)
        return self.axes == tuple(range(rank - len(self.axes), rank))

    @property
    def is_last_axis(self) -> bool:
        """True when exactly the last axis is normalized (rank >= 1): what most kernels take."""
        rank = len(self.input_shape)
        return rank > 0 and self.axes == (rank - 1,)

    @property
    def compute_dtype(self) -> str:
        """The dtype of inputs and outputs ('float16' for 'mixed_float16' and 'default_float16')."""
        return self.dtype.removeprefix("mixed_").removeprefix("default_")

    @property
    def param_dtype(self) -> str:
        """The dtype `scale` comes in: float32 for the mixed and default precisions."""
        return "float32" if self.dtype.startswith(("mixed_", "default_")) else self.dtype

    @property
    def no_dtype_args(self) -> bool:
        """Build the layer with no dtype arguments at all: the framework's defaults decide
        (the `default_float16` and `default_bfloat16` precisions).  An adapter that
        ignores this builds a float32-parameter layer, as for the mixed precisions."""
        return self.dtype.startswith("default_")
