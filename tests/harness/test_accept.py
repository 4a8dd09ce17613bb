"""Accepted deviations (`run --accept`, `report --accept`, pytest `--conformance-accept`): a
kernel's error beyond the suite's tolerance, within the bound its author declares, does not fail
the run and is listed with its reason and its real error; beyond the bound it fails as usual."""
import json
import xml.etree.ElementTree as ET

import pytest

from tests.harness.test_pytest_gating import _pytest
from tests.planted.diagnosable import ZeroForNaN

SLOPPY = "tests.planted.adapters:SloppyRsqrt"
# Forward ~5000 ULP, gradients ~2000-9000 u: far beyond the tolerance; a middle axis, so that only
# forward, out_dtype, the gradients and the configuration checks run (no last-axis forms).
CASE = "f32/2x8x8/ax1/eps1e-06/normal/rand/s0"
WITHIN = """
[[accept]]
adapter = "planted-sloppy-*"
check = "forward"
max_ulp = 20000
reason = "the approximate rsqrt is 3e-4 off by design"

[[accept]]
adapter = "planted-sloppy-rsqrt"
check = "grad_*"
case = "f32/*"
max_units = 20000
reason = "its gradient inherits the rsqrt's error"
"""
TIGHT = WITHIN.replace("max_units = 20000", "max_units = 10")  # the gradients exceed this bound


def _records(out):
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    return {r["check"]: r for r in lines if r.get("record") == "result"}


def _run(cli, tmp_path, name, *args):
    out = tmp_path / name
    return cli("run", "--adapter", SLOPPY, "--case", CASE, "--out", str(out), *args), out


def test_within_the_bound_is_accepted_listed_with_its_reason_and_real_error(cli, tmp_path):
    plain, plain_out = _run(cli, tmp_path, "plain")
    assert plain.returncode == 1, plain.stdout + plain.stderr
    accept = tmp_path / "accept.toml"
    accept.write_text(WITHIN)
    p, out = _run(cli, tmp_path, "accepted", "--accept", str(accept))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "3 accepted deviation(s) (--accept)" in p.stdout.splitlines()[0]
    before, after = _records(plain_out), _records(out)
    for check in ("forward", "grad_x", "grad_scale"):
        r = after[check]
        assert before[check]["status"] == "fail" and r["status"] == "accepted" and r["original_status"] == "fail"
        # The suite's tolerance and the measured error are those of the run without the list.
        assert r["tolerance"] == before[check]["tolerance"] and r["metrics"] == before[check]["metrics"]
    assert after["forward"]["accept_reason"] == "the approximate rsqrt is 3e-4 off by design"
    assert after["forward"]["accept_bound"] == {"max_ulp": 20000.0}

    report = json.loads((out / "report.json").read_text())
    assert not report["failed"] and not report["findings"] and not report["failures"]
    rows = {r["check"]: r for r in report["accepted"]}
    assert set(rows) == {"forward", "grad_x", "grad_scale"}
    assert rows["forward"]["error"] == after["forward"]["metrics"]["max_ulp"] > rows["forward"]["tolerance"]
    assert rows["grad_x"]["metric"] == "max_units" and rows["grad_x"]["error"] == after["grad_x"]["metrics"]["max_units"]
    md = (out / "report.md").read_text()
    section = md[md.index("## Accepted deviations (3)"):]
    assert "the approximate rsqrt is 3e-4 off by design" in section and "its gradient inherits" in section
    assert f"{after['forward']['metrics']['max_ulp']:.3g} max_ulp" in section
    assert "Accepted deviations (3)" in (out / "report.html").read_text()
    # junit: a passing test case that says it was accepted, and why.
    case = next(c for c in ET.parse(out / "junit.xml").iter("testcase") if c.get("name") == f"{CASE}::forward")
    assert case.find("failure") is None and case.find("error") is None
    assert case.find("properties/property").get("value") == "the approximate rsqrt is 3e-4 off by design"
    assert "accepted deviation" in case.find("system-out").text


def test_beyond_the_bound_fails_as_usual_and_names_the_entry(cli, tmp_path):
    accept = tmp_path / "accept.toml"
    accept.write_text(TIGHT)
    p, out = _run(cli, tmp_path, "tight", "--accept", str(accept))
    assert p.returncode == 1, p.stdout + p.stderr
    records = _records(out)
    assert records["forward"]["status"] == "accepted"
    for check in ("grad_x", "grad_scale"):
        assert records[check]["status"] == "fail" and "finding" in records[check]
        assert "beyond the bound of accept entry #2" in records[check]["accept_exceeded"]
    assert f"beyond an accepted bound: planted-sloppy-rsqrt {CASE} grad_x: max_units " in p.stdout
    assert "## Beyond an accepted bound (2)" in (out / "report.md").read_text()
    assert {f["family"] for f in json.loads((out / "report.json").read_text())["findings"]} == {"gradient"}


