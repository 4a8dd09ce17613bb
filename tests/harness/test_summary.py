"""CI summaries: `run --summary FILE` and `report --summary FILE` write the verdict, defects, findings
table and scoreboard as report.md renders them; without --summary, $GITHUB_STEP_SUMMARY is appended to."""
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

EPS = "tests.planted.adapters:EpsOutsideSqrt"
CASE = "f32/4x32/ax-1/eps1e-05/tiny/rand/s0"  # EpsOutsideSqrt.expect.case


def _cli(*args, summary_env=None):
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    env["PYTHONPATH"] = str(ROOT)
    if summary_env is not None:
        env["GITHUB_STEP_SUMMARY"] = str(summary_env)
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)


def _section(md: str, heading: str) -> str:
    """A '## ' section of a Markdown text, up to the next one."""
    start = md.index(heading)
    end = md.find("\n## ", start + 1)
    return md[start:] if end < 0 else md[start:end]


def test_run_summary_is_the_verdict_defects_findings_and_scoreboard_of_report_md(tmp_path):
    summary = tmp_path / "summary.md"
    out = tmp_path / "run"
    p = _cli("run", "--adapter", EPS, "--case", CASE, "--out", str(out), "--summary", str(summary))
    assert p.returncode == 1, p.stdout + p.stderr
    text, report = summary.read_text(), (out / "report.md").read_text()
    verdict = re.sub(r" \([0-9.]+s\)$", "", p.stdout.splitlines()[0])  # the line run printed, less its time
    assert text.startswith(f"## RMS normalization conformance ({out})\n\n**{verdict}**\n"), text[:300]
    defects = next(line for line in report.splitlines() if line.startswith("## ") and " defect" in line)
    for heading in (defects, "## Scoreboard"):
        assert _section(text, heading).strip() == _section(report, heading).strip()
    table = [line for line in _section(report, "## Findings").splitlines() if line.startswith("|")]
    assert table and [line for line in _section(text, "## Findings").splitlines() if line.startswith("|")] == table
    assert "### " not in _section(text, "## Findings") and "- rerun:" not in _section(text, "## Findings")  # no details
    assert f"wrote {out / 'results.jsonl'}" in p.stdout and str(summary) in p.stdout


def test_github_step_summary_is_appended_to_unless_summary_is_given(tmp_path):
    step = tmp_path / "step.md"
    step.write_text("# earlier step\n")
    for k in (1, 2):
        p = _cli("run", "--adapters", "numpy-reference", "--case", CASE, "--out", str(tmp_path / f"r{k}"),
                 summary_env=step)
        assert p.returncode == 0, p.stdout + p.stderr
    text = step.read_text()
    assert text.startswith("# earlier step\n")
    assert f"## RMS normalization conformance ({tmp_path / 'r1'})" in text
    assert f"## RMS normalization conformance ({tmp_path / 'r2'})" in text and text.count("**PASS: ") == 2
    own = tmp_path / "own.md"
    p = _cli("report", str(tmp_path / "r1"), "--summary", str(own), summary_env=step)
    assert p.returncode == 0 and own.read_text().startswith("## RMS normalization conformance")
    assert step.read_text() == text  # --summary wins: the step summary is left alone
    p = _cli("report", str(tmp_path / "r1"))
    assert p.returncode == 0 and "own.md" not in p.stdout and "step.md" not in p.stdout
    p = _cli("report", str(tmp_path / "r1"), summary_env=tmp_path / "gone" / "step.md")  # the verdict stands
    assert p.returncode == 0 and "warning: cannot append the summary to $GITHUB_STEP_SUMMARY" in p.stderr, p.stderr


@pytest.mark.parametrize("where, says", [("folder", "is a folder"), ("nowhere/summary.md", "does not exist")])
def test_a_summary_that_cannot_be_written_is_one_line_and_exit_2_before_the_run(tmp_path, where, says):
    (tmp_path / "folder").mkdir()
    p = _cli("run", "--adapters", "numpy-reference", "--case", CASE, "--out", str(tmp_path / "never"),
             "--summary", str(tmp_path / where))
    assert p.returncode == 2 and says in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "never").exists()
