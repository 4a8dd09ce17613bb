"""The fused forms, in this process: their oracles against arbitrary precision (mpmath), their checks
on the numpy reference and on planted numpy kernels (tests/planted/fused.py), each planted bug
failing its own checks and no other, and the semantics the checks report."""
import mpmath
import ml_dtypes
import numpy as np
import pytest

from conformance.adapter import Adapter, capabilities
from conformance.cases.case import parse_case
from conformance.cases.suites import smoke, standard
from conformance.checks.fused import applies
from conformance.checks.registry import BY_NAME, REGISTRY
from conformance.diagnosis.fused import OWN
from conformance.numerics.dtypes import FORMATS
from conformance.numerics.fused import (FP8, follows, fp8_round, fp8_units, fused_add, near_boundary,
                                        offset_multipliers, quantized, rounded)
from tests.engine.inprocess import NUMPY_REFERENCE, by_check, not_passing, run
from tests.engine.test_oracle import mp_reference
from tests.planted import fused as planted_fused
from tests.planted.expect import planted

mpmath.mp.dps = 50
F = "tests.planted.fused:"
FUSED_CHECKS = {c.name for c in REGISTRY if c.family in ("fused-add", "offset", "quantized")}
PLANTED = planted(planted_fused)
F16, BF16 = FORMATS["float16"], FORMATS["bfloat16"]


# -- the oracles against mpmath ---------------------------------------------------------------------
def _fp8_grid():
    """Every finite float8_e4m3fn value, from its 256 codes."""
    values = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    return sorted({float(v) for v in values if np.isfinite(v)})


def _mp_fp8(v: float, saturate: bool) -> float:
    """The nearest fp8 value of v in 50 digits, ties to the even code (the last mantissa bit 0)."""
    grid = _fp8_grid()
    x = mpmath.mpf(v)
    if saturate:
        x = max(min(x, mpmath.mpf(448)), mpmath.mpf(-448))
    if abs(x) > 464:  # past the midpoint between 448 and the (absent) 480: no finite value is nearest
        return float("nan")
    best = min(grid, key=lambda g: (abs(x - g), _code(g) & 1))
    return best


def _code(g: float) -> int:
    return int(np.array([g]).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)[0])


def test_fp8_rounding_matches_mpmath_ties_subnormals_and_saturation():
    grid = np.array(_fp8_grid())
    mids = (grid[1:] + grid[:-1]) / 2  # every tie
    rng = np.random.default_rng(0)
    values = np.concatenate([mids, grid, rng.uniform(-500, 500, 300), rng.uniform(-0.02, 0.02, 300),
                             [463.99, 464.0, 464.01, 1e6, -1e6, 2.0**-10, 3 * 2.0**-10, 2.0**-11]])
    for saturate in (True, False):
        got = fp8_round(values, saturate=saturate)
        want = np.array([_mp_fp8(v, saturate) for v in values])
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.array_equal(got[~np.isnan(got)], want[~np.isnan(want)]), saturate
    assert np.isnan(fp8_round([np.nan]))[0] and fp8_round([np.inf])[0] == 448 and np.isnan(fp8_round([np.inf], False))[0]
    # ml_dtypes' own cast agrees (it is what the adapters return).
    assert np.array_equal(fp8_round(np.clip(values, -448, 448)), np.clip(values, -448, 448).astype(FP8.np_dtype).astype(float))


def test_fp8_units_count_steps_of_the_grid():
    assert fp8_units([1.0, 1.125, -0.0, 448.0, np.nan], [1.125, 1.125, 0.0, 416.0, np.nan]).tolist() == [1, 0, 0, 1, 0]
    assert np.isinf(fp8_units([np.nan], [1.0]))[0]
    assert fp8_units([2.0**-9], [-(2.0**-9)])[0] == 2  # across zero
    # Near a boundary: 1.0625 is the midpoint of 1 and 1.125; 1.0 itself is as far as can be.
    assert near_boundary([1.0625 * (1 + 1e-7)], 1e-6)[0] and not near_boundary([1.0], 1e-6)[0]


def test_the_fused_add_oracle_matches_mpmath():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 7)).astype(np.float16)
    res = (4 * rng.standard_normal((3, 7))).astype(np.float16)
    s, dy = rng.uniform(0.5, 1.5, 7), rng.standard_normal((3, 7))
    written, refs = fused_add(x, res, s, dy, (1,), 1e-6, F16)
    exact = [[mpmath.mpf(float(a)) + mpmath.mpf(float(b)) for a, b in zip(ra, rb)] for ra, rb in zip(x, res)]
    assert np.array_equal(written, np.array([[float(v) for v in row] for row in exact]).astype(np.float16).astype(float))
    assert list(refs) == ["float32", "float16"]  # kept in float32 first, then rounded to the input dtype
    for name, summed in (("float32", np.array([[float(v) for v in row] for row in exact])), ("float16", written)):
        y, dx, dscale = mp_reference(summed, s, dy, 1e-6)
        assert np.abs(refs[name].y - y).max() <= 4 * np.spacing(np.abs(y)).max()
        assert np.abs(refs[name].dx - dx).max() <= 8 * 2.0**-53 * refs[name].dx_magnitude.max()


