"""The kernels suite: its sizes and thresholds, numerics that scale to them, batch invariance at
real launch sizes, and properties for a kernel that refuses epsilon 0."""
import math

import numpy as np
import pytest

from conformance.cases.case import MAX_ELEMENTS, Case
from conformance.cases.dimensions import KERNEL_HIDDEN, KERNEL_TOKENS, LAUNCH_PAIRS
from conformance.cases.suites import kernels, smoke, standard
from conformance.numerics import oracle as oracle_module
from conformance.numerics.compare import ulp_of
from conformance.numerics.dtypes import FORMATS
from tests.engine.inprocess import NUMPY_REFERENCE, by_check

P = "tests.planted.kernels:"


def test_the_kernels_suite_holds_every_size_and_threshold():
    cases = [c for c in kernels() if isinstance(c, Case)]
    tokens = {c.shape[0] for c in cases}
    hidden = {c.shape[-1] for c in cases if len(c.shape) == 2}
    assert set(KERNEL_TOKENS) <= tokens and set(KERNEL_HIDDEN) <= hidden
    assert {c.shape[1] for c in cases if len(c.shape) == 3} == {4, 7, 16}  # QK-norm heads
    assert {c.shape[2] for c in cases if len(c.shape) == 3} == {64, 128, 256}  # head_dim
    assert {"float16", "bfloat16", "float32", "mixed_float16", "mixed_bfloat16"} == {c.dtype for c in cases}
    assert {"outliers", "spike", "huge", "subnormal"} <= {c.distribution for c in cases}
    assert {"trained", "near_zero"} <= {c.scale for c in cases}
    assert any(c.dtype == "float32" and c.shape[-1] >= 16384 and c.distribution == "spike" for c in cases)
    launches = {c.shape[0] for c in cases if c.distribution == "normal" and c.scale == "rand"}
    assert {t for pair in LAUNCH_PAIRS for t in pair} <= launches
    assert max(math.prod(c.shape) for c in cases) == 1 << 25  # 4096 x 8192, beyond the old limit


def test_the_element_limit_holds_kernel_sizes_and_refuses_beyond():
    Case((4096, 16384), (-1,), "float32", 1e-6)
    assert MAX_ELEMENTS >= 1 << 26
    with pytest.raises(ValueError, match="beyond the suite's limits"):
        Case((4096, 16385), (-1,), "float32", 1e-6)


def test_the_standard_and_smoke_suites_keep_their_values():
    """The kernels suite's distributions and scales stay out of the pairwise designs."""
    for suite in (smoke, standard):
        cases = [c for c in suite() if isinstance(c, Case)]
        assert not {c.distribution for c in cases} & {"outliers"}
        assert not {c.scale for c in cases} & {"trained", "near_zero"}


@pytest.mark.parametrize("shape,axes", [((300, 4096), (1,)), ((4, 300, 1024), (2,)), ((2, 600, 1024), (0, 2))])
def test_the_oracle_in_row_blocks_is_the_oracle(shape, axes, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape)
    scale = rng.uniform(0.5, 1.5, [shape[a] for a in axes])
    blocked = oracle_module.oracle(x, scale, dy, axes, 1e-6)
    monkeypatch.setattr(oracle_module, "BLOCK_ELEMENTS", 1 << 30)
    whole = oracle_module.oracle(x, scale, dy, axes, 1e-6)
    for field in ("y", "dx", "dx_magnitude"):
        assert np.array_equal(getattr(blocked, field), getattr(whole, field)), field
    # dscale's sums are added block by block: float64 rounding of the order, against its magnitude
    assert np.all(np.abs(blocked.dscale - whole.dscale) <= 1e-13 * whole.dscale_magnitude)
    np.testing.assert_allclose(blocked.dscale_magnitude, whole.dscale_magnitude, rtol=1e-13)



