"""`conformance issue`: a draft's inline script, pasted into a file and run as a stranger runs it
(`python -I`, none of this project's environment), prints what the draft quotes; one Keras defect
and one torch defect of the committed baseline.  And `conformance repro` on a small case needs
no inputs.npz and prints its versions."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.commands.issue import printed_of, script_of
from tests.conftest import run_cli

pytestmark = pytest.mark.frameworks
ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "reports" / "baseline" / "standard.jsonl"


def _stranger(script: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    return subprocess.run([sys.executable, "-I", script.name], cwd=script.parent, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("defect, says", [
    ("keras/non-trailing-axes", "keras-team/keras#19642"),
    ("pytorch/eps-different", "pytorch/pytorch#155527"),
])
def test_the_drafts_script_prints_what_the_draft_quotes(tmp_path, defect, says):
    draft = tmp_path / "issue.md"
    p = run_cli("issue", defect, "--from", str(BASELINE), "--out", str(draft), timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    text = draft.read_text()
    assert text.startswith("# ") and f"Already reported as [{says}]" in text
    for part in ("**Environment**", "Python 3.", "**Expected vs got**", "**Other affected configurations**",
                 "**Rerun with the suite**: `conformance run --adapters "):
        assert part in text, part
    folder = tmp_path / "pasted"
    folder.mkdir()
    script = folder / "repro.py"
    script.write_text(script_of(text))
    assert "conformance" not in script.read_text().split('"""', 2)[2]  # numpy and the framework only
    run = _stranger(script)
    assert run.returncode == 0, run.stderr[-3000:]
    quoted = printed_of(text)
    assert run.stdout.splitlines() == quoted, (run.stdout, quoted)
    assert quoted[0].startswith("output: ") and "the float64 formula gives" in quoted[1] and "ULP of" in quoted[1]
    assert quoted[-1].startswith("versions: ") and "python 3." in quoted[-1]


def test_repro_of_a_small_case_needs_no_inputs_file(tmp_path):
    out = tmp_path / "repro"
    p = run_cli("repro", "f32/4x32/ax-1/eps1e-06/normal/rand/s0", "--adapter", "torch", "--out", str(out), timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    suite_hash = p.stdout.split("sha256 ")[1].split()[0]
    (out / "inputs.npz").unlink()
    run = _stranger(out / "repro.py")
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"output sha256: {suite_hash}" in run.stdout
    assert "versions: python 3." in run.stdout and "torch 2." in run.stdout
