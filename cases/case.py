"""A case is a frozen value with a stable, readable id; its arrays follow from it alone.

The id is the key of baselines, xfail lists and pytest test ids, so it is a
pure function of the case's fields and can be parsed back (`Case.from_id`):
`f16/2x8x8/ax1/eps1e-06/huge/rand/s0`.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from conformance.cases.distributions import DISTRIBUTIONS, SCALES
from conformance.numerics.dtypes import PRECISION_BY_SHORT, PRECISIONS, Precision
from conformance.spec import LayerSpec, canonical_axes


# Bounds of a case, so a typo cannot ask for terabytes or a rank no framework has.
MAX_RANK = 8
MAX_ELEMENTS = 1 << 26  # 4096 tokens × 16384 hidden; a float64 copy of it is 512 MiB
MAX_SEED = 2**32 - 1


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Case:
    shape: tuple[int, ...]
    axis: tuple[int, ...]  # as requested: may be negative, unsorted, non-trailing
    dtype: str  # a key of PRECISIONS
    epsilon: float | None  # None: the implementation's own default
    distribution: str = "normal"
    scale: str = "rand"
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.shape, tuple) or not all(_is_int(s) and s >= 0 for s in self.shape):
            raise ValueError(f"shape {self.shape!r} must be non-negative integers")
        # Sizes of 0 count as 1: a (0, 10**14) case still allocates its (10**14,) scale.
        if len(self.shape) > MAX_RANK or math.prod(max(s, 1) for s in self.shape) > MAX_ELEMENTS:
            raise ValueError(f"shape {self.shape} is beyond the suite's limits (rank <= {MAX_RANK}, "
                             f"<= {MAX_ELEMENTS} elements)")
        if not isinstance(self.axis, tuple) or not all(_is_int(a) for a in self.axis):
            raise ValueError(f"axis {self.axis!r} must be integers")
        if self.epsilon is not None and (not isinstance(self.epsilon, float) or not 0 <= self.epsilon < math.inf):
            raise ValueError(f"epsilon {self.epsilon!r} must be a finite float >= 0, or None for the default")
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed {self.seed!r} must be an integer from 0 to {MAX_SEED}")
        if self.dtype not in PRECISIONS:
            raise ValueError(f"unknown dtype {self.dtype!r}; known: {', '.join(PRECISIONS)}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {self.distribution!r}; known: {', '.join(DISTRIBUTIONS)}")
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}; known: {', '.join(SCALES)}")
        canonical_axes(self.axis, len(self.shape))

    # -- identity ---------------------------------------------------------------
    @cached_property  # ids and axes are read for every record; frozen values never change
    def id(self) -> str:
        shape = "x".join(map(str, self.shape)) if self.shape else "scalar"
        axis = ",".join(map(str, self.axis)) if self.axis else "none"
        eps = "default" if self.epsilon is None else f"{self.epsilon:g}"
        return f"{self.precision.short}/{shape}/ax{axis}/eps{eps}/{self.distribution}/{self.scale}/s{self.seed}"

    @classmethod
    def from_id(cls, case_id: str) -> "Case":
        """Parse an id back into its case; ValueError saying what is wrong.

        Only the canonical spelling is accepted (the id is a key: `eps1e-6` and
        `eps1e-06` must not be two names of one case); the error gives it."""
        parts = case_id.split("/")
        if len(parts) != 7 or not parts[2].startswith("ax") or not parts[3].startswith("eps") or not parts[6].startswith("s"):
            raise ValueError(f"malformed case id {case_id!r}; expected like f32/2x8/ax-1/eps1e-06/normal/rand/s0")
        short, shape, axis, eps, dist, scale, seed = parts
        if short not in PRECISION_BY_SHORT:
            raise ValueError(f"unknown dtype prefix {short!r} in case id {case_id!r}")
        try:
            case = cls(
                shape=() if shape == "scalar" else tuple(int(s) for s in shape.split("x")),
                axis=() if axis == "axnone" else tuple(int(a) for a in axis[2:].split(",")),
                dtype=PRECISION_BY_SHORT[short].name,
                epsilon=None if eps == "epsdefault" else float(eps[3:]),
                distribution=dist,
                scale=scale,
                seed=int(seed[1:]),
            )
        except ValueError as exc:
            raise ValueError(f"malformed case id {case_id!r}: {exc}") from None
        if case.id != case_id:
            raise ValueError(f"case id {case_id!r} is not in canonical form; write {case.id!r}")
        return case

    # -- derived ----------------------------------------------------------------
    @property
    def precision(self) -> Precision:
        return PRECISIONS[self.dtype]

    @cached_property
    def axes(self) -> tuple[int, ...]:
        return canonical_axes(self.axis, len(self.shape))

    @property
    def reduction_length(self) -> int:
        return math.prod(self.shape[a] for a in self.axes)

    @property
    def rows(self) -> int:
        """How many independent slices are normalized (the batch of dscale's sum)."""
        n = self.reduction_length
        return math.prod(self.shape) // n if n else 0

    @property
    def scale_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[a] for a in self.axes)

    @property
    def compile_key(self) -> tuple:
        """Cases sharing this key can share one compiled function."""
        return (self.shape, self.axis, self.dtype, self.epsilon)

    def params(self) -> dict:
        """The case's parameters as JSON-safe record fields."""
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "axis": list(self.axis),
            "epsilon": self.epsilon,
            "distribution": self.distribution,
            "scale": self.scale,
            "seed": self.seed,
        }


@dataclass(frozen=True, eq=False)
class CaseArrays:
    """x, scale and dy in the case's dtypes; the oracle sees exactly these values."""

    x: np.ndarray
    scale: np.ndarray
    dy: np.ndarray


def _rng(case: Case) -> np.random.Generator:
    # crc32 of the seedless id, not hash(): stable across processes and Python versions.
    key = case.id.rsplit("/", 1)[0]
    return np.random.default_rng([case.seed, zlib.crc32(key.encode())])


def _from_rows(rows: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Lay (rows, n) out so that each row is one normalized slice of `shape`."""
    kept = [a for a in range(len(shape)) if a not in axes]
    order = kept + list(axes)
    permuted = rows.reshape([shape[a] for a in order])
    return np.transpose(permuted, np.argsort(order))


def materialize(case: Case) -> CaseArrays:
    """Draw x, scale and dy in float64 and round each once to its dtype."""
    rng = _rng(case)
    prec = case.precision
    n = case.reduction_length
    x64 = DISTRIBUTIONS[case.distribution](rng, case.rows, n, prec.compute)
    x = _from_rows(x64, case.shape, case.axes).astype(prec.compute.np_dtype)
    scale = SCALES[case.scale](rng, case.scale_shape)
    if prec.framework_defaults:  # exact whether the framework keeps it in float32 or in the input dtype
        scale = scale.astype(prec.compute.np_dtype)
    scale = scale.astype(prec.param.np_dtype)
    dy = rng.standard_normal(case.shape).astype(prec.compute.np_dtype)
    return CaseArrays(x.copy(order="C"), scale, dy)


def layer_spec(case: Case, arrays: CaseArrays) -> LayerSpec:
    return LayerSpec(case.shape, case.axis, case.epsilon, case.dtype, arrays.scale)


def parse_case(case_id: str):
    """A Case, or an invalid configuration (ids `invalid/...`), from its id; ValueError otherwise."""
    from conformance.cases.invalid import BY_ID

    if case_id.startswith("invalid/"):
        if case_id not in BY_ID:
            raise ValueError(f"unknown invalid configuration {case_id!r}; known: {', '.join(BY_ID)}")
        return BY_ID[case_id]
    return Case.from_id(case_id)