def test_the_offset_oracle_rounds_one_plus_w_where_the_issues_say():
    w = np.array([15.8125, 2.0**-9, -0.99609375, 0.25], dtype=ml_dtypes.bfloat16)
    ms = offset_multipliers(w, 1.0, BF16)
    assert list(ms) == ["float32", "bfloat16"]
    assert ms["float32"].tolist() == [16.8125, 1 + 2.0**-9, 1 - 0.99609375, 1.25]  # exact in float32
    assert ms["bfloat16"].tolist() == [16.75, 1.0, 0.00390625, 1.25]  # vllm#29810: 16.8125 needs 9 bits
    w64 = np.array([-0.95, 2.0**-30])
    ms64 = offset_multipliers(w64, 1.0, FORMATS["float64"])
    assert list(ms64) == ["float64", "float32"] and ms64["float64"][1] == 1 + 2.0**-30 and ms64["float32"][1] == 1.0
    # y = rmsnorm(x) * m against mpmath.
    x, dy = np.array([[0.5, -1.25, 2.0, 0.125]]), np.ones((1, 4))
    y, _, _ = mp_reference(x, ms["float32"], dy, 0.0)
    from conformance.numerics.oracle import oracle

    assert np.abs(oracle(x, ms["float32"], dy, (1,), 0.0).y - y).max() <= 4 * np.spacing(np.abs(y)).max()


def test_the_quantized_oracle_matches_mpmath():
    rng = np.random.default_rng(5)
    x, s = rng.standard_normal((2, 8)), rng.uniform(0.5, 1.5, 8)
    y, _, _ = mp_reference(x, s, np.ones((2, 8)), 1e-6)
    for scale in (0.01, 1.0, 10.0, 2.0**-9):
        scale = float(np.float32(scale))
        want = np.array([_mp_fp8(float(mpmath.mpf(float(v)) / mpmath.mpf(scale)), True) for v in y.ravel()])
        assert np.array_equal(quantized(y, scale).ravel(), want), scale


def test_follows_tells_the_semantics_apart_only_where_the_roundings_differ():
    a = np.linspace(1.0, 2.0, 64)
    b = a * (1 + 2.0**-9)  # a rounding of the input apart
    ra, rb = rounded(a, BF16), rounded(b, BF16)
    assert follows(ra, {"float32": a, "bfloat16": b}, BF16) == "float32"
    assert follows(rb, {"float32": a, "bfloat16": b}, BF16) == "bfloat16"
    noisy = np.where(np.arange(64) % 2, ra, rb)  # half one, half the other: no answer
    assert follows(noisy, {"float32": a, "bfloat16": b}, BF16) is None
    assert follows(ra, {"float32": a, "bfloat16": a}, BF16) is None  # the two coincide
    assert follows(ra, {"float32": a}, BF16) == "float32"


# -- the checks on the numpy reference and on planted kernels ----------------------------------------
def test_the_forms_run_on_the_last_axis_cases_of_every_suite():
    for suite in (smoke(), standard()):
        chosen = [c for c in suite if applies(c)]
        assert len(chosen) >= 16
        assert {c.dtype for c in chosen} >= {"float32", "float16", "bfloat16", "float64"}
        assert all(c.axes == (len(c.shape) - 1,) and c.scale != "zeros" for c in chosen)
    assert not applies(parse_case("f32/2x8x8/ax1/eps1e-06/normal/rand/s0"))  # not the last axis
    assert not applies(parse_case("f32/4x32/ax-1/eps1e-06/huge/rand/s0"))  # a range case: the plain checks'


@pytest.mark.parametrize("suite", ["smoke", "standard"])
def test_the_numpy_reference_passes_every_fused_check(suite):
    cases = smoke() if suite == "smoke" else standard()
    mine = [r for r in run(NUMPY_REFERENCE, cases) if r["check"] in FUSED_CHECKS]
    assert len(mine) == len(FUSED_CHECKS) * sum(applies(c) for c in cases)
    assert all(r["status"] == "pass" for r in mine), [(r["case"], r["check"], r["message"]) for r in mine
                                                       if r["status"] != "pass"][:3]
    # It keeps the sum in float32 (as it declares) and adds 1 + w in float32: where the case tells.
    half = [r for r in mine if r["check"] == "fused_add" and r["dtype"] in ("float16", "bfloat16")]
    assert half and {r["metrics"]["sum_precision"] for r in half} <= {"float32", "indistinguishable"}
    assert "float32" in {r["metrics"]["sum_precision"] for r in half}
    offset = [r for r in mine if r["check"] == "offset_forward" and r["dtype"] in ("float16", "bfloat16")]
    assert "float32" in {r["metrics"]["offset_precision"] for r in offset}


