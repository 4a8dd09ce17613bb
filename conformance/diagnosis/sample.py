"""The diagnosis of a large case, on a bounded sample of its rows.

Every hypothesis evaluates the formula over the whole input, several times: on a kernel-sized
case (4096 × 8192) that is minutes.  Forward and dx are row-local (each normalized slice depends
on its own inputs only), so above SAMPLE_ELEMENTS the diagnosis runs on the rows where the result
is furthest from the formula, then a few evenly spaced ones, laid out as (rows, n) with the scale
flattened; the record says so.  dscale sums over every row, so no sample of rows gives its
observed value: above the limit only the hypotheses of the case's own formats (range, precision,
special values: a few evaluations of the formula each) are tried, on the whole case.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from conformance.diagnosis.formula import Arrays

SAMPLE_ELEMENTS = 1 << 16  # at or below this, the whole case is diagnosed
WORST_ROWS = 8  # the rows furthest from the formula
SPREAD_ROWS = 8  # and evenly spaced others, so a law over rows still shows
DSCALE_NOTE = "dscale of a large case: only the range, precision and special-value hypotheses tried"


def needed(a: Arrays) -> bool:
    return a.x.size > SAMPLE_ELEMENTS


def as_rows(v: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """(rows, n): the normalized axes last, in their order."""
    return np.moveaxis(v, axes, range(v.ndim - len(axes), v.ndim)).reshape(-1, int(np.prod([v.shape[k] for k in axes])))


def row_errors(element_error: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Each row's largest error, from each element's (diagnose.elementwise), shaped as the output."""
    return as_rows(element_error, axes).max(axis=1)


@dataclass(frozen=True, eq=False)
class Sample:
    """The rows a large case is diagnosed on: `arrays` (float64, laid out as (rows, n), the scale
    flattened, no `expected` yet), what the record says of them, and the map back to the case."""

    arrays: Arrays
    note: str
    pick: np.ndarray  # the rows taken, in the case's row order
    shape: tuple[int, ...]  # the case's
    axes: tuple[int, ...]  # the case's normalized axes

    def rows_of(self, v: np.ndarray) -> np.ndarray:
        """The sampled rows of a whole array shaped as the case, float64, laid out as the sample."""
        return as_rows(np.asarray(v), self.axes)[self.pick].astype(np.float64)

    def index(self, at: list[int]) -> list[int]:
        """An element of the sample, in the case's own coordinates."""
        kept = [k for k in range(len(self.shape)) if k not in self.axes]
        moved = [self.shape[k] for k in kept] + [self.shape[k] for k in self.axes]
        flat = int(self.pick[at[0]]) * self.arrays.x.shape[1] + int(at[1])
        coords = dict(zip(kept + list(self.axes), np.unravel_index(flat, moved)))
        return [int(coords[k]) for k in range(len(self.shape))]


def sampled(a: Arrays, errors: np.ndarray) -> Sample | None:
    """The sample of `a`'s rows to diagnose: the WORST_ROWS with the largest `errors` (one per row,
    row_errors), then SPREAD_ROWS evenly spaced; `a`'s arrays may be in the case's own dtypes
    (only the rows taken are made float64), its `expected` is the caller's to fill in for them."""
    if a.check == "grad_scale" or not a.axes:
        return None
    rows = errors.size
    worst = np.argsort(-errors, kind="stable")[:WORST_ROWS]
    spread = np.linspace(0, rows - 1, min(SPREAD_ROWS, rows)).astype(int)
    pick = np.unique(np.concatenate([worst, spread]))
    sample = Sample(a, "", pick, a.x.shape, a.axes)
    sub = dataclasses.replace(a, x=sample.rows_of(a.x), dy=sample.rows_of(a.dy), observed=sample.rows_of(a.observed),
                              axes=(1,), scale=np.asarray(a.scale, np.float64).reshape(-1), expected=None)
    note = f"diagnosed on {pick.size} of {rows} rows (the {min(WORST_ROWS, rows)} furthest from the formula and " \
           f"evenly spaced others)"
    return dataclasses.replace(sample, arrays=sub, note=note)
