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

import numpy as np

from conformance.diagnosis.formula import Arrays

SAMPLE_ELEMENTS = 1 << 16  # at or below this, the whole case is diagnosed
WORST_ROWS = 8  # the rows furthest from the formula
SPREAD_ROWS = 8  # and evenly spaced others, so a law over rows still shows
DSCALE_NOTE = "dscale of a large case: only the range, precision and special-value hypotheses tried"


def needed(a: Arrays) -> bool:
    return a.x.size > SAMPLE_ELEMENTS


def _as_rows(v: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """(rows, n): the normalized axes last, in their order."""
    return np.moveaxis(v, axes, range(v.ndim - len(axes), v.ndim)).reshape(-1, int(np.prod([v.shape[k] for k in axes])))


def sampled(a: Arrays, expected: np.ndarray, magnitude, row_error: np.ndarray):
    """(Arrays, expected, magnitude, note, index) for the sampled rows (`index` maps an element of
    the sample back to the case's coordinates); `row_error` is each element's
    error in the check's unit (diagnose.elementwise), shaped as the output."""
    if a.check == "grad_scale" or not a.axes:
        return None
    errors = _as_rows(row_error, a.axes).max(axis=1)
    rows = errors.size
    worst = np.argsort(-errors, kind="stable")[:WORST_ROWS]
    spread = np.linspace(0, rows - 1, min(SPREAD_ROWS, rows)).astype(int)
    pick = np.unique(np.concatenate([worst, spread]))
    take = lambda v: _as_rows(np.asarray(v), a.axes)[pick]  # noqa: E731
    sub = dataclasses.replace(a, x=take(a.x), dy=take(a.dy), observed=take(a.observed), axes=(1,),
                              scale=np.asarray(a.scale).reshape(-1),
                              expected=None if a.expected is None else take(a.expected))
    def index(at: list[int]) -> list[int]:  # an element of the sample, in the case's own coordinates
        kept = [k for k in range(a.x.ndim) if k not in a.axes]
        moved = [a.x.shape[k] for k in kept] + [a.x.shape[k] for k in a.axes]
        flat = int(pick[at[0]]) * sub.x.shape[1] + int(at[1])
        coords = dict(zip(kept + list(a.axes), np.unravel_index(flat, moved)))
        return [int(coords[k]) for k in range(a.x.ndim)]

    note = f"diagnosed on {pick.size} of {rows} rows (the {min(WORST_ROWS, rows)} furthest from the formula and " \
           f"evenly spaced others)"
    return sub, take(expected), None if magnitude is None else take(magnitude), note, index
