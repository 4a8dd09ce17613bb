"""The execution-mode adapters (adapters/modes.py) against their eager twins (issue 12)."""

import pytest

from conformance.adapters import MODE_TWINS, MODES

pytestmark = pytest.mark.frameworks
CASES = ["f32/4x32/ax-1/eps1e-06/normal/rand/s0", "f32/4x32/ax-1/eps0/normal/rand/s0"]


@pytest.fixture(scope="module")
def modes_run(tmp_path_factory):
    from tests.conftest import run_cases

    return run_cases(tmp_path_factory.mktemp("modes"), CASES, "--suite", "modes", "--adapters", "modes")


def test_modes_are_the_execution_modes_and_their_twins():
    assert set(MODES) == set(MODE_TWINS) | set(MODE_TWINS.values())


@pytest.mark.parametrize("mode", list(MODE_TWINS))
@pytest.mark.parametrize("check", ["forward", "grad_x", "grad_scale", "determinism", "sign_symmetry"])
def test_each_mode_runs_its_compiled_path_and_passes_where_its_twin_does(modes_run, mode, check):
    for case in CASES:
        twin = modes_run.get((MODE_TWINS[mode], case, check))
        mine = modes_run.get((mode, case, check))
        if twin is None:
            assert mine is None
            continue
        assert mine is not None, (mode, case, check)
        if twin["status"] == "pass":
            assert mine["status"] == "pass", mine["message"]


def test_the_xla_modes_leave_derivative_properties_to_their_compiled_path(modes_run):
    for check in ("jvp", "hvp"):  # withdrawn (`jvp = Adapter.jvp`): not provided, whatever the case
        r = modes_run[("tensorflow-xla", CASES[1], check)]
        assert r["status"] == "unsupported" and f"{check}()" in r["message"], r
        assert modes_run[("tensorflow", CASES[1], check)]["status"] == "pass"
