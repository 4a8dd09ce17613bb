"""`conformance issue`: its input errors are one line and exit 2, before any framework loads."""
from pathlib import Path

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "reports" / "baseline" / "standard.jsonl"


def test_an_unknown_id_a_missing_run_and_an_existing_file_are_input_errors(tmp_path):
    p = run_cli("issue", "keras/no-such-defect", "--from", str(BASELINE), "--out", str(tmp_path / "i.md"))
    assert p.returncode == 2 and "is neither a defect nor a finding" in p.stderr and "keras/" in p.stderr
    p = run_cli("issue", "keras/non-trailing-axes", "--from", str(tmp_path / "nothing"), "--out", str(tmp_path / "i.md"))
    assert p.returncode == 2 and "no results file" in p.stderr
    (tmp_path / "i.md").write_text("mine")
    p = run_cli("issue", "keras/non-trailing-axes", "--from", str(BASELINE), "--out", str(tmp_path / "i.md"))
    assert p.returncode == 2 and "--overwrite" in p.stderr and (tmp_path / "i.md").read_text() == "mine"