@pytest.mark.parametrize("ref", sorted(PLANTED))
def test_a_planted_fused_bug_fails_its_checks_and_no_other(ref):
    e = PLANTED[ref]
    for case in e.cases:
        mine = by_check(ref, case)
        failing = {c for c, r in mine.items() if r["status"] != "pass"}
        assert failing == set(e.checks), (case, [(c, r["status"], r["message"]) for c, r in mine.items()
                                                 if r["status"] != "pass"])
        for check in e.checks:
            r = mine[check]
            assert r["status"] == "fail" and r["diagnosis"]["id"] == e.diagnosis and r["message"], (case, check, r)
            assert r["finding"] == f"{BY_NAME[check].family}/{e.diagnosis}"


def test_every_own_diagnosis_of_the_fused_forms_is_planted():
    assert set(OWN) <= {e.diagnosis for e in PLANTED.values()}


def test_the_diagnoses_name_what_they_found():
    sum16 = by_check(F + "SumInFloat16", "f16/4x32/ax-1/eps1e-06/normal/rand/s0")["fused_add"]
    assert "rounded to float16" in sum16["diagnosis"]["detail"] and "declares float32" in sum16["diagnosis"]["detail"]
    assert sum16["metrics"]["sum_precision"] == "float16"
    on32 = by_check(F + "SumInFloat16OnFloat32", "f32/4x32/ax-1/eps1e-06/normal/rand/s0")
    assert "computed in float16 for a float32 input" in on32["fused_add"]["diagnosis"]["detail"]
    bf = by_check(F + "OffsetInWeightDtype", "bf16/4x32/ax-1/eps1e-06/normal/rand/s0")["offset_forward"]
    assert bf["metrics"]["offset_precision"] == "bfloat16"
    import re

    m = re.search(r"1 \+ (\S+) = (\S+) \(exact (\S+)\)", bf["diagnosis"]["detail"])  # the weight where it shows most
    w, got, exact = map(float, m.groups())
    assert exact == 1 + w and got == float(np.float64(exact).astype(ml_dtypes.bfloat16)) != exact
    nan = by_check(F + "NoSaturation", "f32/4x32/ax-1/eps1e-06/normal/rand/s0")["quantized"]
    assert "NaN" in nan["message"] and nan["diagnosis"]["evidence"]["expected"] in (448.0, -448.0)


@pytest.mark.parametrize("kernel, semantics", [("RoundedSum", {"float16", "bfloat16"}), ("InPlace", {"float32"})])
def test_the_other_valid_sum_and_the_in_place_form_pass_and_are_reported(kernel, semantics):
    records = run(F + kernel, smoke())
    assert not [r for r in not_passing(records) if r["check"] in FUSED_CHECKS]
    half = {r["metrics"]["sum_precision"] for r in records if r["check"] == "fused_add" and r["dtype"] in ("float16", "bfloat16")}
    assert half - {"indistinguishable"} == semantics


def test_a_kernel_that_quantizes_its_rounded_output_is_one_unit_off_near_boundaries_and_passes():
    class RoundsFirst(planted_fused.NumpyReference):  # vLLM's path: y rounded to the input dtype, then to fp8
        name = "correct-rounds-before-fp8"

        def call_quantized(self, layer, x, scale):
            from conformance.adapters.numpy_reference import normalized

            y, _ = normalized(layer, x.astype(np.float32))
            v = np.clip(y.astype(x.dtype).astype(np.float32) / np.float32(scale), -448, 448)
            return v.astype(ml_dtypes.float8_e4m3fn)

    from conformance.checks.pipeline import evaluate

    adapter = RoundsFirst()
    adapter.load()
    r = {r["check"]: r for r in evaluate(adapter, parse_case("bf16/4x32/ax-1/eps1e-06/normal/rand/s0"))}["quantized"]
    assert r["status"] == "pass" and r["metrics"]["max_fp8_units"] == 1.0, r


class PlainOnly(planted_fused.NumpyReference):
    """The numpy reference with every fused form withdrawn: a plain kernel."""

    name = "plain-only"
    call_fused_add, grad_fused_add = Adapter.call_fused_add, Adapter.grad_fused_add
    build_offset, call_quantized = Adapter.build_offset, Adapter.call_quantized


def test_an_adapter_without_the_forms_gets_unsupported_naming_the_method():
    from conformance.checks.pipeline import evaluate

    assert not {"call_fused_add", "grad_fused_add", "build_offset", "call_quantized"} & set(capabilities(PlainOnly))
    by = {r["check"]: r for r in evaluate(PlainOnly(), parse_case("f32/4x32/ax-1/eps1e-06/normal/rand/s0"))}
    for check in FUSED_CHECKS:
        assert by[check]["status"] == "unsupported" and by[check]["needs"] == BY_NAME[check].needs, by[check]
        assert f"{BY_NAME[check].needs}()" in by[check]["message"]
    assert all(r["status"] == "pass" for c, r in by.items() if c not in FUSED_CHECKS)
