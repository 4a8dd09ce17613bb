"""The pytest plugin gates as `conformance run` does: the same exit code on the same adapter, suite
and options; failing items carry the finding's diagnosis; and `conformance.check` from Python."""
import subprocess
import sys

import conformance
from tests.conftest import ROOT, run_cli

EPS = "tests.planted.adapters:EpsOutsideSqrt"


def _pytest(tmp_path, *args):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *args],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)


def _run(tmp_path, *args):
    return run_cli("run", "--out", str(tmp_path / "run"), "--overwrite", *args)


def test_correct_kernel_on_standard_exits_0_like_run_and_range_is_xfailed(tmp_path):
    r = _run(tmp_path, "--adapters", "numpy-reference", "--suite", "standard")
    assert r.returncode == 0 and "not gating (range" in r.stdout, r.stdout + r.stderr
    p = _pytest(tmp_path, "--conformance-adapter", "numpy-reference", "--conformance-suite", "standard", "-q", "-rx")
    assert p.returncode == r.returncode, p.stdout[-3000:]
    assert " failed" not in p.stdout.splitlines()[-1] and "xfailed" in p.stdout.splitlines()[-1]
    assert "not gating (range is not in --conformance-fail-on): range: forward/range" in p.stdout
    assert "numpy-reference::f32/" in p.stdout and "::forward" in p.stdout  # node id adapter::case::check


def test_planted_bug_fails_with_its_diagnosis_first_and_a_summary(tmp_path):
    r = _run(tmp_path, "--adapter", EPS, "--suite", "smoke")
    out = tmp_path / "reports"
    p = _pytest(tmp_path, "--conformance-adapter", EPS, "--conformance-out", str(out))
    assert r.returncode == 1 and p.returncode == r.returncode, p.stdout[-3000:]
    lines = p.stdout.splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith("_") and "::forward" in line)
    assert lines[at + 1] == "semantics: forward/eps-outside-sqrt — epsilon is added outside the square root", lines[at:at + 4]
    assert lines[at + 2].startswith("fail: error ") and "ULP" in lines[at + 2]
    assert lines[at + 3].startswith("rerun: ") and f"--adapter {EPS} --case" in lines[at + 3]
    summary = p.stdout[p.stdout.index("= conformance ="):]
    assert "semantics: forward/eps-outside-sqrt — epsilon is added outside the square root [planted-eps-outside] (" in summary
    assert "conformance run exits 1" in summary and f"reports: {out}/" in summary
    assert (out / "report.md").exists() and (out / "results.jsonl").exists()


def test_fail_on_spares_the_class_as_run_does(tmp_path):
    r = _run(tmp_path, "--adapter", EPS, "--suite", "smoke", "--fail-on", "range")
    p = _pytest(tmp_path, "--conformance-adapter", EPS, "--conformance-fail-on", "range", "-q", "-rx")
    assert r.returncode == 0 and p.returncode == 0, p.stdout[-3000:]
    assert "not gating (semantics is not in --conformance-fail-on): semantics: forward/eps-outside-sqrt" in p.stdout


def test_xfail_file_as_run_does(tmp_path):
    xfail = tmp_path / "known.toml"
    xfail.write_text('[[xfail]]\ncase = "*"\nadapter = "planted-eps-*"\nreason = "epsilon is known to be outside"\n')
    r = _run(tmp_path, "--adapter", EPS, "--suite", "smoke", "--xfail", str(xfail))
    p = _pytest(tmp_path, "--conformance-adapter", EPS, "--conformance-xfail", str(xfail), "-q", "-rx")
    assert p.returncode == r.returncode == 0, r.stdout + p.stdout[-3000:]
    assert "known discrepancy (--conformance-xfail): epsilon is known to be outside" in p.stdout


def test_coverage_below_min_coverage_fails_the_session_as_run_does(tmp_path):
    kernel = "examples.my_kernel:MyRMSNorm"  # declines some cases: below 100% coverage
    r = _run(tmp_path, "--adapter", kernel, "--suite", "smoke", "--min-coverage", "1")
    p = _pytest(tmp_path, "--conformance-adapter", kernel, "--conformance-min-coverage", "1", "-q")
    assert r.returncode == 1 and p.returncode == 1, p.stdout[-3000:]
    assert "1 failed" in p.stdout.splitlines()[-1]
    assert "::coverage" in p.stdout and "below --min-coverage 100%" in p.stdout


def test_check_returns_the_verdict_with_its_findings(tmp_path):
    bad = conformance.check(EPS, out=tmp_path / "eps")
    assert bad.failed and "forward/eps-outside-sqrt" in {f["id"] for f in bad.gating}
    f = next(f for f in bad.gating if f["id"] == "forward/eps-outside-sqrt")
    assert f["class"] == "semantics" and f["adapters"] == ["planted-eps-outside"] and "conformance run" in f["rerun"]
    assert (tmp_path / "eps" / "report.md").exists()
    good = conformance.check("numpy-reference")
    assert not good.failed and not good.gating and not good.uncovered
    spared = conformance.check(EPS, fail_on="range")
    assert not spared.failed and spared.other


def test_an_input_run_refuses_ends_the_session_with_2_like_run(tmp_path):
    r = _run(tmp_path, "--adapter", "nosuch.module:Kernel", "--suite", "smoke")
    p = _pytest(tmp_path, "--conformance-adapter", "nosuch.module:Kernel", "-q")
    assert r.returncode == p.returncode == 2, p.stdout[-2000:]
    assert "cannot import module 'nosuch.module'" in p.stdout + p.stderr
