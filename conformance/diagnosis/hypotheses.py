"""The catalogue of alternative semantics a diagnosis tries, simplest first (the last tie-break).

Each hypothesis is one short numpy function, like an ONNX reference op: given the
case's arrays (`Arrays`) it returns what an implementation with that other
semantics would output for one check (`forward`, `grad_x`, `grad_scale`) in
float64, and a detail naming any parameter it solved from the observed output
(an effective epsilon, a divisor, a relative error), with that parameter as
evidence.  It returns None where it does not apply (a transposed scale needs two
axes).  diagnose.py scores the observed result against every prediction with the
check's own tolerance and keeps the one that explains it best (diagnose.py: sound,
then the fewest values solved from the observed result, the smallest error, this order).

Most of them are the generalized formula of formula.py with another parameter; the
range and precision ones evaluate the formula in another format (formula.in_dtype),
so they predict what its overflows and roundings give, never copy the observed values.
This module holds the catalogue and the short semantic hypotheses; the range, precision and
special-values ones are in precision.py, those that solve a parameter from the observed
result (epsilon, divisor, rsqrt gain) in solved.py.  The names other modules import from
here (`Arrays`, `PAD_MULTIPLES`, `name_epsilon`, `padded`) stay importable from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from conformance.diagnosis.formula import Arrays, Prediction, general, pick, plain
from conformance.diagnosis.precision import (cast_overflow, flushed_subnormals, lower_precision, nonfinite_rows,
                                             range_limit, sequential_sum)
from conformance.diagnosis.solved import PAD_MULTIPLES, approximate_rsqrt, different_epsilon, name_epsilon, padded, \
    wrong_divisor
from conformance.numerics.oracle import placed

__all__ = ["Arrays", "BY_ID", "CATALOGUE", "Hypothesis", "PAD_MULTIPLES", "name_epsilon", "padded"]


@dataclass(frozen=True)
class Hypothesis:
    id: str
    klass: str  # semantics, precision, parameters, range, special-values, dtype
    title: str  # what a maintainer would write, completed by the finding's adapters
    checks: tuple[str, ...]
    # None where it does not apply, or a Prediction (formula.py) or (prediction, detail), or a
    # list of them; a tuple's third element names the format whose tolerance judges it.
    predict: Callable[[Arrays], "Prediction | tuple | list | None"]


# -- scale layouts ---------------------------------------------------------------------------
def _scale_variant(kind: str):
    def predict(a: Arrays):
        rank, k = a.x.ndim, len(a.axes)
        if kind == "ignored":
            return pick(a, general(a, s_b=np.ones([1] * rank), dscale_factor=0.0)), ""
        if kind == "one-plus":
            return pick(a, general(a, s_b=placed(1.0 + a.scale, rank, a.axes))), ""
        if kind == "last-axes":  # plain broadcasting: the scale meets the trailing dimensions
            trailing = tuple(range(rank - k, rank))
            if trailing == a.axes or a.x.shape[rank - k:] != a.scale.shape:
                return None
            return pick(a, general(a, s_b=placed(a.scale, rank, trailing), layout=_reducer(trailing))), \
                f"scale laid on axes {list(trailing)} instead of {list(a.axes)}"
        if kind == "transposed":
            if k < 2 or a.scale.T.shape != a.scale.shape:
                return None
            return pick(a, general(a, s_b=placed(a.scale.T, rank, a.axes), layout=_reducer(a.axes, transpose=True))), ""
        raise ValueError(kind)
    return predict


def _reducer(axes: tuple[int, ...], transpose: bool = False):
    def reduce(full):
        other = tuple(k for k in range(full.ndim) if k not in axes)
        out = np.sum(full, axis=other)
        return out.T if transpose else out
    return reduce


# -- other axes ------------------------------------------------------------------------------------
def _other_axes(a: Arrays) -> list[tuple[tuple[int, ...], str]]:
    rank = a.x.ndim
    if not a.axes:  # a rank-0 input (or no axes): no other axes to take
        return []
    options = [((rank - 1,), "the last axis only"), ((a.axes[0],), "the first requested axis only"),
               (tuple(range(rank - len(a.axes), rank)), "the trailing axes"),
               (tuple(range(rank)), "every axis, the batch included (statistics shared across rows)")]
    seen, out = {a.axes}, []
    for axes, what in options:
        if rank and axes not in seen:
            seen.add(axes)
            out.append((axes, what))
    return out


def other_axes(a: Arrays):
    """Tried in turn, each with the scale where requested and where plain broadcasting puts
    it (the trailing axes); the first that explains the result wins."""
    rank, k = a.x.ndim, len(a.axes)
    trailing = tuple(range(rank - k, rank))
    layouts = [(None, None, "")]
    if trailing != a.axes and a.x.shape[rank - k:] == a.scale.shape:
        layouts.append((placed(a.scale, rank, trailing), _reducer(trailing), f", and the scale on axes {list(trailing)}"))
    return [(pick(a, general(a, stat_axes=axes, s_b=s_b, layout=layout)),
             f"statistics over {what} ({list(axes)}) instead of {list(a.axes)}{also}")
            for axes, what in _other_axes(a) for s_b, layout, also in layouts]


EVERY = ("forward", "grad_x", "grad_scale")  # the checks a hypothesis about the formula predicts

CATALOGUE: tuple[Hypothesis, ...] = (
    Hypothesis("special-values", "special-values", "NaN/Inf (in the input, or 0/0 in the formula) propagate differently",
               EVERY, nonfinite_rows),
    Hypothesis("range", "range", "intermediates overflow or underflow the compute dtype where the result is finite",
               EVERY, range_limit),
    # Flushing is a mode on top of plain IEEE arithmetic: where both predict the same, range.
    Hypothesis("subnormals-flushed", "range", "subnormal inputs are flushed to zero",
               EVERY, flushed_subnormals),
    Hypothesis("lower-precision", "precision", "computed in a lower precision than the input's dtype",
               EVERY, lower_precision),
    Hypothesis("cast-overflow", "precision", "a float64 input is cast to float32 to be computed, and overflows there",
               EVERY, cast_overflow),
    Hypothesis("sequential-sum", "precision", "x² is summed sequentially (one accumulator, or a few SIMD lanes)",
               EVERY, sequential_sum),
    Hypothesis("eps-outside-sqrt", "semantics", "epsilon is added outside the square root",
               EVERY, plain(eps_outside=True)),
    Hypothesis("eps-ignored", "parameters", "the requested epsilon is ignored",
               EVERY, plain(eps=0.0)),
    Hypothesis("eps-different", "parameters", "another epsilon than the one requested is applied",
               EVERY, different_epsilon),
    Hypothesis("divisor", "semantics", "the mean of squares uses another divisor",
               EVERY, wrong_divisor),
    # For dx, a scale ignored everywhere and one ignored by the backward alone are the same
    # prediction: grad-scale-ignored below names it.
    Hypothesis("scale-ignored", "semantics", "the scale is not applied",
               ("forward", "grad_scale"), _scale_variant("ignored")),
    Hypothesis("scale-one-plus", "parameters", "the scale is applied as (1 + w)",
               EVERY, _scale_variant("one-plus")),
    Hypothesis("scale-wrong-axis", "semantics", "the scale is applied along the trailing axes, not the normalized ones",
               EVERY, _scale_variant("last-axes")),
    Hypothesis("scale-transposed", "semantics", "a multi-axis scale is applied transposed",
               EVERY, _scale_variant("transposed")),
    Hypothesis("other-axes", "semantics", "the statistics are taken over other axes than requested",
               EVERY, other_axes),
    Hypothesis("mean-subtracted", "semantics", "the mean is subtracted (LayerNorm, not RMS normalization)",
               EVERY, plain(centered=True)),
    Hypothesis("approximate-rsqrt", "precision", "the reciprocal square root is approximate",
               EVERY, approximate_rsqrt),
    Hypothesis("grad-no-projection", "semantics", "dx treats 1/rms as a constant (the projection term is missing)",
               ("grad_x",), plain(grad_terms=(0.0, 1.0))),
    Hypothesis("grad-projection-sign", "semantics", "dx adds the projection term instead of subtracting it",
               ("grad_x",), plain(grad_terms=(-1.0, 1.0))),
    Hypothesis("grad-scale-ignored", "semantics", "dx ignores the scale",
               ("grad_x",), plain(grad_terms=(1.0, 0.0))),
    Hypothesis("dscale-mean", "semantics", "dscale is averaged over the rows instead of summed",
               ("grad_scale",), lambda a: (general(a)[2] / max(1, a.x.size // max(1, a.scale.size)), "")),
    Hypothesis("dscale-no-rms", "semantics", "dscale misses the 1/rms factor",
               ("grad_scale",), plain(dscale_rms=False)),
)
BY_ID = {h.id: h for h in CATALOGUE}
