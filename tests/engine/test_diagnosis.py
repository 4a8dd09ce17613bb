"""Diagnosis, in this process: each hypothesis of the catalogue names exactly the planted bug that
declares it (tests/planted/expect.py), on the checks it declares; correct kernels get none.
(tests/harness/test_diagnosis_cli.py shows the CLI gives the same diagnoses.)"""
import pytest

from conformance.cases.suites import smoke, standard
from conformance.diagnosis.hypotheses import CATALOGUE
from tests.engine.inprocess import NUMPY_REFERENCE, by_check, not_passing, run
from tests.planted.diagnosable import NORMAL, TINY
from tests.planted.expect import diagnoses

EXPECTED = diagnoses()
CATALOGUE_IDS = [h.id for h in CATALOGUE]
# Diagnoses the checks give themselves, outside the catalogue (out-dtype, effective-epsilon).
OWN_IDS = sorted({e.diagnosis for e in EXPECTED.values()} - set(CATALOGUE_IDS))
P = "tests.planted.diagnosable:"
CORRECT = "tests.planted.correct:"


def test_every_catalogue_entry_is_planted():
    planted = {e.diagnosis for e in EXPECTED.values()}
    assert set(CATALOGUE_IDS) <= planted


def _assert_planted_bugs_diagnosed(diagnosis: str):
    refs = [ref for ref, e in EXPECTED.items() if e.diagnosis == diagnosis]
    assert refs, f"no planted adapter declares {diagnosis!r}"
    for ref in refs:
        e = EXPECTED[ref]
        for case in e.cases:
            mine = by_check(ref, case)
            for check in e.checks:
                r = mine[check]
                assert r["status"] == "fail", (ref, case, check, r["status"], r["message"])
                assert r["diagnosis"]["id"] == diagnosis, (ref, case, check, r["diagnosis"], r["message"])
                assert r["finding"].split("/")[1] == diagnosis, (ref, case, check, r["finding"])


@pytest.mark.parametrize("diagnosis", CATALOGUE_IDS)
def test_each_hypothesis_names_its_planted_bug(diagnosis):
    _assert_planted_bugs_diagnosed(diagnosis)


@pytest.mark.parametrize("diagnosis", OWN_IDS)
def test_a_planted_bug_a_check_diagnoses_itself_gets_that_diagnosis(diagnosis):
    _assert_planted_bugs_diagnosed(diagnosis)


def test_solved_parameters_are_reported():
    eps = by_check(P + "EpsTimesTen", TINY)["forward"]["diagnosis"]["detail"]
    assert "effective epsilon 0.0001" in eps and "requested 1e-05" in eps
    divisor = by_check(P + "SumNotMean", NORMAL)["forward"]["diagnosis"]["detail"]
    assert "sums instead of averaging" in divisor


def test_a_declared_effective_epsilon_is_scored_and_reported():
    by = by_check(P + "Float32Epsilon", "f64/4x32/ax-1/eps0.1/normal/rand/s0")
    assert by["forward"]["status"] == "pass"  # right against the epsilon it applies
    assert by["parameters"]["status"] == "fail"
    assert by["parameters"]["diagnosis"]["class"] == "parameters"
    assert "epsilon stored as float32: 0.10000000149011612 for 0.1" in by["parameters"]["message"]


# -- correct kernels: other evaluation orders, noise in the last bit, an overflow-safe kernel --------
@pytest.mark.parametrize("kernel", ["Regrouped", "DividesBySqrt", "SequentialSum"])
def test_a_correct_kernel_in_another_evaluation_order_gets_no_diagnosis(kernel):
    assert not not_passing(run(CORRECT + kernel, smoke()))
    # On the whole standard suite: only the reference's own limit (x² overflows), exactly where it has it.
    mine = not_passing(run(CORRECT + kernel, standard()))
    assert mine and {r["diagnosis"]["id"] for r in mine} == {"range"}
    reference = not_passing(run(NUMPY_REFERENCE, standard()))
    assert {(r["case"], r["check"]) for r in mine} == {(r["case"], r["check"]) for r in reference}


def test_an_overflow_safe_kernel_passes_where_the_reference_meets_its_range_limit():
    reference = not_passing(run(NUMPY_REFERENCE, standard()))
    assert reference and {r["diagnosis"]["id"] for r in reference} == {"range"}
    records = run(CORRECT + "OverflowSafe", standard())
    assert records and not not_passing(records), [(r["case"], r["check"], r["message"]) for r in not_passing(records)][:3]
    assert not [r for r in records if "diagnosis" in r]


