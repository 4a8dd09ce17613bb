"""Reports and the regression diff, from real runs of planted adapters."""
import json
from xml.etree import ElementTree as ET

PLANTED = "tests.planted.adapters:"


def test_junit_has_one_testcase_per_result(cli, tmp_path):
    out = tmp_path / "r"
    cli("run", "--suite", "smoke", "--adapter", PLANTED + "SloppyRsqrt", "--out", str(out))
    root = ET.parse(out / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 21 * 3
    failed = [c for c in cases if c.find("failure") is not None]
    assert failed and all(c.get("name").endswith(("::forward", "::grad_x", "::grad_scale")) for c in failed)


def test_diff_of_two_identical_runs_is_clean(cli, tmp_path):
    for k in "ab":
        cli("run", "--suite", "smoke", "--adapter", PLANTED + "Correct", "--out", str(tmp_path / k))
    p = cli("diff", str(tmp_path / "a"), str(tmp_path / "b"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "CLEAN" in p.stdout


def test_planted_regression_is_named(cli, tmp_path):
    # Baseline: the correct kernel.  Current: the same adapter name made worse.
    cli("run", "--suite", "smoke", "--adapter", PLANTED + "Correct", "--out", str(tmp_path / "base"))
    cli("run", "--suite", "smoke", "--adapter", PLANTED + "CorrectButSloppy", "--out", str(tmp_path / "cur"))
    p = cli("diff", str(tmp_path / "base"), str(tmp_path / "cur"))
    assert p.returncode == 1
    d = json.loads((tmp_path / "cur" / "diff.json").read_text())
    assert d["regressions"] and all(r["adapter"] == "planted-correct" for r in d["regressions"])
    assert "regression: planted-correct f32/" in p.stdout
    # The other direction is an improvement, not a regression.
    p = cli("diff", str(tmp_path / "cur"), str(tmp_path / "base"), "--out", str(tmp_path / "rev"))
    assert p.returncode == 0
    assert json.loads((tmp_path / "rev" / "diff.json").read_text())["improvements"]


def test_missing_results_are_regressions(cli, tmp_path):
    cli("run", "--suite", "smoke", "--adapter", PLANTED + "Correct", "--out", str(tmp_path / "base"))
    cli("run", "--suite", "smoke", "--case", "f32/*", "--adapter", PLANTED + "Correct", "--out", str(tmp_path / "cur"))
    p = cli("diff", str(tmp_path / "base"), str(tmp_path / "cur"))
    assert p.returncode == 1
    d = json.loads((tmp_path / "cur" / "diff.json").read_text())
    assert {r["current"] for r in d["regressions"]} == {"missing"}


def test_diff_of_unreadable_input_exits_2(cli, tmp_path):
    p = cli("diff", str(tmp_path / "nope"), str(tmp_path / "nope2"))
    assert p.returncode == 2 and "cannot read results file" in p.stderr


def test_defaults_table_shows_each_adapters_epsilon(cli, tmp_path):
    out = tmp_path / "d"
    cli("run", "--suite", "smoke", "--adapter", PLANTED + "Correct", "--out", str(out))
    d = json.loads((out / "report.json").read_text())["defaults"]
    assert d["epsilon"]["planted-correct"]["float32"] == 1e-6
    assert d["output_dtype"]["planted-correct"]["float16"] == "float16"
    assert "## Defaults (observed)" in (out / "report.md").read_text()
