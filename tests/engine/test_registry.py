"""The check registry and the adapter contract: meta-tests of the registry's data, the
`inputs_untouched` check on planted in-place kernels, and capabilities derived from overrides."""
import pytest

from conformance.adapter import OPTIONAL, Adapter, capabilities, provides
from conformance.cases.case import parse_case
from conformance.cases.suites import load_suite
from conformance.checks.registry import ALL_CHECKS, BY_NAME, REGISTRY, applicable, checks_for, finding_title
from conformance.diagnosis.diagnose import CLASSES
from tests.engine.inprocess import NUMPY_REFERENCE, by_check, loaded

NORMAL = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"
PROPERTY_CASE = "f32/4x32/ax-1/eps0/normal/rand/s0"
P = "tests.planted.inplace:"


def test_names_are_unique_and_dependencies_run_first():
    assert len(ALL_CHECKS) == len(REGISTRY)
    order = {c.name: k for k, c in enumerate(REGISTRY)}
    for c in REGISTRY:
        for dep in c.after:
            assert order[dep] < order[c.name], f"{c.name} runs before {dep}, which it reads"


def test_every_needed_method_is_an_optional_method_of_the_contract():
    for c in REGISTRY:
        assert c.needs is None or c.needs in OPTIONAL, c.name


def test_every_case_of_the_standard_suite_has_checks():
    for case in load_suite("standard"):
        names = checks_for(case)
        assert names and set(names) <= {c.name for c in applicable(case)} <= set(ALL_CHECKS), case.id


@pytest.mark.parametrize("check", [c for c in REGISTRY if c.diagnoses], ids=lambda c: c.name)
def test_own_diagnoses_have_titles(check):
    for diagnosis_id in check.diagnoses:
        title = finding_title({"id": diagnosis_id, "class": "property", "detail": "x" * 200}, check.name)
        assert title and "{" not in title and len(title) < 200


def test_one_record_per_applicable_check_on_numpy_reference():
    for case in (NORMAL, PROPERTY_CASE, "invalid/epsilon-negative"):
        records = by_check(NUMPY_REFERENCE, case)
        assert set(records) == set(checks_for(parse_case(case))), case
        assert all(r["status"] == "pass" for r in records.values()), case


@pytest.mark.parametrize("ref, array", [(P + "NormalizesXInPlace", "x"), (P + "ScalesDyInPlace", "dy")])
def test_inputs_untouched_catches_an_in_place_kernel(ref, array):
    records = by_check(ref, NORMAL)
    r = records["inputs_untouched"]
    assert r["status"] == "fail" and r["message"].startswith(f"written in place: {array} (")
    assert r["diagnosis"]["id"] == "inputs-modified" and r["diagnosis"]["class"] == "property"
    assert r["finding"] == "property/inputs-modified"
    # The values it returned are right (computed before it wrote): only this check sees the bug.
    assert records["forward"]["status"] == "pass"


def test_a_method_set_back_to_the_base_is_not_provided():
    adapter = loaded(P + "NoGradients")
    assert not provides(adapter, "grad") and "grad" not in capabilities(adapter)
    assert "call_layout" in capabilities(adapter)  # what it inherits and keeps
    records = by_check(P + "NoGradients", PROPERTY_CASE)
    for check, method in (("grad_x", "grad"), ("grad_scale", "grad"), ("jvp", "jvp"), ("hvp", "hvp")):
        r = records[check]
        assert r["status"] == "unsupported" and r["needs"] == method and f"{method}()" in r["message"], check
    assert records["inputs_untouched"]["status"] == "pass"  # runs without gradients too


def test_capabilities_follow_the_overrides_of_a_duck_typed_class():
    class Minimal:  # a user class that is not an Adapter: nothing optional is provided
        def build(self, spec): ...

    assert capabilities(Minimal) == ()
    assert capabilities(Adapter) == ()
    assert set(capabilities(loaded(NUMPY_REFERENCE))) >= {"grad", "jvp", "hvp", "call_layout", "rebuild", "save_load",
                                                          "parameters", "defaults"}


def test_diagnosis_classes_of_the_registry_are_known():
    for c in REGISTRY:
        assert c.family, c.name
    assert "property" in CLASSES and BY_NAME["inputs_untouched"].family == "property"
