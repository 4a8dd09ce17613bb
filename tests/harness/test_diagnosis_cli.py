"""Diagnosis through the CLI: the diagnoses of a run are those of the checks in-process
(tests/engine/test_diagnosis.py); the verdict gates on finding classes and coverage."""
import json

import pytest

from tests.engine.inprocess import by_check
from tests.planted.expect import diagnoses

P = "tests.planted.diagnosable:"
EXPECTED = diagnoses()


def _records(out):
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    return [r for r in lines if r.get("record") == "result"]


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("diagnosis")
    args = ["run", "--out", str(out)]
    for ref in EXPECTED:
        args += ["--adapters", "numpy-reference"] if ref.endswith(":NumpyReference") else ["--adapter", ref]
    for case in sorted({e.case for e in EXPECTED.values()}):
        args += ["--case", case]
    p = run_cli(*args)
    assert p.returncode == 1, p.stderr
    return _records(out)


def _adapter_name(ref: str) -> str:
    from tests.engine.inprocess import loaded

    return loaded(ref).name


def test_the_cli_gives_every_planted_bug_the_diagnoses_of_the_checks_in_process(planted_run):
    for ref, e in EXPECTED.items():
        name = _adapter_name(ref)
        cli = {r["check"]: r for r in planted_run if r["adapter"] == name and r["case"] == e.case}
        here = by_check(ref, e.case)
        assert set(cli) == set(here), (ref, sorted(cli), sorted(here))
        for check in e.checks:
            assert cli[check]["diagnosis"]["id"] == e.diagnosis, (ref, check, cli[check]["message"])
        seen = {c: (r["status"], (r.get("diagnosis") or {}).get("id"), r.get("finding")) for c, r in cli.items()}
        assert seen == {c: (r["status"], (r.get("diagnosis") or {}).get("id"), r.get("finding"))
                        for c, r in here.items()}, ref


def test_numpy_reference_passes_the_standard_suite_unless_range_findings_gate(cli, tmp_path):
    p = cli("run", "--suite", "standard", "--adapters", "numpy-reference", "--out", str(tmp_path / "std"))
    assert p.returncode == 0, p.stdout
    report = json.loads((tmp_path / "std" / "report.json").read_text())
    assert report["findings"] and {f["class"] for f in report["findings"]} == {"range"}  # shown, not gating
    assert "not gating (range" in p.stdout
    again = cli("report", str(tmp_path / "std"), "--fail-on", "all")
    assert again.returncode == 1 and "fail the run (range" in again.stdout


def test_an_adapter_that_declines_every_case_fails_the_run(cli, tmp_path):
    p = cli("run", "--suite", "smoke", "--adapter", P + "DeclinesEverything", "--out", str(tmp_path / "o"))
    assert p.returncode == 1
    assert "planted-declines-everything: no passing result" in p.stdout


def test_min_coverage_raises_the_bar(cli, tmp_path):
    # torch declines non-trailing axes and rank 0: with a high bar, its coverage fails the run.
    p = cli("run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(tmp_path / "o"),
            "--min-coverage", "1")
    assert p.returncode == 0, p.stdout  # numpy runs every check
    p = cli("report", str(tmp_path / "o"), "--min-coverage", "1.5")
    assert p.returncode == 2 and "--min-coverage" in p.stderr


def test_diff_against_the_committed_baseline_names_a_new_finding(cli, tmp_path):
    # The committed baseline's numpy-reference results, as the baseline of a kernel named
    # planted-correct; then that kernel regresses (an approximate rsqrt under the same name).
    from tests.conftest import ROOT

    lines = [json.loads(x) for x in (ROOT / "reports" / "baseline" / "standard.jsonl").read_text().splitlines()]
    mine = [r | {"adapter": "planted-correct"} for r in lines
            if r.get("adapter") == "numpy-reference" and r.get("record") in ("adapter", "result")]
    assert len(mine) > 500
    (tmp_path / "baseline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mine))
    run = cli("run", "--suite", "standard", "--adapter", "tests.planted.adapters:CorrectButSloppy",
              "--out", str(tmp_path / "now"))
    assert run.returncode == 1
    p = cli("diff", str(tmp_path / "baseline.jsonl"), str(tmp_path / "now"))
    assert p.returncode == 1
    assert "new finding: forward: the reciprocal square root is approximate [planted-correct]" in p.stdout
    d = json.loads((tmp_path / "now" / "diff.json").read_text())
    new = {f["id"] for f in d["new_findings"]}
    assert "forward/approximate-rsqrt" in new
    assert "forward/range" not in new  # the kernel's range findings are in the baseline already
    assert "New findings" in (tmp_path / "now" / "diff.md").read_text()
