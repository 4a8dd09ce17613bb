"""`conformance repro` on a user's adapter: a script that imports it; what it cannot reproduce is
refused.  (The frameworks' scripts, which need no suite: tests/frameworks/test_framework_repro.py.)"""
import subprocess
import sys

NORMAL = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"


def test_repro_of_a_user_adapter_without_a_snippet_imports_it(cli, tmp_path):
    p = cli("repro", NORMAL, "--adapter", "tests.planted.adapters:SloppyRsqrt", "--out", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr
    suite_hash = p.stdout.split("sha256 ")[1].split()[0]
    run = subprocess.run([sys.executable, str(tmp_path / "r" / "repro.py")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"output sha256: {suite_hash}" in run.stdout


def test_repro_refuses_what_it_cannot_reproduce(cli, tmp_path):
    p = cli("repro", "invalid/axis-out-of-range", "--adapter", "numpy-reference", "--out", str(tmp_path / "r"))
    assert p.returncode == 2 and "invalid configuration" in p.stderr
    p = cli("repro", "f32/2x8x8/ax1/eps1e-06/normal/rand/s0", "--adapter", "torch", "--out", str(tmp_path / "t"))
    assert p.returncode == 1 and "does not support" in p.stdout
