"""The dimensions of the case space, each a small declarative list.

Suites combine these values (suites.py); adding a value here widens every
suite built from it.  Layouts pair a shape with the axes requested of it,
because which axes make sense depends on the rank.
"""
from __future__ import annotations

from dataclasses import dataclass

from conformance.cases.distributions import DISTRIBUTIONS, SCALES
from conformance.numerics.dtypes import PRECISIONS


@dataclass(frozen=True)
class Layout:
    kind: str  # what the layout exercises; also the "axes kind" column of reports
    shape: tuple[int, ...]
    axis: tuple[int, ...]


LAYOUTS: tuple[Layout, ...] = (
    Layout("last", (16,), (-1,)),
    Layout("last", (4, 32), (-1,)),
    Layout("trailing", (2, 4, 8), (-2, -1)),
    Layout("unsorted", (2, 4, 8), (-1, -2)),
    Layout("mixed-sign", (2, 4, 8), (1, -1)),
    # Equal sizes: normalizing or scaling the wrong axis cannot hide behind a shape error.
    Layout("non-trailing", (2, 8, 8), (1,)),
    Layout("non-contiguous", (4, 3, 4, 3), (0, 2)),
    Layout("all", (3, 4, 5), (0, 1, 2)),
    Layout("size-1", (4, 1), (-1,)),
    Layout("rank-0", (), ()),
    Layout("rank-5", (2, 1, 3, 2, 8), (-1,)),
    Layout("long", (2, 4096), (-1,)),
    Layout("empty", (0, 8), (-1,)),
)

DTYPES: tuple[str, ...] = tuple(PRECISIONS)
# 0: no guard; 1e-12: below every default; the common defaults; large values
# where epsilon placement dominates; None: each implementation's own default.
EPSILONS: tuple[float | None, ...] = (0.0, 1e-12, 1e-6, 1e-5, 1e-3, 0.1, 1.0, None)
# The property checks' epsilons (checks/properties.py): 0, where scale invariance is exact, and the
# common default 1e-5, so an implementation that refuses 0 still gets the other properties.
PROPERTY_EPSILONS: tuple[float, ...] = (0.0, 1e-5)
# The kernels suite's own values (suites.kernels), kept out of the standard suite's pairwise design
# so that its cases, and the baselines keyed by them, stay what they were.
KERNEL_ONLY: tuple[str, ...] = ("outliers", "trained", "near_zero")
DISTRIBUTION_NAMES: tuple[str, ...] = tuple(d for d in DISTRIBUTIONS if d not in KERNEL_ONLY)
SCALE_NAMES: tuple[str, ...] = tuple(s for s in SCALES if s not in KERNEL_ONLY)

# Dimensions that decide the compiled function (a new XLA compilation per value for
# the JAX adapters), and those that only change the data fed to it.
CONFIG_DIMENSIONS: dict[str, tuple] = {"layout": LAYOUTS, "dtype": DTYPES, "epsilon": EPSILONS}
DATA_DIMENSIONS: dict[str, tuple] = {"distribution": DISTRIBUTION_NAMES, "scale": SCALE_NAMES}
DIMENSIONS: dict[str, tuple] = {**CONFIG_DIMENSIONS, **DATA_DIMENSIONS}


def axes_kind(shape: tuple[int, ...], axis: tuple[int, ...]) -> str:
    """The layout kind of any (shape, axis), for grouping results in reports."""
    for layout in LAYOUTS:
        if layout.shape == tuple(shape) and layout.axis == tuple(axis):
            return layout.kind
    rank = len(shape)
    canon = sorted(a % rank for a in axis) if rank else []
    if not axis:
        return "rank-0" if rank == 0 else "none"
    if canon == list(range(rank - len(canon), rank)):
        return "last" if len(canon) == 1 else ("trailing" if list(axis) == sorted(axis) else "unsorted")
    return "non-trailing" if len(canon) == 1 else "non-contiguous"


# -- the kernels suite (suites.kernels): the sizes, thresholds and data kernel libraries test ------
# Read from their own tests: vLLM's tests/kernels/core/test_layernorm.py (tokens 7, 83, 4096 ×
# hidden 8, 768, 769, 5120, 5125, 8192), FlashInfer's tests/utils/test_norm.py (batch 1, 19, 99,
# 989 × hidden 111 ... 16384, QK-norm heads 4, 7, 16 × head_dim 64 ... 256), Liger-Kernel's
# test/transformers/test_rms_norm.py; 255, 256 and 300 tokens straddle vLLM's block-size change at
# 256 tokens (vllm-project/vllm#48271).
KERNEL_TOKENS: tuple[int, ...] = (1, 7, 83, 255, 256, 300, 989, 4096)
KERNEL_HIDDEN: tuple[int, ...] = (111, 768, 769, 3584, 4096, 5120, 5125, 8192, 16384)
KERNEL_LAYOUTS: tuple[Layout, ...] = (
    # (tokens, hidden), normalized over hidden: every token count and every hidden size at least once
    *(Layout("tokens", shape, (-1,)) for shape in (
        (1, 16384), (7, 5125), (7, 5120), (83, 769), (83, 16384), (255, 4096), (256, 4096), (300, 4096),
        (989, 111), (989, 3584), (4096, 768), (4096, 8192))),
    # QK-norm: (tokens, heads, head_dim), each head normalized over head_dim with one (head_dim,) weight
    *(Layout("qk-norm", shape, (-1,)) for shape in ((83, 4, 64), (255, 7, 128), (989, 16, 256), (7, 16, 128))),
)
KERNEL_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "mixed_float16", "mixed_bfloat16")
KERNEL_EPSILONS: tuple[float, ...] = (1e-5, 1e-6)
# LLM-like activations, and the range distributions where a kernel's compute dtype shows.
KERNEL_DISTRIBUTIONS: tuple[str, ...] = ("normal", "outliers", "spike", "tiny", "huge", "near_max", "subnormal")
KERNEL_SCALES: tuple[str, ...] = ("trained", "near_zero")
# Launch sizes whose rows must be bitwise equal (the batch_invariance property): the first 255 rows
# of a 255- and a 300-token launch, a row alone and in a 4096-token launch.
LAUNCH_PAIRS: tuple[tuple[int, int], ...] = ((255, 300), (1, 4096))
LAUNCH_HIDDEN = 4096  # the row length of the property cases at those launch sizes
