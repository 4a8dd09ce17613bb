"""Input distributions: each a plain function drawing float64 rows for one dtype.

A function receives the generator, the number of rows (slices being normalized),
the row length and the format, and returns a float64 array of shape (rows, n).
Values are rounded once to the case dtype afterwards, so a distribution may
describe its intent in real numbers ("squares overflow the dtype") without
worrying about representability.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from conformance.numerics.dtypes import FloatFormat

Draw = Callable[[np.random.Generator, int, int, FloatFormat], np.ndarray]


def normal(rng, rows, n, fmt):
    return rng.standard_normal((rows, n))


def shifted(rng, rows, n, fmt):
    """Non-zero mean: RMS normalization must not subtract it (unlike LayerNorm)."""
    return 3.0 + rng.standard_normal((rows, n))


def tiny(rng, rows, n, fmt):
    """mean(x^2) ~ 1e-6: the epsilon is of the same order and its placement shows."""
    return 1e-3 * rng.standard_normal((rows, n))


def huge(rng, rows, n, fmt):
    """|x| between 1.5 and 4 times sqrt(max): x**2 overflows the dtype unless upcast."""
    root = np.sqrt(fmt.max)
    return root * rng.uniform(1.5, 4.0, (rows, n)) * rng.choice([-1.0, 1.0], (rows, n))


def near_max(rng, rows, n, fmt):
    """Within a factor 4 of the largest finite value."""
    return fmt.max * rng.uniform(0.25, 1.0, (rows, n)) * rng.choice([-1.0, 1.0], (rows, n))


def subnormal(rng, rows, n, fmt):
    """Every element subnormal in the dtype (below the smallest normal number)."""
    return fmt.tiny * rng.uniform(0.05, 1.0, (rows, n)) * rng.choice([-1.0, 1.0], (rows, n))


def zeros(rng, rows, n, fmt):
    return np.zeros((rows, n))


def constant(rng, rows, n, fmt):
    return np.full((rows, n), 1.5)


def spike(rng, rows, n, fmt):
    """One element 1e2 among values of 1e-2: the RMS is dominated by one term."""
    x = 1e-2 * rng.standard_normal((rows, n))
    x[np.arange(rows), rng.integers(0, max(n, 1), rows)] = 100.0 if n else 0.0
    return x


def mixed(rng, rows, n, fmt):
    """Elements spanning six decades within one row."""
    return rng.standard_normal((rows, n)) * 10.0 ** rng.uniform(-3, 3, (rows, n))


def nonfinite(rng, rows, n, fmt):
    """NaN, +Inf and -Inf planted in the first three rows; other rows stay normal."""
    x = rng.standard_normal((rows, n))
    for row, value in zip(range(min(rows, 3)), (np.nan, np.inf, -np.inf)):
        if n:
            x[row, rng.integers(0, n)] = value
    return x


OUTLIER_CHANNELS = 1 / 256  # the share of a row's channels that are outliers, at least one
OUTLIER_GAIN = (50.0, 100.0)  # how much larger an outlier channel is than the rest


def outliers(rng, rows, n, fmt):
    """LLM-like activations: standard normal, with a few channels (the same columns in every row,
    as a model's outlier features are) 50 to 100 times larger."""
    x = rng.standard_normal((rows, n))
    if n:
        channels = rng.choice(n, max(1, int(n * OUTLIER_CHANNELS)), replace=False)
        x[:, channels] *= rng.uniform(*OUTLIER_GAIN, channels.size)
    return x


DISTRIBUTIONS: dict[str, Draw] = {
    f.__name__: f
    for f in (normal, shifted, tiny, huge, near_max, subnormal, zeros, constant, spike, mixed, nonfinite, outliers)
}


def ones_scale(rng, shape):
    return np.ones(shape)


def rand_scale(rng, shape):
    """Positive and away from 1, as a trained scale looks."""
    return rng.uniform(0.5, 1.5, shape)


def signed_scale(rng, shape):
    return rng.standard_normal(shape)


def zeros_scale(rng, shape):
    return np.zeros(shape)


def trained_scale(rng, shape):
    """N(1, 0.1), as vLLM's kernel tests draw the weight."""
    return 1.0 + 0.1 * rng.standard_normal(shape)


def near_zero_scale(rng, shape):
    """A weight decayed toward zero: N(0, 1e-3)."""
    return 1e-3 * rng.standard_normal(shape)


SCALES = {"ones": ones_scale, "rand": rand_scale, "signed": signed_scale, "zeros": zeros_scale,
          "trained": trained_scale, "near_zero": near_zero_scale}
