"""What a hypothesis sees (`Arrays`), and the generalized formula most hypotheses are.

Most semantics are one generalized formula with a different parameter:

    xc = x - mean(x) if centered else x
    q  = sum(xc**2 over stat_axes) / divisor
    g  = 1 / sqrt(q + eps)          (or 1 / (sqrt(q) + eps): epsilon outside)
    y  = xc * g * s                 (s: the scale as the implementation lays it out)

and `general` returns its forward pass and exact gradients.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from conformance.numerics.oracle import placed


@dataclass(frozen=True, eq=False)
class Arrays:
    """What a hypothesis sees: the case's inputs, its parameters, and the observed result."""

    x: np.ndarray  # float64 values of the case's input
    scale: np.ndarray  # float64, shaped as the sizes of `axes`
    dy: np.ndarray  # float64
    axes: tuple[int, ...]  # sorted, non-negative
    eps: float
    check: str  # forward, grad_x, grad_scale
    observed: np.ndarray  # float64 values the adapter returned for `check`
    compute: str  # the case's compute dtype name
    param: str  # the case's parameter dtype name
    expected: np.ndarray | None = None  # the oracle's result for `check` (float64)


# -- the generalized formula -------------------------------------------------------------
def general(a: Arrays, *, s_b=None, stat_axes=None, eps=None, eps_outside=False, divisor=None, centered=False,
            x=None, layout=None, grad_terms=(1.0, 1.0), dscale_factor=1.0, dscale_rms=True, gain=1.0,
            exact_derivative=True):
    """(y, dx, dscale) of the generalized formula; `layout` undoes `s_b`'s placement for dscale.

    `gain` multiplies 1/rms (an approximate rsqrt); with `exact_derivative` False the
    gradient is the reference's formula (dx = g*s*dy - x*g**3*mean(s*dy*x)) evaluated with
    the variant's g, as a kernel that swaps its rsqrt but keeps its backward would do."""
    x = a.x if x is None else x
    axes = a.axes if stat_axes is None else stat_axes
    eps = a.eps if eps is None else eps
    s_b = placed(a.scale, x.ndim, a.axes) if s_b is None else s_b
    n = math.prod(x.shape[k] for k in axes) if axes else 1
    d = n if divisor is None else divisor
    with np.errstate(all="ignore"):
        xc = x - np.mean(x, axis=axes, keepdims=True) if centered else x
        q = np.sum(xc * xc, axis=axes, keepdims=True) / d
        root = np.sqrt(q)
        g = gain * (1.0 / (root + eps) if eps_outside else 1.0 / np.sqrt(q + eps))
        dg = -g * g / (2 * root) if eps_outside and exact_derivative else -0.5 * g ** 3  # dg/dq
        y = xc * g * s_b
        sdy = (s_b if grad_terms[1] else 1.0) * a.dy  # grad_terms[1] = 0: dx ignores the scale
        direct = g * (sdy - (np.mean(sdy, axis=axes, keepdims=True) if centered else 0.0))
        proj = np.sum(sdy * xc, axis=axes, keepdims=True) * dg * 2.0 / d
        dx = direct + grad_terms[0] * xc * proj
        full = a.dy * xc * (g if dscale_rms else 1.0) * dscale_factor
    return y, dx, (layout or sum_to_scale(a))(full)


def sum_to_scale(a: Arrays):
    def reduce(full):
        other = tuple(k for k in range(full.ndim) if k not in a.axes)
        return np.sum(full, axis=other)
    return reduce


def pick(a: Arrays, result) -> np.ndarray:
    y, dx, dscale = result
    return {"forward": y, "grad_x": dx, "grad_scale": dscale}[a.check]


def plain(**kw):
    """A hypothesis that is the generalized formula with fixed parameters; for gradients,
    both its exact derivative and the reference's backward formula with its 1/rms."""
    def predict(a: Arrays):
        if a.check == "forward":
            return pick(a, general(a, **kw)), ""
        return [(pick(a, general(a, **kw)), ""),
                (pick(a, general(a, exact_derivative=False, **kw)), "the backward formula with that 1/rms")]
    return predict
