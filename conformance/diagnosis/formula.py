"""What a hypothesis sees (`Arrays`), and the generalized formula most hypotheses are.

Most semantics are one generalized formula with a different parameter:

    xc = x - mean(x) if centered else x
    q  = sum(xc**2 over stat_axes) / divisor
    g  = 1 / sqrt(q + eps)          (or 1 / (sqrt(q) + eps): epsilon outside)
    y  = xc * g * s                 (s: the scale as the implementation lays it out)

and `general` returns its forward pass and exact gradients.  `in_dtype` evaluates the formula in
another format (numpy in that dtype, in the orders kernels write it), for the hypotheses about
range and precision: what that format's overflows, underflows and roundings give.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from conformance.numerics.arrays import into
from conformance.numerics.oracle import placed


@dataclass(frozen=True, eq=False)
class Arrays:
    """What a hypothesis sees: the case's inputs, its parameters, and the observed result."""

    x: np.ndarray  # float64 values of the case's input (in its own dtype until sample.sampled takes rows)
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
            exact_derivative=True, sumsq=None):
    """(y, dx, dscale) of the generalized formula; `layout` undoes `s_b`'s placement for dscale.
    Only the output `a.check` reads is computed (the others are None): on a kernel-sized case
    each is several passes over every element.

    `sumsq` replaces the sum of squares (shaped as a keepdims reduction over `stat_axes`): one
    accumulated another way (sequentially in float32), the rest of the formula in float64.

    `gain` multiplies 1/rms (an approximate rsqrt); with `exact_derivative` False the
    gradient is the reference's formula (dx = g*s*dy - x*g**3*mean(s*dy*x)) evaluated with
    the variant's g, as a kernel that swaps its rsqrt but keeps its backward would do."""
    x = a.x if x is None else x
    axes = a.axes if stat_axes is None else stat_axes
    eps = a.eps if eps is None else eps
    s_b = placed(a.scale, x.ndim, a.axes) if s_b is None else s_b
    n = math.prod(x.shape[k] for k in axes) if axes else 1
    d = n if divisor is None else divisor
    y = dx = dscale = None
    with np.errstate(all="ignore"):
        xc = x - np.mean(x, axis=axes, keepdims=True) if centered else x
        q = (np.sum(xc * xc, axis=axes, keepdims=True) if sumsq is None else sumsq) / d
        root = np.sqrt(q)
        g = gain * (1.0 / (root + eps) if eps_outside else 1.0 / np.sqrt(q + eps))
        if a.check == "forward":
            y = xc * g * s_b
        elif a.check == "grad_x":
            dg = -g * g / (2 * root) if eps_outside and exact_derivative else -0.5 * g ** 3  # dg/dq
            sdy = (s_b if grad_terms[1] else 1.0) * a.dy  # grad_terms[1] = 0: dx ignores the scale
            direct = g * (sdy - (np.mean(sdy, axis=axes, keepdims=True) if centered else 0.0))
            proj = np.sum(sdy * xc, axis=axes, keepdims=True) * dg * 2.0 / d
            dx = direct + grad_terms[0] * xc * proj
        else:
            full = a.dy * xc
            if dscale_rms:
                full *= g
            if dscale_factor != 1.0:  # a factor 1 would be a pass over every element that changes nothing
                full *= dscale_factor
            dscale = (layout or sum_to_scale(a))(full)
    return y, dx, dscale


def sum_to_scale(a: Arrays):
    def reduce(full):
        other = tuple(k for k in range(full.ndim) if k not in a.axes)
        return np.sum(full, axis=other)
    return reduce


@dataclass(frozen=True, eq=False)
class Prediction:
    """One prediction of a hypothesis: the values, the detail naming what it solved, the format whose
    tolerance judges it (None: the case's), the parameters it solved (`evidence`, e.g. {"divisor":
    64, "n": 60}, stated per case and fitted across a finding's cases), and how many values it
    took from the observed result (`free`: 0 for a prediction from the inputs alone, 1 for a
    solved scalar, one per row for a per-row fit): of two that fit as well, fewer is simpler."""

    values: np.ndarray
    detail: str = ""
    judged_in: str | None = None
    evidence: dict | None = None
    free: int = 0


def pick(a: Arrays, result) -> np.ndarray:
    y, dx, dscale = result
    return {"forward": y, "grad_x": dx, "grad_scale": dscale}[a.check]


def plain(**kw):
    """A hypothesis that is the generalized formula with fixed parameters; for dx, both its exact
    derivative and the reference's backward formula with its 1/rms."""
    def predict(a: Arrays):
        if a.check != "grad_x":  # forward and dscale have no derivative of 1/rms: one prediction
            return pick(a, general(a, **kw)), ""
        return [(pick(a, general(a, **kw)), ""),
                (pick(a, general(a, exact_derivative=False, **kw)), "the backward formula with that 1/rms")]
    return predict


def row_length(a: Arrays) -> int:
    return math.prod(a.x.shape[k] for k in a.axes) if a.axes else 1


# -- the formula in a format of its own ----------------------------------------------------------
def _tiny(ct: np.dtype) -> float:
    import ml_dtypes

    return float(ml_dtypes.finfo(ct).tiny)


