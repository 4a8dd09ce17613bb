"""Each check on planted numpy layers, in this process: it fails on a layer with a bug for it (and
no other check does), and passes on the numpy reference.  The property checks, each with its
planted violation: tests/engine/test_properties.py."""
import pytest

from conformance.cases.case import Case
from conformance.cases.suites import smoke
from tests.engine.inprocess import NUMPY_REFERENCE, by_check, run

NORMAL = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"
D, A = "tests.planted.diagnosable:", "tests.planted.adapters:"
# check -> (a planted layer with a bug for it, a case that shows the bug)
BUGS = {
    "forward": (D + "ZeroForNaN", "f32/4x32/ax-1/eps1e-06/nonfinite/rand/s0"),
    "out_dtype": (D + "Float32Out", "f16/4x32/ax-1/eps1e-06/normal/rand/s0"),
    "grad_x": (D + "NoProjection", NORMAL),
    "grad_scale": (D + "DscaleMean", NORMAL),
    "parameters": (D + "Float32Epsilon", "f64/4x32/ax-1/eps0.1/normal/rand/s0"),
    "structure": (A + "FlatScale", "f32/2x4x8/ax-2,-1/eps1e-06/normal/rand/s0"),
    "config_roundtrip": (A + "RebuildDropsEpsilon", "f32/4x32/ax-1/eps1e-05/tiny/rand/s0"),
    "save_load": (A + "SaveLoadLosesScale", NORMAL),
}


# The offset form's checks call the same `call` and `grad` on a layer that applies 1 + w: a bug of
# the forward or backward pass shows there too, and only there.
OFFSET_TWIN = {"forward": {"offset_forward"}, "grad_x": {"offset_grad"}, "grad_scale": {"offset_grad"}}


@pytest.mark.parametrize("check", BUGS)
def test_a_planted_bug_fails_its_check_and_no_other(check):
    ref, case = BUGS[check]
    mine = by_check(ref, case)
    failing = {c for c, r in mine.items() if r["status"] != "pass"}
    assert check in failing and failing - {check} <= OFFSET_TWIN.get(check, set()), \
        [(c, r["status"], r["message"]) for c, r in mine.items() if r["status"] != "pass"]
    assert mine[check]["status"] == "fail" and mine[check]["message"] and mine[check]["diagnosis"]
    # The reference passes every check of the case (it has no `parameters` record: it declares
    # no effective parameters, so the requested ones are those it applies).
    reference = by_check(NUMPY_REFERENCE, case)
    assert reference and all(r["status"] == "pass" for r in reference.values())
    assert set(reference) == set(mine) - {"parameters"}


def test_a_declared_effective_epsilon_that_is_the_requested_one_passes():
    # 0.5 is exactly a float32: stored as float32, it is the epsilon requested.
    by = by_check(D + "Float32Epsilon", "f64/4x32/ax-1/eps0.5/normal/rand/s0")
    assert by["parameters"]["status"] == "pass" and by["forward"]["status"] == "pass"


@pytest.mark.parametrize("adapter, check, says", [
    ("RebuildDropsEpsilon", "config_roundtrip", "configuration differs in ['epsilon']"),
    ("SaveLoadLosesScale", "save_load", "parameters differ"),
])
def test_planted_configuration_bugs_are_caught(adapter, check, says):
    records = run(A + adapter, smoke())
    mine = [r for r in records if r["check"] == check]
    assert mine
    # Cases whose epsilon is the default cannot show a dropped epsilon; the others must fail.
    failing = [r for r in mine if r["status"] == "fail"]
    assert failing and all(says in r["message"] for r in failing)
    assert all(r["status"] == "pass" for r in records if r["check"] in ("forward", "grad_x", "grad_scale"))


def test_correct_adapter_passes_configuration_checks():
    mine = [r for r in run(A + "Correct", smoke()) if r["check"] in ("structure", "config_roundtrip", "save_load")]
    trained = [c for c in smoke() if isinstance(c, Case) and c.scale == "rand"]  # the cases with those checks
    assert len(mine) == 3 * len(trained) and all(r["status"] == "pass" for r in mine)


def test_structure_check_catches_a_flat_scale():
    structure = {r["case"]: r for r in run(A + "FlatScale", smoke()) if r["check"] == "structure"}
    assert structure["f32/2x4x8/ax-2,-1/eps1e-06/normal/rand/s0"]["status"] == "fail"
    assert structure["f32/4x32/ax-1/eps1e-06/normal/rand/s0"]["status"] == "pass"  # 1-D: flat is the same
