"""A plain function f(x, weight, eps) as an adapter: `--adapter mod:fn --function torch|jax|numpy`."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

FN = "tests.planted.functions"


def _records(out):
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [r for r in lines if r.get("record", "result") == "result"]


def test_a_numpy_function_passes_smoke_without_gradients(tmp_path):
    p = run_cli("run", "--suite", "smoke", "--adapter", f"{FN}:numpy_rms_norm", "--function", "numpy", "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASS: no findings" in p.stdout
    records = _records(tmp_path)
    assert {r["adapter"] for r in records} == {"function.numpy.tests.planted.functions.numpy_rms_norm"}
    assert all(r["status"] == "unsupported" for r in records if r["check"] == "grad_x")
    assert any(r["status"] == "pass" and r["check"] == "forward" for r in records)


def test_the_axis_keyword_runs_the_non_trailing_cases(tmp_path):
    p = run_cli("run", "--suite", "smoke", "--adapter", f"{FN}:numpy_rms_norm_axis", "--function", "numpy", "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    trailing_only = {r["case"] for r in _records(tmp_path) if r["status"] == "pass" and r["check"] == "forward"}
    assert any("/ax0/" in c or "/ax1/" in c for c in trailing_only), sorted(trailing_only)


@pytest.mark.frameworks
def test_a_torch_function_passes_smoke_with_autograd(tmp_path):
    p = run_cli("run", "--suite", "smoke", "--adapter", f"{FN}:torch_rms_norm", "--function", "torch", "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    records = _records(tmp_path)
    assert any(r["status"] == "pass" and r["check"] == "grad_x" for r in records)
    assert any(r["status"] == "pass" and r["check"] == "grad_scale" for r in records)


@pytest.mark.frameworks
def test_a_jax_function_runs_with_jax_vjp(tmp_path):
    p = run_cli("run", "--suite", "smoke", "--adapter", f"{FN}:jax_rms_norm", "--function", "jax", "--out", str(tmp_path))
    assert p.returncode in (0, 1), p.stdout + p.stderr
    records = _records(tmp_path)
    assert not [r for r in records if r["status"] == "error"], p.stdout
    grads = [r for r in records if r["check"] in ("grad_x", "grad_scale") and r["status"] != "unsupported"]
    assert grads and all(r["status"] == "pass" for r in grads)
    assert all(r["status"] == "pass" for r in records if r["check"] == "forward" and r["case"].startswith("f64/"))


def test_a_buggy_numpy_function_fails_with_its_diagnosis_in_run_and_pytest(tmp_path):
    ref = f"{FN}:numpy_eps_outside_sqrt"
    p = run_cli("run", "--suite", "smoke", "--adapter", ref, "--function", "numpy", "--out", str(tmp_path / "run"))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "semantics: forward: epsilon is added outside the square root" in p.stdout
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    t = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        "--conformance-adapter", ref, "--conformance-function", "numpy"],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert t.returncode == p.returncode, t.stdout[-3000:]
    assert "\nsemantics: forward/eps-outside-sqrt — epsilon is added outside the square root\n" in t.stdout
    assert "--adapter function:numpy:tests.planted.functions:numpy_eps_outside_sqrt --case" in t.stdout  # rerun


def test_a_function_without_function_kind_is_an_input_error(tmp_path):
    p = run_cli("run", "--suite", "smoke", "--adapter", f"{FN}:numpy_rms_norm", "--out", str(tmp_path))
    assert p.returncode == 2 and "--function" in p.stderr, p.stderr


def test_fuzz_takes_a_function_as_run_does(tmp_path):
    p = run_cli("fuzz", "--adapter", f"{FN}:numpy_eps_outside_sqrt", "--function", "numpy", "--budget", "10",
                "--out", str(tmp_path / "fz"))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "function.numpy.tests.planted.functions.numpy_eps_outside_sqrt:" in p.stdout and "minimal failing case" in p.stdout
    assert "--adapter function:numpy:tests.planted.functions:numpy_eps_outside_sqrt" in p.stdout  # the replay line