def test_a_correct_kernel_with_one_ulp_noise_gets_no_diagnosis():
    records = run(P + "OneUlpNoise", smoke())
    # Numerically nothing to find.  The noise is drawn from a seed that is the array's size,
    # so a row's last bit depends on its batch: that, and only that, is a property finding.
    assert records and not [r for r in records if "diagnosis" in r and r["check"] != "batch_invariance"]
    variant = [r for r in records if r["check"] == "batch_invariance" and r["status"] == "fail"]
    assert variant and {r["diagnosis"]["id"] for r in variant} == {"batch-variant"}


# -- diagnoses that hold across a finding's cases ----------------------------------------------------
def test_a_padded_divisor_is_one_finding_per_family_stating_its_law():
    from conformance.reports.findings import findings
    from tests.planted.diagnosable import PADDED_CASES

    records = run(P + "PaddedDivisor", list(PADDED_CASES))
    numeric = [r for r in records if r["check"] in ("forward", "grad_x", "grad_scale")]
    assert numeric and all(r["status"] == "fail" and r["diagnosis"]["id"] == "divisor" for r in numeric)
    found = {f["id"]: f for f in findings(records, lambda r: ("", ""))}
    # The offset form's layer has the same divisor on the cases of one last axis (n = 1 and 16).
    assert set(found) == {"forward/divisor", "gradient/divisor", "offset/divisor"}, sorted(found)
    assert all(pair in found["offset/divisor"]["detail"] for pair in ("1→32", "16→32"))
    for f in (found["forward/divisor"], found["gradient/divisor"]):
        assert f["detail"].startswith("the mean of x² divides by n rounded up to a multiple of 32: "), f["detail"]
        assert all(pair in f["detail"] for pair in ("1→32", "8→32", "16→32", "60→64")), f["detail"]
    assert found["forward/divisor"]["results"] == 4 and found["gradient/divisor"]["results"] == 8
    # Per case, the worker solves that case's divisor only, and records it.
    assert {(r["diagnosis"]["evidence"]["n"], r["diagnosis"]["evidence"]["divisor"]) for r in numeric} == \
        {(1, 32), (8, 32), (16, 32), (60, 64)}


def test_a_kernel_computing_half_in_half_gets_range_and_precision_diagnoses_only():
    cases = [c for c in standard() + smoke() if getattr(c, "dtype", "") in ("float16", "bfloat16")]
    records = [r for r in not_passing(run(P + "HalfInHalf", cases)) if r["check"] in ("forward", "grad_x", "grad_scale")]
    assert {r["check"] for r in records} == {"forward", "grad_x", "grad_scale"}
    wrong = [(r["case"], r["check"], r["diagnosis"]["id"]) for r in records
             if r["diagnosis"]["class"] not in ("range", "precision")]
    assert not wrong, wrong
    assert {r["diagnosis"]["id"] for r in records if r["check"] != "forward"} >= {"lower-precision"}


def test_a_float64_input_overflowing_its_float32_cast_is_no_range_finding_of_float64():
    from tests.planted.diagnosable import Float32Cast

    for r in by_check(P + "Float32Cast", Float32Cast.expect.case).values():
        if r["check"] in ("forward", "grad_x", "grad_scale"):
            assert r["diagnosis"]["class"] == "precision" and "cast to float32" in r["diagnosis"]["detail"]
    # A kernel that computes in float64 meets float64's own range limit there: range, as before.
    reference = by_check(NUMPY_REFERENCE, Float32Cast.expect.case)
    assert {r["diagnosis"]["id"] for r in reference.values() if r["status"] == "fail"} == {"range"}


def _labels(records):
    return [(r["case"], r["check"], r["diagnosis"]) for r in records
            if r.get("diagnosis", {}).get("evidence", {}).get("predicted") is not None]


