"""Shared workers that notice poisoned state, on the real frameworks: a user's adapter in the torch
or JAX group that turns flush-to-zero on, changes torch's default dtype, turns JAX's x64 off or
leaves a thread that kills the worker, shares a worker with the built-in (`--share-with-builtins`)
and runs first; the change is attributed to it, and the built-in's records (and its adapter record:
versions, claims, defaults) are those of a run of the built-in alone.  (The harness on numpy
adapters, and that built-ins share with no user adapter by default: tests/harness/test_worker_state.py.)"""
import pytest

from conformance.reports.results import change_text
from tests.conftest import run_cli
from tests.harness.test_worker_state import STATE, of, run, without_machine

pytestmark = pytest.mark.frameworks

TORCH_CASES = ("f32/2x4x8/ax-1,-2/eps0/subnormal/signed/s0", "bf16/3x4x5/ax0,1,2/eps0/subnormal/rand/s0",
               "f32/4x1/ax-1/eps0.1/subnormal/rand/s0", "f32/4x32/ax-1/eps1e-06/normal/rand/s0")
JAX_CASES = ("f64/2x4x8/ax-2,-1/eps0.001/subnormal/zeros/s0", "f64/4x32/ax-1/eps1e-05/tiny/ones/s0",
             "f64/16/ax-1/eps1e-06/spike/signed/s0")


@pytest.fixture(scope="module")
def torch_alone(tmp_path_factory):
    return run(run_cli, tmp_path_factory.mktemp("torch") / "alone", "--adapters", "torch",
               cases=TORCH_CASES, suite="standard")


def _caught(tmp_path, builtin: str, alone, planted: str, name: str, says: str, cases) -> None:
    _, alone_results, alone_adapters, _ = alone
    starts, both, adapters, _ = run(run_cli, tmp_path / "both", "--adapters", builtin,
                                    "--adapter", STATE + planted, "--share-with-builtins", first=name, cases=cases,
                                    suite="standard")
    assert of(both, builtin) == alone_results
    assert without_machine(adapters[builtin]) == without_machine(alone_adapters[builtin])
    assert starts == 2
    marked = [r for r in both.values() if r.get("state_changes")]
    assert marked and {r["adapter"] for r in marked} == {name} and len({r["case"] for r in marked}) == 1
    assert says in [change_text(c) for c in marked[0]["state_changes"]]
    assert f"{STATE}{planted} ({name}) changed: " in (tmp_path / "both" / "report.md").read_text()


@pytest.mark.parametrize("planted, name, says", [
    ("TorchFlushesDenormals", "planted-torch-ftz", "flush-to-zero off -> on"),
    ("TorchDefaultsToFloat64", "planted-torch-float64", "torch default dtype torch.float32 -> torch.float64"),
    ("TorchLeavesThread", "planted-torch-thread", "thread 'planted-killer' (daemon) left running"),
])
def test_a_torch_group_poisoner_is_caught_and_torch_keeps_its_records(torch_alone, tmp_path, planted, name, says):
    _caught(tmp_path, "torch", torch_alone, planted, name, says, TORCH_CASES)


def test_jax_x64_turned_off_is_caught_and_flax_nnx_keeps_its_records(tmp_path):
    alone = run(run_cli, tmp_path / "alone", "--adapters", "flax-nnx", cases=JAX_CASES, suite="standard")
    _caught(tmp_path, "flax-nnx", alone, "FlaxX64Off", "planted-flax-x64-off", "jax x64 on -> off", JAX_CASES)
