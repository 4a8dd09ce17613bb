"""Hypotheses whose prediction needs a parameter solved from (or searched against) the observed result.

An effective epsilon, a divisor of the sum of squares, a constant factor on 1/rms: each is
solved from the forward output where the formula can be inverted, and tried among the usual
suspects for gradients, where it cannot.  They live apart from the catalogue (hypotheses.py)
because the solving, with its tolerances for what counts as "a known value" or "a whole
count", is its own idea; the solved value is the diagnosis's evidence, so a finding can state
its law across cases (reports/findings.py uses `name_epsilon`, `padded`, `PAD_MULTIPLES`).
"""
from __future__ import annotations

import math

import numpy as np

from conformance.diagnosis.formula import Arrays, Prediction, general, pick, row_length
from conformance.numerics.oracle import placed


def _row_gain(a: Arrays) -> np.ndarray | None:
    """The observed y / (x * s) per row (median over elements that carry signal)."""
    s_b = placed(a.scale, a.x.ndim, a.axes)
    with np.errstate(all="ignore"):
        base = a.x * s_b
        ratio = np.where(np.abs(base) > 1e-300, a.observed / base, np.nan)
    if not np.isfinite(ratio).any():
        return None
    moved = np.moveaxis(ratio, a.axes, list(range(ratio.ndim - len(a.axes), ratio.ndim)))
    rows = moved.reshape(-1, math.prod(ratio.shape[k] for k in a.axes) or 1)
    return np.nanmedian(rows, axis=1)


def _mean_square_rows(a: Arrays) -> np.ndarray:
    moved = np.moveaxis(a.x, a.axes, list(range(a.x.ndim - len(a.axes), a.x.ndim)))
    rows = moved.reshape(-1, math.prod(a.x.shape[k] for k in a.axes) or 1)
    return np.mean(rows * rows, axis=1)


KNOWN_EPSILONS = {
    "float32's machine epsilon": float(np.finfo(np.float32).eps),
    "float16's machine epsilon": float(np.finfo(np.float16).eps),
    "bfloat16's machine epsilon": 2.0 ** -7,
    "float64's machine epsilon": float(np.finfo(np.float64).eps),
    "1e-5": 1e-5, "1e-6": 1e-6, "1e-8": 1e-8, "1e-12": 1e-12,
}


def name_epsilon(value: float, requested: float) -> str:
    if requested and abs(value - float(np.float32(requested))) <= 1e-3 * requested and value != requested:
        return " (the requested epsilon rounded to float32)"
    for name, known in KNOWN_EPSILONS.items():
        if abs(value - known) <= 0.02 * known:
            return f" (= {name})"
    return ""


def different_epsilon(a: Arrays):
    if a.check != "forward":  # gradients cannot be solved for epsilon: try the usual suspects
        candidates = {float(np.float32(a.eps)), *KNOWN_EPSILONS.values()} - {a.eps}
        return [Prediction(pick(a, general(a, eps=e)), f"effective epsilon {e:.3g}{name_epsilon(e, a.eps)}, "
                           f"requested {a.eps:g}", evidence={"epsilon": e, "requested": a.eps})
                for e in sorted(candidates)]
    gain = _row_gain(a)
    if gain is None:
        return None
    with np.errstate(all="ignore"):
        solved = 1.0 / (gain * gain) - _mean_square_rows(a)
    solved = solved[np.isfinite(solved)]
    if not solved.size:
        return None
    eps = float(np.median(solved))
    # A solved value within 2% of a known one is that one (the rest is another error's noise),
    # so a requested epsilon disturbed by lost squares does not pass for "another epsilon".
    known = [float(np.float32(a.eps)), a.eps, *KNOWN_EPSILONS.values()]
    near = [k for k in known if abs(eps - k) <= 0.02 * k]
    eps = min(near, key=lambda k: abs(eps - k)) if near else eps
    if eps < 0 or math.isclose(eps, a.eps, rel_tol=1e-9):
        return None
    return Prediction(pick(a, general(a, eps=eps)), f"effective epsilon {eps:.3g}{name_epsilon(eps, a.eps)}, "
                      f"requested {a.eps:g}", evidence={"epsilon": eps, "requested": a.eps}, free=0 if near else 1)


# Kernels pad a row to their block: the row length rounded up to a power of two or to a multiple
# of one of these (a Triton kernel's BLOCK_SIZE, a warp's 32 lanes).
PAD_MULTIPLES = (16, 32, 64, 128)


