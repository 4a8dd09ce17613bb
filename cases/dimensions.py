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
DISTRIBUTION_NAMES: tuple[str, ...] = tuple(DISTRIBUTIONS)
SCALE_NAMES: tuple[str, ...] = tuple(SCALES)

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
