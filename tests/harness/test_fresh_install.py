"""The project installed with no extras into a fresh venv runs the numpy function wrapper: a
kernel author's CI that installs only what their framework needs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.frameworks
def test_no_extras_install_runs_a_numpy_function_on_smoke(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt"), str(ROOT)],
                         capture_output=True, text=True)
    if pip.returncode and "Could not find a version" in pip.stderr + pip.stdout:
        pytest.skip(f"the package registry cannot be reached: {pip.stderr.strip().splitlines()[-1:]}")
    assert pip.returncode == 0, pip.stderr[-2000:]
    listed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=freeze"], capture_output=True, text=True)
    assert not {"torch", "jax", "tensorflow-cpu", "keras"} & {line.split("==")[0] for line in listed.stdout.split()}
    work = tmp_path / "mine"
    work.mkdir()
    (work / "my_function.py").write_text((ROOT / "examples" / "my_function.py").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    p = subprocess.run(["conformance", "run", "--suite", "smoke", "--adapter", "my_function:rms_norm", "--function",
                        "numpy", "--out", "out"], cwd=work, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "PASS" in p.stdout + p.stderr
    assert (work / "out" / "report.html").exists() and (work / "out" / "junit.xml").exists()
