"""--device (issue 12): tested on the CPU; the accelerator path is checked on a GPU machine."""
import json

import pytest

from conformance.execution import devices
from conformance.errors import UsageError

CASE = "f32/4x32/ax-1/eps0/normal/rand/s0"


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_an_absent_accelerator_is_one_line_and_exit_2(cli, tmp_path):
    if devices.probe("torch"):
        pytest.skip("this machine has a CUDA device")
    p = cli("run", "--adapters", "torch", "--case", CASE, "--device", "cuda", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert "--device cuda: torch sees no accelerator" in p.stderr
    assert not (tmp_path / "o").exists()


def test_a_cpu_only_adapter_cannot_be_sent_to_the_accelerator(cli, tmp_path):
    p = cli("run", "--adapters", "numpy-reference", "--case", CASE, "--device", "gpu", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "adapter 'numpy-reference' runs on the CPU only" in p.stderr


def test_auto_falls_back_to_the_cpu_and_every_record_says_where_it_ran(cli, tmp_path):
    if devices.probe("torch") or devices.probe("jax"):
        pytest.skip("this machine has an accelerator")
    out = tmp_path / "o"
    p = cli("run", "--adapters", "torch,flax-nnx,numpy-reference", "--case", CASE, "--device", "auto", "--out", str(out))
    assert p.returncode in (0, 1), p.stderr
    rs = _records(out)
    assert {r["device"] for r in rs if r["record"] in ("result", "adapter")} == {"cpu"}
    assert "; on cpu |" in (out / "report.md").read_text()


def test_placement_rules():
    adapters = {"mine": None, "torch": "torch", "flax-nnx": "jax"}
    assert set(devices.place("cpu", adapters).values()) == {devices.CPU}
    with pytest.raises(UsageError, match="'mine' runs on the CPU only"):
        devices.place("cuda", adapters)
    env = devices.worker_env(devices.Placement("gpu", "H100"), "jax")
    assert env == {"CONFORMANCE_DEVICE": "gpu", "CONFORMANCE_DEVICE_NAME": "H100", "JAX_PLATFORMS": "cuda"}


def test_a_cpu_run_set_against_an_accelerator_run_names_findings_by_device(cli, tmp_path):
    """The diff of runs on two devices: what is new is "only on" the current run's device."""
    cpu = tmp_path / "cpu"
    cli("run", "--adapter", "tests.planted.adapters:Correct", "--case", CASE, "--out", str(cpu))
    other = tmp_path / "other"
    other.mkdir()
    lines = []  # the same adapter, as if run elsewhere, with a finding the CPU run does not have
    for r in _records(cpu):
        if r["record"] == "adapter":
            r["device"] = "cuda (Test GPU)"
        if r["record"] == "result" and r["check"] == "forward":
            r.update(status="fail", message="planted", diagnosis={"id": "eps-ignored", "class": "parameters",
                                                                   "detail": "planted"}, finding="forward/eps-ignored")
        lines.append(json.dumps(r))
    (other / "results.jsonl").write_text("\n".join(lines) + "\n")
    p = cli("diff", str(cpu), str(other), "--out", str(tmp_path / "d"))
    assert p.returncode == 1
    assert "only on cuda (Test GPU): forward: the requested epsilon is ignored" in p.stdout
    assert "## Only on cuda (Test GPU) (1)" in (tmp_path / "d" / "diff.md").read_text()


def test_list_shows_the_devices_each_adapter_can_use(cli):
    p = cli("list")
    assert p.returncode == 0
    rows = {x.split()[1]: x for x in p.stdout.splitlines() if "devices" in x}
    assert "devices cpu,cuda" in rows["torch"] and "devices cpu,gpu" in rows["flax-nnx"]
    assert "devices cpu " in rows["numpy-reference"] and "devices cpu " in rows["keras-torch"]


def test_the_engine_names_no_framework():
    """Framework knowledge (device probes, accelerator and cache variables, thread settings) is
    the adapters' (adapters/_devices.py, adapters/_environment.py): the engine reads it generically."""
    import re
    from pathlib import Path

    framework = re.compile(r"import (torch|jax|tensorflow|keras|onnx|flax|equinox|transformers)|"
                           r"JAX_|XLA_|TORCHINDUCTOR|TF_|KERAS_")
    engine = Path(devices.__file__).resolve().parents[1]
    found = [f"{p.relative_to(engine)}:{n}" for p in sorted(engine.rglob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1) if framework.search(line)]
    assert not found, found
