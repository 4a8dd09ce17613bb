"""The ULP metric on known pairs, and the pass/fail decisions the issue names."""
import ml_dtypes
import numpy as np
import pytest

from conformance.numerics import tolerance
from conformance.numerics.compare import score, ulp_error, ulp_of
from conformance.numerics.dtypes import FORMATS
from conformance.numerics.oracle import oracle

F16, BF16, F32, F64 = (FORMATS[n] for n in ("float16", "bfloat16", "float32", "float64"))


@pytest.mark.parametrize(
    "value, fmt, spacing",
    [
        (1.0, F16, 2.0**-10), (1.0, BF16, 2.0**-7), (1.0, F32, 2.0**-23), (1.0, F64, 2.0**-52),
        (0.0, F16, 2.0**-24), (-0.0, F32, 2.0**-149), (1e-40, F32, 2.0**-149),  # zero and subnormals
        (3.0, BF16, 2.0**-6), (65504.0, F16, 32.0), (1e-45, F64, 2.0**-1074 * 2**0 * 2**(-1022 + 1074 - 1022 + 1022 - 1022)),
    ],
)
def test_ulp_of_known_values(value, fmt, spacing):
    if value == 1e-45 and fmt is F64:  # a normal float64: spacing from frexp
        spacing = 2.0 ** (np.frexp(1e-45)[1] - 1 - 52)
    assert ulp_of(np.float64(value), fmt) == spacing


def test_ulp_error_counts_neighbours():
    for dtype, fmt in ((np.float16, F16), (ml_dtypes.bfloat16, BF16), (np.float32, F32), (np.float64, F64)):
        a = np.array([1.0, 3.5, -7.25], dtype)
        b = np.array([np.nextafter(np.float64(v), np.inf) for v in a.astype(np.float64)])
        if dtype is not np.float64:  # next representable in the narrow format
            b = a.astype(np.float64) + ulp_of(a.astype(np.float64), fmt)
        np.testing.assert_array_equal(ulp_error(b, a.astype(np.float64), fmt), 1.0)
    assert ulp_error(np.float64(-0.0), np.float64(0.0), F32) == 0
    tiny = np.float32(2.0**-149)  # one subnormal step from zero
    assert ulp_error(np.float64(tiny), np.float64(0.0), F32) == 1


def _case(dtype, n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, n)).astype(dtype)
    s = rng.uniform(0.5, 1.5, n).astype(dtype)
    return x, s, oracle(x, s, np.ones_like(x), (1,), 1e-6)


def _forward(result, ref, fmt, dtype_name):
    return score(result, ref.y, fmt, dtype_name, tolerance.forward(fmt, ref.y.shape[-1]), axes=(1,))


@pytest.mark.parametrize("dtype, fmt", [(np.float16, F16), (ml_dtypes.bfloat16, BF16), (np.float32, F32), (np.float64, F64)])
def test_correct_result_nudged_by_one_ulp_passes(dtype, fmt):
    _, _, ref = _case(dtype)
    rounded = ref.y.astype(dtype)
    nudged = (rounded.astype(np.float64) + ulp_of(rounded.astype(np.float64), fmt)).astype(dtype)
    s = _forward(nudged, ref, fmt, fmt.name)
    assert s.status == "pass", s.message
    # ULPs are counted at the reference: rounding (<= 0.5) plus one step of the rounded
    # value, which may lie in the next binade (<= 2).
    assert 1.0 <= s.metrics["max_ulp"] <= 2.5


def test_sloppy_rsqrt_fails_in_float32_but_not_in_float16():
    for dtype, fmt, expected in ((np.float32, F32, "fail"), (np.float16, F16, "pass")):
        x, s, ref = _case(dtype)
        x64 = x.astype(np.float64)
        sloppy = x64 / np.sqrt(np.mean(x64**2, axis=1, keepdims=True) + 1e-6) * (1 + 3e-4) * s.astype(np.float64)
        result = _forward(sloppy.astype(dtype), ref, fmt, fmt.name)
        assert result.status == expected, result.message


def test_float32_output_for_float16_input_fails_the_dtype_check():
    _, _, ref = _case(np.float16)
    s = _forward(ref.y.astype(np.float32), ref, F16, "float16")
    assert s.status == "fail" and "dtype float32" in s.message


def test_nan_where_the_oracle_has_a_number_fails():
    _, _, ref = _case(np.float32)
    y = ref.y.astype(np.float32)
    y[2, 5] = np.nan
    s = _forward(y, ref, F32, "float32")
    assert s.status == "fail" and "NaN/Inf pattern" in s.message and s.metrics["nonfinite_mismatch"] == 1


def test_matching_nan_pattern_and_overflow_to_inf_pass():
    ref = np.array([np.nan, 1.0, 1e6])  # 1e6 overflows float16: expected as +Inf
    result = np.array([np.nan, 1.0, np.inf], np.float16)
    s = score(result, ref, F16, "float16", tolerance.forward(F16, 3))
    assert s.status == "pass", s.message


def test_shape_mismatch_fails():
    _, _, ref = _case(np.float32)
    s = _forward(ref.y[:, :1].astype(np.float32), ref, F32, "float32")
    assert s.status == "fail" and "shape" in s.message


def test_gradient_cancellation_is_not_a_failure():
    # One-element rows: dx = r*s*dy*eps/(x^2+eps) cancels almost entirely.
    x = np.array([[3.0], [-2.0]], np.float32)
    ref = oracle(x, np.ones(1), np.ones((2, 1)), (1,), 1e-6)
    x64 = x.astype(np.float64)
    r = (1 / np.sqrt(x64 * x64 + 1e-6)).astype(np.float32)
    naive = (r * 1 - x * r**3 * x).astype(np.float32)  # float32 evaluation of the formula
    s = score(naive, ref.dx, F32, "float32", tolerance.grad_x(F32, 1), magnitude=ref.dx_magnitude)
    assert s.status == "pass", s.message


def test_an_error_where_the_exact_result_is_zero_fails():
    """0.5 against an exact 0 is ~1e323 ULP of float64: the quotient overflows, and an overflow is
    the largest error there is, never none (it once passed)."""
    f64 = FORMATS["float64"]
    s = score(np.array([0.5, 1.0]), np.array([0.0, 1.0]), f64, "float64", tolerance.forward(f64, 2))
    assert s.status == "fail" and s.metrics["max_ulp"] == np.finfo(np.float64).max
    assert score(np.array([0.0, 1.0]), np.array([0.0, 1.0]), f64, "float64", tolerance.forward(f64, 2)).status == "pass"
