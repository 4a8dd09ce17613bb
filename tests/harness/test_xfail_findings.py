"""xfail entries that name a finding or a defect instead of (or with) a case glob, stale entries
(every result an xpass) and `--strict-xfail` / `--conformance-strict-xfail`, on planted adapters."""
import json

import pytest

from tests.harness.test_pytest_gating import _pytest

EPS = "tests.planted.adapters:EpsOutsideSqrt"
CORRECT = "tests.planted.adapters:Correct"


def _results(out):
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    return [r for r in lines if r.get("record") == "result"]


def _xfail(tmp_path, text):
    path = tmp_path / "known.toml"
    path.write_text(text)
    return str(path)


def test_an_entry_names_a_finding_id(cli, tmp_path):
    xf = _xfail(tmp_path, '[[xfail]]\nfinding = "forward/eps-outside-*"\nreason = "epsilon is outside the sqrt"\n')
    out = tmp_path / "x"
    p = cli("run", "--suite", "smoke", "--adapter", EPS, "--xfail", xf, "--out", str(out))
    assert p.returncode == 1, p.stdout + p.stderr  # the gradient and configuration findings still fail
    records = _results(out)
    known = [r for r in records if r["status"] == "xfail"]
    assert known and all(r["finding"] == "forward/eps-outside-sqrt" for r in known)
    assert all(r["xfail_entry"] == "finding='forward/eps-outside-*' adapter='*' check='*'" for r in known)
    assert not [r for r in records if r.get("finding") == "forward/eps-outside-sqrt" and r["status"] != "xfail"]
    assert [r for r in records if r.get("finding") == "gradient/eps-outside-sqrt" and r["status"] == "fail"]
    report = json.loads((out / "report.json").read_text())
    assert "forward/eps-outside-sqrt" not in {f["id"] for f in report["findings"]}


def test_an_entry_names_a_defect_id_matched_once_the_run_has_ended(cli, tmp_path):
    plain = tmp_path / "plain"
    assert cli("run", "--suite", "smoke", "--adapter", EPS, "--out", str(plain)).returncode == 1
    defects = json.loads((plain / "report.json").read_text())["defects"]
    assert defects
    xf = _xfail(tmp_path, "".join(f'[[xfail]]\nfinding = "{d["id"]}"\nreason = "known: {d["id"]}"\n' for d in defects))
    out = tmp_path / "x"
    p = cli("run", "--suite", "smoke", "--adapter", EPS, "--xfail", xf, "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "matched no result" not in p.stderr
    failing = {(r["case"], r["check"]) for r in _results(plain) if r["status"] in ("fail", "error")
               and any(r.get("finding") in d["findings"] for d in defects)}
    known = {(r["case"], r["check"]): r for r in _results(out) if r["status"] == "xfail"}
    assert failing and set(known) == failing
    assert {r["xfail_reason"] for r in known.values()} == {f"known: {d['id']}" for d in defects}
    # report renders the rewritten results alike
    assert cli("report", str(out)).returncode == 0


def test_a_stale_entry_is_warned_about_and_strict_xfail_fails_the_run_as_pytest_does(cli, tmp_path):
    # The case names a scope where the finding would be: the correct kernel passes there (xpass).
    xf = _xfail(tmp_path, '[[xfail]]\ncase = "f64/*"\nfinding = "forward/eps-outside-sqrt"\nreason = "was wrong once"\n'
                          '[[xfail]]\nfinding = "gradient/nothing"\nreason = "never seen"\n')
    out = tmp_path / "x"
    p = cli("run", "--suite", "smoke", "--adapter", CORRECT, "--xfail", xf, "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    records = _results(out)
    n = sum(r["case"].startswith("f64/") and r["check"] == "forward" for r in records)
    stale = [line for line in p.stderr.splitlines() if "stale xfail entry" in line]
    assert stale == [line for line in stale if "case='f64/*' finding='forward/eps-outside-sqrt'" in line] and len(stale) == 1
    assert f"all {n} of its results pass (xpass)" in stale[0] and n, stale
    assert "warning: xfail entry matched no result: finding='gradient/nothing'" in p.stderr  # a finding entry: no xpass
    xpass = [r for r in records if r["status"] == "xpass"]
    assert len(xpass) == n and {r["check"] for r in xpass} == {"forward"}
    md = (out / "report.md").read_text()
    assert "## Stale xfail entries (1)" in md and "case='f64/*' finding='forward/eps-outside-sqrt'" in md
    strict = cli("run", "--suite", "smoke", "--adapter", CORRECT, "--xfail", xf, "--strict-xfail",
                 "--out", str(tmp_path / "strict"))
    assert strict.returncode == 1 and f"{n} xpass fail the run (--strict-xfail" in strict.stdout, strict.stdout
    assert "xpass (--strict-xfail): planted-correct f64/" in strict.stdout
    # report judges the same results under --strict-xfail alike
    assert cli("report", str(out), "--strict-xfail").returncode == 1
    assert cli("report", str(out)).returncode == 0
    for extra, code in (([], 0), (["--conformance-strict-xfail"], 1)):
        t = tmp_path / f"pytest{len(extra)}"
        t.mkdir()
        q = _pytest(t, "--conformance-adapter", CORRECT, "--conformance-xfail", xf, *extra, "-q")
        assert q.returncode == code, q.stdout[-3000:]
    assert f"{n} failed" in q.stdout.splitlines()[-1] and "[XPASS(strict)] listed as a known discrepancy" in q.stdout


@pytest.mark.parametrize("entry, says", [
    ('finding = ""\nreason = "r"', "`finding` is empty"),
    ('adapter = "x"\nreason = "r"', "needs `case` or `finding` (or both) and `reason`"),
    ('finding = "forward/x"\nreason = "r"\nowner = "x"', "unknown keys: ['owner']"),
])
def test_a_bad_entry_is_one_line_and_exit_2(cli, tmp_path, entry, says):
    p = cli("run", "--adapter", CORRECT, "--xfail", _xfail(tmp_path, f"[[xfail]]\n{entry}\n"),
            "--out", str(tmp_path / "never"))
    assert p.returncode == 2 and says in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "never").exists()
