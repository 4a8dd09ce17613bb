"""Invalid and borderline configurations, each run through every adapter.

There is no single right answer for most of these, so what is recorded is what
the framework did (`outcome`): a clear error at build, a clear error at call, a
silent result (scored against the oracle where the mathematics defines one), or
a crash (isolated by the runner).  Only a crash (`error`) or a silent wrong
number (`fail`) counts against the run.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

CHECK = "invalid_config"


@dataclass(frozen=True)
class Invalid:
    name: str
    what: str
    shape: tuple[int, ...]
    axis: tuple[int, ...]
    epsilon: float | None = 1e-6
    input: str = "float32"  # dtype of x: float32, int32 or bool
    distribution: str = "normal"
    call_shape: tuple[int, ...] | None = None  # called with another shape than built for
    scale_shape: tuple[int, ...] | None = None  # a scale of the wrong shape
    has_reference: bool = False  # the formula defines the right answer

    dtype = "float32"  # the layer's dtype
    scale = "rand"
    seed = 0

    @property
    def id(self) -> str:
        return f"invalid/{self.name}"

    @property
    def compile_key(self) -> tuple:
        return ("invalid", self.name)

    def params(self) -> dict:
        return {"dtype": self.dtype, "shape": list(self.shape), "axis": list(self.axis), "epsilon": self.epsilon,
                "distribution": self.distribution, "scale": self.scale, "seed": self.seed,
                "input_dtype": self.input, "invalid": self.what}

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """x (in the input dtype, of the call shape) and a float32 scale."""
        rng = np.random.default_rng([zlib.crc32(self.id.encode())])
        x = rng.standard_normal(self.call_shape or self.shape) * (1e-3 if self.distribution == "tiny" else 1.0)
        if self.input == "int32":
            x = np.round(3 * x).astype(np.int32)
        elif self.input == "bool":
            x = x > 0
        else:
            x = x.astype(np.float32)
        rank = len(self.shape)
        if self.scale_shape is not None:
            shape = self.scale_shape
        elif all(-rank <= a < rank for a in self.axis):  # the normalized axes' sizes; () for no axes
            shape = tuple(self.shape[a] for a in sorted({a % rank for a in self.axis}))
        else:  # no such axis: the size a user would most likely give
            shape = (self.shape[-1],) if self.shape else (1,)
        return x, rng.uniform(0.5, 1.5, shape).astype(np.float32)


INVALID: tuple[Invalid, ...] = (
    Invalid("axis-out-of-range", "axis 2 of a rank-2 input", (2, 8), (2,)),
    Invalid("axis-repeated", "the same axis twice (1 and -1 of a rank-2 input)", (2, 8), (1, -1)),
    Invalid("axes-empty", "an empty list of axes", (2, 8), ()),
    Invalid("epsilon-negative", "epsilon = -1 with mean(x^2) ~ 1e-6 (the formula gives NaN)", (2, 8), (-1,),
            epsilon=-1.0, distribution="tiny", has_reference=True),
    Invalid("epsilon-nan", "epsilon = NaN (the formula gives NaN)", (2, 8), (-1,), epsilon=math.nan, has_reference=True),
    Invalid("input-int32", "int32 input to a float32 layer", (2, 8), (-1,), input="int32", has_reference=True),
    Invalid("input-bool", "boolean input to a float32 layer", (2, 8), (-1,), input="bool", has_reference=True),
    Invalid("rank-0", "a scalar input normalized over axis -1", (), (-1,)),
    Invalid("shape-changed", "built for (2, 8), called with (2, 16)", (2, 8), (-1,), call_shape=(2, 16)),
    Invalid("scale-wrong-shape", "a scale of 4 values where 8 are normalized", (2, 8), (-1,), scale_shape=(4,)),
)
BY_ID = {inv.id: inv for inv in INVALID}