ORDERS = ("reference", "normalized", "autodiff", "autodiff-jax", "autodiff-tf", "folded")
# The orders whose results differ, per check: y is x·r·s in every order but `folded`'s x·(r·s),
# dscale sum(dy·x·r) in `reference` and `folded` and sum(dy·xn) in the others (xn = x·r, the same
# roundings); dx differs in each.  The others would repeat a prediction at the cost of evaluating it.
DISTINCT_ORDERS = {"forward": ("reference", "folded"), "grad_x": ORDERS, "grad_scale": ("reference", "normalized")}


def in_dtype(a: Arrays, dtype, order: str = "reference", *, cast=None, terms=None, flush=False):
    """(y, dx, dscale) as float64, the formula evaluated in numpy's `dtype`: that format's rounding,
    overflow (x² = Inf, then 1/rms = 0) and underflow, as a kernel computing in it gets them.  Only
    the output `a.check` reads is computed (the others are None).

    `cast`: the input is first rounded to this (narrower) dtype, where it may overflow.
    `flush`: a CPU's flush-to-zero and denormals-are-zero modes: subnormal inputs of `dtype` read
    as 0, and so does every subnormal intermediate (dy·x of a tiny x, before it is scaled by 1/rms).
    `terms`: dx's two terms (the direct one and the projection) are each rounded to this dtype
    before they are added, as autodiff does where x's uses are cast separately.
    `order`, how kernels write it (DISTINCT_ORDERS: those that differ for each check):
      reference    r = 1/sqrt(mean(x²) + eps), y = x r s, dx = r s dy - x r³ mean(s dy x)
      normalized   xn = x r, y = xn s, dx = r (s dy - xn mean(s dy xn)), dscale = sum(dy xn)
      autodiff     a tape: g_r = sum(s dy x), g_q = -0.5 r³ g_r, dx = r s dy + 2 x g_q / n
      autodiff-jax the same with rsqrt's derivative written -0.5 r / (q + eps)
      autodiff-tf  the same with TensorFlow's rsqrt gradient: 0 for a zero incoming gradient (no 0·Inf)
      folded       the scale folded into 1/rms first: y = x (r s), g_r = sum((dy x) s), and the
                   square's gradient x (2 g_q / n), as flax's XLA program computes it (2x would
                   overflow for |x| above half the format's largest value where it does not)"""
    ct = np.dtype(dtype)
    n = row_length(a)
    d = ct.type(n)
    axes = a.axes
    other = tuple(k for k in range(a.x.ndim) if k not in axes)

    def mean(v):
        return np.sum(v, axis=axes, keepdims=True, dtype=ct) / d if axes else v / d

    tiny = _tiny(ct)

    def f(v):  # every result of an operation, flushed to zero where it is subnormal (flush=True)
        return np.where(np.abs(v) < tiny, ct.type(0), v).astype(ct) if flush else v

    y = dx = dscale = None
    with np.errstate(all="ignore"):
        x = f(a.x.astype(cast).astype(ct) if cast is not None else a.x.astype(ct))
        s = f(placed(a.scale, a.x.ndim, axes).astype(ct))
        eps = ct.type(a.eps)
        q = f(mean(f(x * x)))
        r = f(ct.type(1) / np.sqrt(q + eps))
        if a.check == "forward":
            y = f(x * f(r * s)) if order == "folded" else f(f(x * r) * s)
        elif a.check == "grad_scale":
            dy = f(a.dy.astype(ct))  # a copy of its own: the products are written into it (the same bits)
            if order in ("reference", "folded"):
                full = f(np.multiply(f(np.multiply(dy, x, out=into(dy))), r, out=into(dy)))
            else:
                xr = f(x * r)
                full = f(np.multiply(dy, xr, out=into(xr)))
            dscale = f(np.sum(full, axis=other, dtype=ct)) if other else full.reshape(a.scale.shape)
        else:
            dy = f(a.dy.astype(ct))
            sdy = f(s * dy)
            if order == "reference":
                direct, proj = f(r * sdy), -f(f(f(x * f(r ** 3))) * mean(f(sdy * x)))
            elif order == "normalized":
                xn = f(x * r)
                direct, proj = f(r * sdy), -f(f(r * xn) * mean(f(sdy * xn)))
            else:
                g_r = f(f(dy * x) * s) if order == "folded" else f(sdy * x)
                g_r = f(np.sum(g_r, axis=axes, keepdims=True, dtype=ct)) if axes else g_r
                dr = f(ct.type(-0.5) * r ** 3 if order in ("autodiff", "autodiff-tf") else
                       ct.type(-0.5) * f(r / (q + eps)))
                g_q = np.where(g_r == 0, ct.type(0), g_r * dr) if order == "autodiff-tf" else f(g_r * dr)
                if order == "folded":
                    direct, proj = f(dy * f(r * s)), f(x * f(ct.type(2) * f(g_q / d)))
                else:
                    direct, proj = f(r * sdy), f(f(ct.type(2) * x) * f(g_q / d))
            if terms is not None:
                direct, proj = direct.astype(terms), proj.astype(terms)
            dx = f(direct + proj)
    return tuple(None if v is None else np.asarray(v).astype(np.float64) for v in (y, dx, dscale))