def test_no_label_contradicts_its_own_evidence():
    """Where a diagnosis names a hypothesis, its prediction at the evidence element is nearer the
    observed value than the formula is (or both are the same NaN/Inf)."""
    import math

    checked = 0
    for ref, e in EXPECTED.items():
        for case, check, d in _labels(run(ref, list(e.cases))):
            ev = d["evidence"]
            got, want, pred = ev["got"], ev["expected"], ev["predicted"]
            if all(map(math.isfinite, (got, want, pred))) and d["id"] not in ("lower-precision", "cast-overflow"):
                assert abs(got - pred) < abs(got - want), (ref, case, check, d)
                checked += 1
            elif not math.isfinite(got):
                assert not math.isfinite(pred) and (math.isnan(got) == math.isnan(pred)), (ref, case, check, d)
    assert checked > 20


# -- the diagnosis never raises ---------------------------------------------------------------------
def _arrays(x, observed, check="forward", axes=(-1,), compute="float32", scale=None):
    import numpy as np

    from conformance.diagnosis.formula import Arrays
    from conformance.spec import canonical_axes

    x = np.asarray(x, np.float64)
    axes = canonical_axes(axes, x.ndim) if x.ndim else ()
    scale = np.ones([x.shape[k] for k in axes]) if scale is None else scale
    return Arrays(x, scale, np.ones_like(x), axes, 1e-6, check, np.asarray(observed, np.float64), compute, compute)


@pytest.mark.parametrize("check", ["forward", "grad_x", "grad_scale"])
@pytest.mark.parametrize("kind", ["rank-0", "empty", "nonfinite", "all-nan-observed", "inf-input"])
def test_the_diagnosis_never_raises(kind, check):
    import numpy as np

    from conformance.diagnosis.diagnose import diagnose
    from conformance.numerics import tolerance
    from conformance.numerics.dtypes import FORMATS
    from conformance.numerics.oracle import oracle

    f32 = FORMATS["float32"]
    x = {"rank-0": np.float64(1.5), "empty": np.zeros((0, 8)), "nonfinite": np.array([[1.0, np.nan, 2.0, 3.0]] * 2),
         "all-nan-observed": np.arange(8.0).reshape(2, 4), "inf-input": np.array([[np.inf, 1.0, -2.0, 0.5]] * 2)}[kind]
    axes = () if kind == "rank-0" else (-1,)
    a = _arrays(x, np.zeros(0), check, axes)
    ref = oracle(a.x, a.scale, a.dy, a.axes, a.eps)
    expected = {"forward": ref.y, "grad_x": ref.dx, "grad_scale": ref.dscale}[check]
    magnitude = None if check == "forward" else {"grad_x": ref.dx_magnitude, "grad_scale": ref.dscale_magnitude}[check]
    observed = np.full(np.shape(expected), np.nan) if kind == "all-nan-observed" else np.asarray(expected) * 1.5 + 1.0
    a = _arrays(x, observed, check, axes)
    tol = tolerance.forward(f32, 4) if check == "forward" else tolerance.grad_x(f32, 4)
    d = diagnose(a, np.asarray(expected), f32, tol, magnitude)
    assert d["id"] and d["class"] and isinstance(d["detail"], str)
    assert "the diagnosis itself failed" not in d["detail"], d  # handled, not only caught


def test_a_failure_inside_the_diagnosis_is_unexplained_with_its_reason(monkeypatch):
    import numpy as np

    from conformance.diagnosis import diagnose as module
    from conformance.numerics import tolerance
    from conformance.numerics.dtypes import FORMATS

    def broken(*args, **kwargs):
        raise IndexError("tuple index out of range")

    monkeypatch.setattr(module, "_best_explaining", broken)
    a = _arrays(np.ones((2, 4)), np.zeros((2, 4)))
    d = module.diagnose(a, np.ones((2, 4)), FORMATS["float32"], tolerance.forward(FORMATS["float32"], 4))
    assert d["id"] == "unexplained" and "IndexError: tuple index out of range" in d["detail"]


def test_evidence_shows_every_digit():
    from conformance.diagnosis.diagnose import Exact, evidence_text
    from conformance.reports.findings import across

    got, want = -3.299999952316284, -3.3000000000000003  # float32's -3.3 against float64's
    d = {"id": "eps-ignored", "class": "parameters", "detail": "", "evidence": {"index": [0], "got": got, "expected": want}}
    ev = across([{"diagnosis": d}], d)["evidence"]
    assert f"{ev['got']:.3g}" == repr(got) and f"{ev['expected']:.3g}" == repr(want)  # as report.md renders it
    assert isinstance(ev["got"], Exact) and ev["got"] == got
    assert repr(got) in evidence_text(d["evidence"]) and repr(want) in evidence_text(d["evidence"])
