"""The float64 oracle against arbitrary precision (mpmath, 50 digits)."""
import mpmath
import numpy as np
import pytest

from conformance.numerics.compare import ulp_error
from conformance.numerics.dtypes import FORMATS
from conformance.numerics.oracle import oracle

mpmath.mp.dps = 50
F64 = FORMATS["float64"]


def mp_reference(x, s, dy, eps):
    """Rows of the last axis, in 50-digit arithmetic."""
    y, dx = np.zeros(x.shape), np.zeros(x.shape)
    dscale = [mpmath.mpf(0)] * x.shape[-1]
    for i in range(x.shape[0]):
        xs = [mpmath.mpf(float(v)) for v in x[i]]
        n = len(xs)
        r = 1 / mpmath.sqrt(sum(v * v for v in xs) / n + mpmath.mpf(eps))
        proj = sum(mpmath.mpf(float(s[j])) * mpmath.mpf(float(dy[i, j])) * xs[j] for j in range(n)) / n
        for j in range(n):
            sj, dyj = mpmath.mpf(float(s[j])), mpmath.mpf(float(dy[i, j]))
            y[i, j] = float(xs[j] * r * sj)
            dx[i, j] = float(r * sj * dyj - xs[j] * r**3 * proj)
            dscale[j] += dyj * xs[j] * r
    return y, dx, np.array([float(v) for v in dscale])


@pytest.mark.parametrize("magnitude", [1.0, 1e-3, 1e150, 1e-160, 1e-310])
@pytest.mark.parametrize("eps", [0.0, 1e-6, 0.5])
def test_oracle_matches_mpmath_within_a_few_ulps(magnitude, eps):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7)) * magnitude
    s, dy = rng.uniform(0.5, 1.5, 7), rng.standard_normal((3, 7))
    ref = oracle(x, s, dy, (1,), eps)
    y, dx, dscale = mp_reference(x, s, dy, eps)
    assert ulp_error(ref.y, y, F64).max() <= 4
    # Gradients are compared relative to their magnitude (cancellation is inherent),
    # floored at the smallest normal number, below which rounding is absolute.
    assert np.array_equal(np.isinf(ref.dx), np.isinf(dx))  # eps = 0, |x| ~ 1e-310: r overflows
    finite = np.isfinite(dx)
    err = np.abs(ref.dx[finite] - dx[finite]) / np.maximum(ref.dx_magnitude, F64.tiny)[finite]
    assert err.max(initial=0) <= 8 * F64.unit_roundoff
    assert (np.abs(ref.dscale - dscale) / np.maximum(ref.dscale_magnitude, F64.tiny)).max() <= 8 * F64.unit_roundoff


def test_oracle_special_rows():
    x = np.array([[0.0, 0.0, 0.0], [1.0, np.inf, 2.0], [1.0, np.nan, 2.0]])
    ref = oracle(x, np.ones(3), np.ones((3, 3)), (1,), 1e-6)
    assert np.array_equal(ref.y[0], [0, 0, 0])  # zero row, eps > 0: zeros
    assert ref.y[1, 0] == 0 and np.isnan(ref.y[1, 1])  # x * rsqrt(inf) = 0; inf * 0 = NaN
    assert np.isnan(ref.y[2]).all()
    assert np.isnan(oracle(np.zeros((1, 3)), np.ones(3), np.ones((1, 3)), (1,), 0.0).y).all()


def test_oracle_multi_axis_equals_flattened():
    rng = np.random.default_rng(2)
    x, dy, s = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4))
    a = oracle(x, s, dy, (1, 2), 1e-5)
    b = oracle(x.reshape(2, 12), s.reshape(12), dy.reshape(2, 12), (1,), 1e-5)
    np.testing.assert_allclose(a.y.reshape(2, 12), b.y, rtol=1e-15)
    np.testing.assert_allclose(a.dscale.reshape(12), b.dscale, rtol=1e-14)