def padded(n: int) -> dict[str, int]:
    """n rounded up as kernels pad it, by law: {"a power of two": 64, "a multiple of 16": 64, ...}."""
    out = {"a power of two": 1 << max(0, (n - 1).bit_length())}
    out.update({f"a multiple of {m}": -(-n // m) * m for m in PAD_MULTIPLES})
    return out


def _divisor_candidates(a: Arrays, n: int) -> list[int]:
    """Counts a kernel divides by instead of n: the sum (1), n - 1, n padded up, an axis' size,
    the number of rows, the input's size."""
    rows = a.x.size // n if n else 0
    found = {1, n - 1, *padded(n).values(), *a.x.shape, rows, a.x.size}
    return sorted(d for d in found if d >= 1 and d != n)


def _divisor_detail(d: float, n: int) -> str:
    if d == 1:
        return "the mean of x² sums instead of averaging"
    laws = [name.removeprefix("a ") for name, v in padded(n).items() if v == d and d > n]
    return f"the mean of x² divides by {d:g} instead of {n}" + (f" (n rounded up to a {' or '.join(laws)})" if laws else "")


def wrong_divisor(a: Arrays):
    """Another count than n divides the sum of squares: solved from the forward output, tried
    among the usual counts for gradients.  The solved divisor is the diagnosis's evidence, so a
    finding can state its law across cases (reports/findings.py: n rounded up to 32, ...)."""
    n = row_length(a)
    if a.check != "forward":
        out = []
        for d in _divisor_candidates(a, n):
            ev = {"divisor": d, "n": n}
            out.append(Prediction(pick(a, general(a, divisor=float(d))), _divisor_detail(d, n), evidence=ev))
            if a.check == "grad_x":  # dscale has no derivative of 1/rms: the same prediction again
                out.append(Prediction(pick(a, general(a, divisor=float(d), exact_derivative=False)),
                                      _divisor_detail(d, n) + ", the backward formula with that 1/rms", evidence=ev))
        return out
    gain = _row_gain(a)
    if gain is None:
        return None
    with np.errstate(all="ignore"):
        solved = n * _mean_square_rows(a) / (1.0 / (gain * gain) - a.eps)
    solved = solved[np.isfinite(solved) & (solved > 0)]
    if not solved.size:
        return None
    d = float(np.median(solved))
    # A kernel divides by a count: the sum (1), n - 1, another axis' size, the batch, n padded up
    # to its block...  An effective divisor that is no whole number up to the input's size or the
    # largest padding is another story (the squares underflowing in half precision solve to
    # divisors in the millions).
    if abs(d - n) < 0.5 or abs(d - round(d)) >= 0.05 or not 1 <= round(d) <= max(a.x.size, *padded(n).values()):
        return None
    d = float(round(d))
    return Prediction(pick(a, general(a, divisor=d)), _divisor_detail(d, n), evidence={"divisor": int(d), "n": n},
                      free=1)


def _solve_gain(a: Arrays) -> float:
    """The constant factor c on 1/rms that brings the gradient closest to the observed one.

    With the reference's backward the gradient is c·L - c³·B (dx: L = g s dy, B = x g³ mean(s dy
    x); dscale: B = 0): two evaluations give L and B, and the squared misfit is a polynomial in c
    whose coefficients are six sums, searched on a grid."""
    with np.errstate(all="ignore"):
        one, two = (pick(a, general(a, gain=c, exact_derivative=False)) for c in (1.0, 2.0))
        b = (2.0 * one - two) / 6.0
        lin, o = one + b, a.observed
        ok = np.isfinite(lin) & np.isfinite(b) & np.isfinite(o)
        lin, b, o = lin[ok], b[ok], o[ok]
        ll, lb, bb, lo, bo = (float(np.sum(u * v)) for u, v in ((lin, lin), (lin, b), (b, b), (lin, o), (b, o)))

    def misfit(c: np.ndarray) -> np.ndarray:  # sum((c L - c³ B - o)²) without the constant sum(o²)
        return c**2 * ll - 2 * c**4 * lb + c**6 * bb - 2 * c * lo + 2 * c**3 * bo

    best = 1.0
    for width in (0.05, 0.001, 2e-5):
        grid = best + np.linspace(-width, width, 101)
        with np.errstate(all="ignore"):
            best = float(grid[int(np.nanargmin(misfit(grid)))]) if np.isfinite(misfit(grid)).any() else best
    return best


# The largest relative error an approximate rsqrt is credited with: hardware estimates give
# 12 bits or more (about 2.4e-4), a crude software one a few; a factor 2 off is not an rsqrt.
MAX_RSQRT_ERROR = 2.0 ** -4


def approximate_rsqrt(a: Arrays):
    if a.check != "forward":
        c = _solve_gain(a)
        if c == 1.0:
            return None
        return Prediction(pick(a, general(a, gain=c, exact_derivative=False)), f"1/rms off by a factor {c:.6g}",
                          evidence={"gain": c}, free=1)
    exact = general(a)[0]
    with np.errstate(all="ignore"):
        ratio = np.where(np.abs(exact) > 1e-300, a.observed / exact, np.nan)
    if not np.isfinite(ratio).any():
        return None
    per_row = np.nanmedian(ratio, axis=a.axes, keepdims=True) if a.axes else ratio
    per_row = np.where(np.isfinite(per_row), per_row, 1.0)
    worst = float(np.max(np.abs(per_row - 1.0)))
    if worst == 0.0 or worst > MAX_RSQRT_ERROR:
        return None
    return Prediction(exact * per_row, f"a constant relative error per row, up to {worst:.2g}",
                      evidence={"relative_error": worst}, free=int(per_row.size))
