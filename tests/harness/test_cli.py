"""End to end: the CLI on the smoke suite with the numpy reference and planted user adapters."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conformance.cases.suites import smoke
from conformance.numerics.dtypes import PRECISIONS
from conformance.checks.registry import REGISTRY, names

PROPERTY_CHECKS = names("property")

import pytest

PLANTED = "tests.planted.adapters:"


def records(out):
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [r for r in lines if r["record"] == "result"]


def test_correct_user_adapter_passes(cli, tmp_path):
    out = tmp_path / "ok"
    p = cli("run", "--suite", "smoke", "--adapter", PLANTED + "Correct", "--out", str(out), "--jobs", "2")
    assert p.returncode == 0, p.stderr
    rs = records(out)
    assert rs and all(r["status"] == "pass" for r in rs)
    fused_forms = {c.name for c in REGISTRY if c.family in ("fused-add", "offset", "quantized")}  # numpy-reference's
    assert {r["check"] for r in rs} == {"forward", "out_dtype", "grad_x", "grad_scale", "structure", "config_roundtrip", "save_load",
                                        "invalid_config", "inputs_untouched", *PROPERTY_CHECKS, *fused_forms}
    assert "PASS" in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["failures"] == []


@pytest.mark.parametrize("adapter", ["SloppyRsqrt", "EpsOutsideSqrt"])
def test_buggy_user_adapter_is_reported(cli, tmp_path, adapter):
    out = tmp_path / "bad"
    p = cli("run", "--suite", "smoke", "--adapter", PLANTED + adapter, "--out", str(out))
    assert p.returncode == 1, p.stderr
    failed = [r for r in records(out) if r["status"] == "fail"]
    assert failed and all(r["message"] for r in failed)
    md = (out / "report.md").read_text()
    findings = json.loads((out / "report.json").read_text())["findings"]
    assert {r["finding"] for r in failed} <= {f["id"] for f in findings}  # every failure belongs to a finding
    assert all(f"`{f['id']}`" in md and f["smallest"]["case"] in md for f in findings)
    assert "--adapter tests.planted.adapters:" in md
    if adapter == "SloppyRsqrt":  # float32 and float64 fail; the half formats cannot see 3e-4
        assert {r["dtype"] for r in failed} == {"float32", "float64"}


def test_rerun_command_reruns_one_case(cli, tmp_path):
    out = tmp_path / "bad"
    cli("run", "--suite", "smoke", "--adapter", PLANTED + "SloppyRsqrt", "--out", str(out))
    failure = json.loads((out / "report.json").read_text())["failures"][0]
    # As printed, in a shell, from another folder: the command says where the user's module is.
    assert failure["rerun"].startswith("PYTHONPATH=")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for _ in range(2):  # twice: a rerun replaces its own previous rerun
        p = subprocess.run(["bash", "-c", failure["rerun"]], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert p.returncode == 1, p.stderr
    assert {r["case"] for r in records(tmp_path / "out" / "rerun")} == {failure["case"]}


def test_crashing_worker_costs_one_case(cli, tmp_path):
    out = tmp_path / "crash"
    p = cli("run", "--suite", "smoke", "--adapter", PLANTED + "CrashOnHalf", "--out", str(out), "--jobs", "1")
    assert p.returncode == 1
    rs = records(out)
    errors = [r for r in rs if r["status"] == "error"]
    half = {r["case"] for r in rs if PRECISIONS[r["dtype"]].compute.name == "float16"}  # f16 and df16
    assert errors and {r["case"] for r in errors} == half
    assert all("crashed" in r["message"] and "exit code 7" in r["message"] for r in errors)
    assert all(r["status"] == "pass" for r in rs if r["case"] not in half)
    assert len({r["case"] for r in rs}) == len(smoke())  # every case has its records


def test_hanging_case_times_out_and_the_run_goes_on(cli, tmp_path):
    out = tmp_path / "hang"
    p = cli("run", "--suite", "smoke", "--case", "*/4x32/*", "--adapter", PLANTED + "HangOnBfloat16",
            "--out", str(out), "--timeout", "3", "--jobs", "1")
    assert p.returncode == 1
    rs = records(out)
    timed_out = {r["case"] for r in rs if r["status"] == "error"}
    assert timed_out and all(c.split("/")[0] in ("bf16", "dbf16") for c in timed_out)
    assert all("timed out after 3s" in r["message"] for r in rs if r["status"] == "error")
    assert any(r["status"] == "pass" for r in rs)


def test_adapter_that_cannot_load_errors_every_case(cli, tmp_path):
    out = tmp_path / "noload"
    p = cli("run", "--suite", "smoke", "--adapter", PLANTED + "FailsToLoad", "--out", str(out))
    assert p.returncode == 1
    rs = records(out)
    assert rs and all(r["status"] == "error" and "framework_that_does_not_exist" in r["message"] for r in rs)


@pytest.mark.parametrize(
    "args, says",
    [
        (["run", "--adapters", "nosuch"], "unknown built-in adapter 'nosuch'"),
        (["run", "--adapter", "nosuch.module:X"], "cannot import module 'nosuch.module'"),
        (["run", "--adapter", "tests.planted.adapters:Nope"], "has no class 'Nope'"),
        (["run", "--adapter", "justaname"], "unknown adapter 'justaname'"),
        (["run", "--suite", "nosuch"], "unknown suite 'nosuch'"),
        (["run", "--adapters", "numpy-reference", "--case", "zzz*"], "no case of the suite matches"),
        (["report", "/nonexistent/results.jsonl"], "cannot read results file"),
        (["run", "--jobs", "0", "--adapters", "numpy-reference"], "argument --jobs: '0' must be an integer from 1 to 512"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, says):
    p = cli(*args)
    assert p.returncode == 2
    assert says in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_bad_input_keeps_earlier_results(cli, tmp_path):
    out = tmp_path / "keep"
    assert cli("run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(out)).returncode == 0
    before = (out / "results.jsonl").read_text()
    assert cli("run", "--suite", "smoke", "--adapters", "nosuch", "--out", str(out)).returncode == 2
    assert (out / "results.jsonl").read_text() == before


def test_output_path_that_is_a_file(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    p = cli("run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(f / "x"))
    assert p.returncode == 2 and "not writable" in p.stderr


def test_malformed_results_file(cli, tmp_path):
    f = tmp_path / "results.jsonl"
    f.write_text('{"case": "a"}\nnot json\n')
    p = cli("report", str(f))
    assert p.returncode == 2 and "line 1" in p.stderr


def test_report_regenerates_from_results(cli, tmp_path):
    out = tmp_path / "r"
    cli("run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(out))
    (out / "report.md").unlink()
    p = cli("report", str(out))
    assert p.returncode == 0 and (out / "report.md").exists()


def test_the_readme_example_adapter_passes_through_the_cli(cli, tmp_path):
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "my_kernel.py").read_text()
    assert example[example.index("import numpy as np"):] in readme  # the README shows this very file
    p = cli("run", "--suite", "smoke", "--adapter", "examples.my_kernel:MyRMSNorm", "--out", str(tmp_path / "o"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASS: no findings" in p.stdout


def test_show_writes_a_cases_arrays_and_the_oracle(cli, tmp_path):
    import numpy as np

    from conformance.cases.case import materialize, parse_case

    case = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"
    p = cli("show", case, "--out", str(tmp_path / "c.npz"))
    assert p.returncode == 0, p.stderr
    data = np.load(tmp_path / "c.npz")
    arrays = materialize(parse_case(case))
    assert np.array_equal(data["x"], arrays.x) and data["y"].shape == (4, 32)
    assert "y (oracle)" in p.stdout
    p = cli("show", "f32/4x32/ax-1/epsdefault/normal/rand/s0", "--out", str(tmp_path / "d.npz"))
    assert p.returncode == 2 and "--epsilon" in p.stderr
