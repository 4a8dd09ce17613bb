"""`conformance repro` on the frameworks: a script that needs only the framework, run as a stranger
runs it, reproduces the adapter's output bits (or its exception) without the suite."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.frameworks


@pytest.mark.parametrize("finding, adapter", [("forward/eps-different", "torch"),
                                              ("forward/scale-wrong-axis", "keras-tensorflow")])
def test_repro_script_reproduces_the_adapters_output_bits_without_the_suite(cli, tmp_path, finding, adapter):
    from conformance.reports.results import load_results
    from tests.conftest import ROOT

    found = {f["id"]: f for f in load_results(ROOT / "reports" / "baseline" / "standard.jsonl").findings}
    f = found[finding]
    assert adapter in f["adapters"]
    case = next(r["case"] for r in f["records"] if r["adapter"] == adapter and r["check"] == "forward")
    out = tmp_path / "repro"
    p = cli("repro", case, "--adapter", adapter, "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    suite_hash = p.stdout.split("sha256 ")[1].split()[0]
    script = (out / "repro.py").read_text()
    assert "conformance" not in script.split('"""', 2)[2]  # no import of this project
    run = _script_output(out / "repro.py", tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"output sha256: {suite_hash}" in run.stdout
    assert "max |y - formula|" in run.stdout


def _script_output(script: Path, cwd: Path) -> subprocess.CompletedProcess:
    """repro.py run as a stranger runs it: isolated mode, none of this project's environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    return subprocess.run([sys.executable, "-I", str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("adapter, case", [
    ("torch-functional", "f16/4x32/ax-1/eps1e-06/normal/rand/s0"),
    ("hf-gemma", "bf16/4x32/ax-1/eps1e-06/normal/rand/s0"),  # the weight is loaded as scale - 1
    ("hf-t5", "dbf16/4x32/ax-1/epsdefault/normal/rand/s0"),
    ("flax-nnx", "dbf16/2x4x8/ax-2,-1/eps1e-06/normal/rand/s0"),
    ("flax-linen", "f32/2x8x8/ax1/eps1e-06/normal/rand/s0"),
    ("equinox", "f32/16/ax-1/eps0.001/subnormal/rand/s0"),
    ("onnx-reference", "f16/16/ax-1/eps1e-06/huge/rand/s0"),
    ("onnxruntime", "f64/16/ax-1/eps1e-06/normal/rand/s0"),
    ("keras-jax", "dbf16/4x32/ax-1/eps1e-06/normal/rand/s0"),
])
def test_every_framework_adapter_writes_a_script_that_needs_only_the_framework(cli, tmp_path, adapter, case):
    out = tmp_path / "repro"
    p = cli("repro", case, "--adapter", adapter, "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    suite_hash = p.stdout.split("sha256 ")[1].split()[0]
    assert "conformance" not in (out / "repro.py").read_text().split('"""', 2)[2]
    run = _script_output(out / "repro.py", tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"output sha256: {suite_hash}" in run.stdout


def test_repro_of_a_crash_writes_a_script_that_raises_the_same(cli, tmp_path):
    """torch's exported bfloat16 graph with a float32 weight: onnxruntime refuses the model."""
    out = tmp_path / "repro"
    p = cli("repro", "dbf16/4x32/ax-1/eps1e-06/normal/rand/s0", "--adapter", "torch-onnx", "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "torch-onnx raises Fail: [ONNXRuntimeError]" in p.stdout
    run = _script_output(out / "repro.py", tmp_path)
    assert run.returncode == 1 and "Type Error: Type (tensor(bfloat16))" in run.stderr