def test_a_wrong_nan_pattern_is_never_accepted_whatever_the_bound(cli, tmp_path):
    accept = tmp_path / "accept.toml"
    accept.write_text('[[accept]]\nadapter = "*"\ncheck = "forward"\nmax_ulp = 1e300\nreason = "anything"\n')
    out = tmp_path / "nan"
    p = cli("run", "--adapter", "tests.planted.diagnosable:ZeroForNaN", "--case", ZeroForNaN.expect.case,
            "--out", str(out), "--accept", str(accept))
    assert p.returncode == 1 and _records(out)["forward"]["status"] == "fail", p.stdout + p.stderr


def test_report_judges_a_run_again_with_a_list(cli, tmp_path):
    p, out = _run(cli, tmp_path, "later")
    assert p.returncode == 1
    accept = tmp_path / "accept.toml"
    accept.write_text(WITHIN)
    summary = tmp_path / "summary.md"
    p = cli("report", str(out), "--accept", str(accept), "--summary", str(summary))
    assert p.returncode == 0 and "3 accepted deviation(s)" in p.stdout, p.stdout + p.stderr
    assert "## Accepted deviations (3)" in (out / "report.md").read_text()
    assert "3 accepted deviation(s)" in summary.read_text()
    accept.write_text(TIGHT)  # judged again with another list: the previous acceptances do not stick
    p = cli("report", str(out), "--accept", str(accept))
    assert p.returncode == 1 and "beyond an accepted bound" in p.stdout
    p = cli("report", str(out))  # without a list, the file's own statuses (no acceptance)
    assert p.returncode == 1 and "accepted" not in p.stdout.splitlines()[0]


@pytest.mark.parametrize("entry, says", [
    ('adapter = "a"\ncheck = "forward"\nmax_ulp = 4', "missing ['reason']"),
    ('adapter = "a"\ncheck = "forward"\nmax_ulp = 4\nreason = "r"\nulps = 4', "unknown keys ['ulps']"),
    ('adapter = "a"\ncheck = "forward"\nreason = "r"', "needs a bound, `max_ulp` and/or `max_units`"),
    ('adapter = "a"\ncheck = "forward"\nmax_units = -1\nreason = "r"', "`max_units` must be a finite number >= 0"),
    ('adapter = "a"\ncheck = "forward"\nmax_ulp = 4\nreason = " "', "`reason` is empty"),
    ('adapter = "a"\ncheck = "fwd"\nmax_ulp = 4\nreason = "r"', "`check` 'fwd' matches no check"),
])
def test_a_bad_accept_file_is_one_line_and_exit_2_before_anything_runs(cli, tmp_path, entry, says):
    accept = tmp_path / "accept.toml"
    accept.write_text(f"[[accept]]\n{entry}\n")
    out = tmp_path / "never"
    p = cli("run", "--adapter", SLOPPY, "--case", CASE, "--out", str(out), "--accept", str(accept))
    assert p.returncode == 2 and says in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert not out.exists()
    p = cli("report", str(tmp_path / "never"), "--accept", str(accept))
    assert p.returncode == 2


@pytest.mark.parametrize("accept_text, code", [(WITHIN, 0), (TIGHT, 1)])
def test_pytest_gives_the_exit_code_of_run(cli, tmp_path, accept_text, code):
    accept = tmp_path / "accept.toml"
    accept.write_text(accept_text)
    suite = tmp_path / "one.toml"
    suite.write_text(f'cases = ["{CASE}"]\n')
    r = cli("run", "--adapter", SLOPPY, "--suite", str(suite), "--out", str(tmp_path / "run"), "--accept", str(accept))
    p = _pytest(tmp_path, "--conformance-adapter", SLOPPY, "--conformance-suite", str(suite),
                "--conformance-accept", str(accept), "-q", "-rA")
    assert r.returncode == p.returncode == code, r.stdout + p.stdout[-3000:]
    assert f"PASSED planted-sloppy-rsqrt::{CASE}::forward" in p.stdout
    if code:
        assert "beyond an accepted bound: max_units" in p.stdout
