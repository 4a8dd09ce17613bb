"""The property checks (issue 12), in this process: each planted violation is caught by its own
check and by no other; the float64 derivative formulas agree with finite differences (and with
torch's autodiff: tests/frameworks/test_derivative_formulas.py)."""

import numpy as np
import pytest

from conformance.checks.properties import hvp_reference, jvp_reference
from conformance.checks.registry import names
from tests.engine.inprocess import run

PROPERTY_CHECKS = names("property")

PLANTED = "tests.planted.properties:"
CASES = ["f32/4x32/ax-1/eps0/normal/rand/s0", "f64/2x8x8/ax1/eps0/normal/rand/s0"]
VIOLATIONS = {
    "BatchVariant": "batch_invariance",
    "EveryOtherCall": "determinism",
    "SignRounding": "sign_symmetry",
    "MagnitudePath": "scale_invariance",
    "IgnoresStrides": "layout",
    "WrongJvp": "jvp",
    "FirstOrderOnly": "hvp",
}


def test_the_reference_with_derivatives_passes_every_property():
    mine = run(PLANTED + "Derivatives", CASES)
    assert {r["check"] for r in mine} >= set(PROPERTY_CHECKS)
    assert all(r["status"] == "pass" for r in mine), [(r["check"], r["message"]) for r in mine if r["status"] != "pass"]


@pytest.mark.parametrize("adapter, check", VIOLATIONS.items())
def test_each_violation_is_caught_by_its_check_and_only_by_it(adapter, check):
    mine = run(PLANTED + adapter, CASES)
    bad = {(r["case"], r["check"]) for r in mine if r["status"] in ("fail", "error")}
    assert bad and {c for _, c in bad} == {check}, sorted(bad)
    for r in mine:
        if r["check"] == check and r["status"] in ("fail", "error"):
            d = r["diagnosis"]
            assert d["class"] == ("crash" if check == "hvp" else "property"), d


def _row_function(x, scale, axes, eps):
    r = 1.0 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
    return x * r * scale


def test_jvp_and_hvp_formulas_agree_with_finite_differences():
    rng = np.random.default_rng(0)
    x, dy, v = (rng.standard_normal((3, 5)) for _ in range(3))
    scale, axes, eps, h = rng.uniform(0.5, 2, 5), (1,), 1e-3, 1e-6
    t, _ = jvp_reference(x, scale, v, axes, eps)
    fd = (_row_function(x + h * v, scale, axes, eps) - _row_function(x - h * v, scale, axes, eps)) / (2 * h)
    np.testing.assert_allclose(t, fd, rtol=1e-7, atol=1e-8)

    def phi(z):  # <dx(z; dy), v>, dx from the oracle's analytic gradient
        from conformance.numerics.oracle import oracle

        return float(np.sum(oracle(z, scale, dy, axes, eps).dx * v))

    hv, _ = hvp_reference(x, scale, dy, v, axes, eps)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (phi(x + e) - phi(x - e)) / (2 * h)
    np.testing.assert_allclose(hv, grad, rtol=1e-6, atol=1e-7)