@pytest.mark.parametrize("order", [("y", "dx", "dscale"), ("dscale", "dx", "y"), ("dx", "dscale")])
def test_the_oracles_kept_statistics_and_partial_sums_give_the_bits_of_a_fresh_oracle(order):
    """Each block's row statistics, kept by the first field asked for, and dscale's partial sums,
    added by the dx pass: whichever order the checks ask in, the values of a fresh oracle per field."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((600, 4096)) * np.exp(rng.standard_normal((600, 1)) * 20)).astype(np.float32)
    dy, scale = rng.standard_normal(x.shape), rng.uniform(0.5, 1.5, 4096)
    shared = oracle_module.Oracle(x, scale, dy, (1,), 1e-6)
    assert len(shared.blocks) > 1
    for field in order:
        fresh = oracle_module.Oracle(x, scale, dy, (1,), 1e-6)
        if field == "dscale":
            assert all(np.array_equal(a, b) for a, b in zip(shared.dscale(), fresh.dscale()))
            continue
        for got, want in zip((shared.blocked(field).at(b) for b in shared.blocks),
                             (fresh.blocked(field).at(b) for b in fresh.blocks)):
            assert all(a is b or np.array_equal(a, b) for a, b in zip(got, want)), field


@pytest.mark.parametrize("rows,n", [(16, 16384), (3, 5125), (300, 769), (1100, 111)])
@pytest.mark.parametrize("lanes", [1, 8])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_a_sequential_sum_is_the_loop_of_one_accumulator_per_lane(rows, n, lanes, dtype):
    """sequential-sum's prediction: element k added to lane k mod lanes, each partial sum rounded to
    the format, then the lanes added in order (the loop a vectorized kernel runs), whichever way
    precision.py evaluates it."""
    from conformance.diagnosis.formula import Arrays
    from conformance.diagnosis.precision import _sequential_sumsq

    ct = FORMATS[dtype].np_dtype
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((rows, n)) * np.exp(rng.standard_normal((rows, n)) * 2)).astype(ct).astype(np.float64)
    a = Arrays(x, np.ones(n), x, (1,), 1e-6, "forward", x, dtype, dtype)
    want = np.zeros(rows)
    with np.errstate(over="ignore"):  # float16's squares and running sums overflow to Inf, as a kernel's do
        sq = (x.astype(ct) * x.astype(ct)).astype(ct)
        for i in range(rows):
            acc = [ct.type(0)] * lanes
            for k in range(n):
                acc[k % lanes] = ct.type(acc[k % lanes] + sq[i, k])
            total = acc[0]
            for lane in acc[1:]:
                total = ct.type(total + lane)
            want[i] = float(total)
    assert np.array_equal(_sequential_sumsq(a, ct, lanes).reshape(rows), want)


def test_ulp_from_exponent_bits_is_the_binade_spacing():
    values = np.array([0.0, -0.0, 1.0, 0.75, -2.5, 65504.0, 70000.0, 3e38, 1e300, 1e-45, 6e-8, 1e-310, 5e-324,
                       2.0**-1022, 2.0**-14, 2.0**-126])
    for fmt in FORMATS.values():
        got = ulp_of(values, fmt)
        a = np.abs(values)
        _, e = np.frexp(a)
        want = np.ldexp(1.0, np.where(a == 0, fmt.emin, np.clip(e - 1, fmt.emin, fmt.emax)) - fmt.digits + 1)
        assert np.array_equal(got, want), fmt.name
        assert ulp_of(1.0, fmt) == 2.0 ** (1 - fmt.digits)


def test_a_large_case_is_diagnosed_on_a_sample_of_its_rows():
    mine = by_check("tests.planted.diagnosable:EpsIgnored", "f32/300x4096/ax-1/eps1e-05/tiny/rand/s0")
    r = mine["forward"]
    assert r["status"] == "fail" and r["diagnosis"]["id"] == "eps-ignored", r["diagnosis"]
    assert "of 300 rows" in r["diagnosis"]["sampled"]
    i, j = r["diagnosis"]["evidence"]["index"]  # in the case's own coordinates
    assert 0 <= i < 300 and 0 <= j < 4096
    dscale = mine["grad_scale"]
    if dscale["status"] == "fail":  # dscale sums every row: the own-format hypotheses only, and it says so
        assert "only the range, precision and special-value hypotheses" in dscale["diagnosis"]["detail"]


def test_a_large_cases_dscale_gets_its_range_diagnosis():
    r = by_check(NUMPY_REFERENCE, "f32/989x3584/ax-1/eps1e-05/huge/near_zero/s0")["grad_scale"]
    assert r["status"] == "fail" and r["diagnosis"]["id"] == "range", r["diagnosis"]


def test_batch_invariance_compares_the_launch_sizes_of_the_suite():
    r = by_check(P + "BlockSizeChanges", "bf16/255x4096/ax-1/eps1e-05/normal/rand/s0")["batch_invariance"]
    assert r["status"] == "fail" and r["message"].startswith("300 along axis 0 (the case has 255)"), r["message"]
    assert r["metrics"]["batch_sizes"] == [300]
    fine = by_check(NUMPY_REFERENCE, "bf16/255x4096/ax-1/eps1e-05/normal/rand/s0")["batch_invariance"]
    assert fine["status"] == "pass" and fine["metrics"]["batch_sizes"] == [300]


def test_a_kernel_refusing_epsilon_zero_still_gets_the_properties():
    case = "f32/4x32/ax-1/eps1e-05/normal/rand/s0"
    mine = by_check(P + "RefusesEpsilonZero", case)
    for check in ("batch_invariance", "determinism", "sign_symmetry", "layout"):
        assert mine[check]["status"] == "pass", (check, mine[check])
    assert "scale_invariance" not in mine  # exact only with epsilon 0
    assert by_check(P + "RefusesEpsilonZero", "f32/4x32/ax-1/eps0/normal/rand/s0")["forward"]["status"] == "unsupported"


def test_row_strided_inputs_are_a_layout():
    r = by_check(NUMPY_REFERENCE, "f32/4x32/ax-1/eps1e-05/normal/rand/s0")["layout"]
    assert r["status"] == "pass" and "row-strided" in r["metrics"]["layouts"]


def test_a_one_lane_float32_sum_fails_the_long_spiky_rows_and_is_named():
    long_spiky = "f32/83x16384/ax-1/eps1e-06/spike/trained/s0"
    assert long_spiky in {c.id for c in kernels()}
    forward = by_check(P + "SequentialSum", long_spiky)["forward"]
    assert forward["status"] == "fail" and forward["diagnosis"]["id"] == "sequential-sum", forward
    assert by_check(NUMPY_REFERENCE, long_spiky)["forward"]["status"] == "pass"


def test_a_float64_input_summed_in_one_float32_lane_is_named_so():
    """Not an approximate rsqrt (a free factor per row fits anything smooth): the specific sum."""
    forward = by_check(P + "Float32SequentialSum", "f64/2x4096/ax-1/eps1e-06/spike/rand/s0")["forward"]
    assert forward["status"] == "fail" and forward["diagnosis"]["id"] == "sequential-sum", forward["diagnosis"]
    assert "float32 accumulator" in forward["diagnosis"]["detail"]


@pytest.mark.parametrize("axes", [(1,), None])
def test_scoring_in_row_blocks_is_scoring_whole(axes, monkeypatch):
    """The same metrics and the same message (the worst element, the first NaN/Inf mismatch)."""
    from conformance.numerics import compare
    from conformance.numerics.tolerance import Tolerance

    rng = np.random.default_rng(1)
    ref = rng.standard_normal((600, 2048))
    result = (ref * (1 + 1e-6 * rng.standard_normal(ref.shape))).astype(np.float32)
    result[450, 7], result[300, 5], result[590, 3] = np.nan, np.inf, -np.inf  # mismatches in both blocks of 512 rows
    result[580, 9] = 2 * ref[580, 9]  # the worst error, in the second block
    magnitude = np.abs(ref) + 1.0
    fmt = FORMATS["float32"]
    for tol in (Tolerance("ulp", 10.0), Tolerance("units", 10.0)):
        blocked = compare.score(result, ref, fmt, "float32", tol, magnitude=magnitude, axes=axes)
        monkeypatch.setattr(oracle_module, "BLOCK_ELEMENTS", 1 << 30)
        whole = compare.score(result, ref, fmt, "float32", tol, magnitude=magnitude, axes=axes)
        monkeypatch.undo()
        assert blocked == whole and "in 3 element(s), first at [300, 5]" in blocked.message, blocked.message
        assert "at [580, 9]" in blocked.message
