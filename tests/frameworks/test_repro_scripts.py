"""`conformance repro` for every built-in adapter: the script it writes, run alone, prints the output
hash the adapter printed.  A snippet is the adapter's own functions (adapters/_snippets.py), so
this holds by construction; the test is what keeps it so (a function that reaches for the suite,
a dependency the script lacks, an argument bound otherwise by the adapter and by the script).

The commands run a few at a time: each imports a framework twice (the adapter, then the script).
"""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conformance.adapter import provides
from conformance.adapters import BUILTIN
from conformance.execution.loading import import_adapter

pytestmark = pytest.mark.frameworks
CASE = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"  # trailing axis, rank 2: every built-in supports it


def _repro(name: str, folder: Path) -> dict:
    from tests.conftest import run_cli

    out = folder / name
    p = run_cli("repro", CASE, "--adapter", name, "--out", str(out), timeout=300)
    got = {"repro": p}
    if p.returncode == 0 and "sha256 " in p.stdout:
        # As a stranger runs it: isolated mode, none of this project's environment.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
        got["script"] = subprocess.run([sys.executable, "-I", str(out / "repro.py")], cwd=folder, env=env,
                                       capture_output=True, text=True, timeout=300)
        got["text"] = (out / "repro.py").read_text()
    return got


@pytest.fixture(scope="module")
def repros(tmp_path_factory):
    folder = tmp_path_factory.mktemp("repro")
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        futures = {name: pool.submit(_repro, name, folder) for name in BUILTIN}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", list(BUILTIN))
def test_the_repro_script_prints_the_adapters_output_hash(repros, name):
    got = repros[name]
    p = got["repro"]
    if name == "liger":  # declined on the CPU: Triton's interpreter cannot run the kernel (test_kernel_libraries.py)
        assert p.returncode != 0 and "does not support" in p.stdout + p.stderr and "interpreter" in p.stdout + p.stderr
        return
    assert p.returncode == 0 and "sha256 " in p.stdout, p.stdout + p.stderr
    suite_hash = p.stdout.split("sha256 ")[1].split()[0]
    run = got["script"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"output sha256: {suite_hash}" in run.stdout, run.stdout
    if provides(import_adapter(name), "snippet"):  # numpy and the framework only
        assert "conformance" not in got["text"].split('"""', 2)[2]
