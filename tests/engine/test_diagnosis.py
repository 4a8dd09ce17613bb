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
        mine = by_check(ref, e.case)
        for check in e.checks:
            r = mine[check]
            assert r["status"] == "fail", (ref, check, r["status"], r["message"])
            assert r["diagnosis"]["id"] == diagnosis, (ref, check, r["diagnosis"], r["message"])
            assert r["finding"].split("/")[1] == diagnosis, (ref, check, r["finding"])


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
