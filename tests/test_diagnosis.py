"""Diagnosis: each planted bug gets exactly its catalogue entry; correct kernels get none;
the verdict gates on finding classes and coverage."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.diagnosis.hypotheses import CATALOGUE

P = "tests.planted.diagnosable:"
NORMAL = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"
TINY = "f32/4x32/ax-1/eps1e-05/tiny/rand/s0"  # mean(x²) ~ 1e-6: epsilon's placement shows

# planted adapter -> (case, checks that must carry the diagnosis, diagnosis id)
PLANTED = {
    "ZeroForNaN": ("f32/4x32/ax-1/eps1e-06/nonfinite/rand/s0", ("forward",), "special-values"),
    "FlushesSubnormals": ("f32/4x32/ax-1/eps1e-06/subnormal/rand/s0", ("forward",), "subnormals-flushed"),
    "Float32Inside": ("f64/4x32/ax-1/eps1e-06/normal/rand/s0", ("forward",), "lower-precision"),
    "EpsIgnored": (TINY, ("forward",), "eps-ignored"),
    "EpsTimesTen": (TINY, ("forward",), "eps-different"),
    "SumNotMean": (NORMAL, ("forward",), "divisor"),
    "ScaleIgnored": (NORMAL, ("forward",), "scale-ignored"),
    "ScaleOnePlus": (NORMAL, ("forward",), "scale-one-plus"),
    "ScaleOnLastAxis": ("f32/2x8x8/ax1/eps1e-06/normal/rand/s0", ("forward",), "scale-wrong-axis"),
    "ScaleTransposed": ("f32/2x8x8/ax-2,-1/eps1e-06/normal/rand/s0", ("forward",), "scale-transposed"),
    "LastAxisOnly": ("f32/2x4x8/ax-2,-1/eps1e-06/normal/rand/s0", ("forward",), "other-axes"),
    "LayerNorm": (NORMAL, ("forward",), "mean-subtracted"),
    "Float32Out": ("f16/4x32/ax-1/eps1e-06/normal/rand/s0", ("out_dtype",), "out-dtype"),
    "NoProjection": (NORMAL, ("grad_x",), "grad-no-projection"),
    "ProjectionSignFlipped": (NORMAL, ("grad_x",), "grad-projection-sign"),
    "DxIgnoresScale": (NORMAL, ("grad_x",), "grad-scale-ignored"),
    "DscaleMean": (NORMAL, ("grad_scale",), "dscale-mean"),
    "DscaleNoRms": (NORMAL, ("grad_scale",), "dscale-no-rms"),
}
# Planted elsewhere: the eps-outside and sloppy-rsqrt kernels of tests/planted/adapters.py, and
# numpy's own range limit on huge inputs.
ELSEWHERE = {
    "tests.planted.adapters:EpsOutsideSqrt": (TINY, ("forward", "grad_x", "grad_scale"), "eps-outside-sqrt"),
    "tests.planted.adapters:SloppyRsqrt": (NORMAL, ("forward", "grad_x", "grad_scale"), "approximate-rsqrt"),
    "numpy-reference": ("f32/4x32/ax-1/eps1e-06/huge/rand/s0", ("forward", "grad_x", "grad_scale"), "range"),
}


def _records(out):
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    return [r for r in lines if r.get("record") == "result"]


def test_every_catalogue_entry_is_planted():
    planted = {v[2] for v in [*PLANTED.values(), *ELSEWHERE.values()]}
    assert {h.id for h in CATALOGUE} <= planted


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("diagnosis")
    refs = [P + name for name in PLANTED] + [r for r in ELSEWHERE if ":" in r]
    cases = sorted({case for case, _, _ in [*PLANTED.values(), *ELSEWHERE.values()]})
    args = ["run", "--adapters", "numpy-reference", "--out", str(out)]
    for ref in refs:
        args += ["--adapter", ref]
    for case in cases:
        args += ["--case", case]
    p = run_cli(*args)
    assert p.returncode == 1, p.stderr
    return _records(out)


def _adapter_name(ref: str) -> str:
    from conformance.execution.loading import adapter_name, import_adapter

    return adapter_name(import_adapter(ref), ref)


@pytest.mark.parametrize("ref, expectation", [(P + k, v) for k, v in PLANTED.items()] + list(ELSEWHERE.items()),
                         ids=[*PLANTED, *[r.rsplit(":")[-1] for r in ELSEWHERE]])
def test_a_planted_bug_gets_exactly_its_diagnosis(planted_run, ref, expectation):
    case, checks, diagnosis = expectation
    name = _adapter_name(ref)
    mine = {r["check"]: r for r in planted_run if r["adapter"] == name and r["case"] == case}
    for check in checks:
        r = mine[check]
        assert r["status"] == "fail", (check, r["status"], r["message"])
        assert r["diagnosis"]["id"] == diagnosis, (check, r["diagnosis"], r["message"])
        assert r["finding"].split("/")[1] == diagnosis


def test_solved_parameters_are_reported(planted_run):
    by = {(r["adapter"], r["check"]): r for r in planted_run if r["case"] == TINY}
    eps = by[("planted-eps-times-ten", "forward")]["diagnosis"]["detail"]
    assert "effective epsilon 0.0001" in eps and "requested 1e-05" in eps
    divisor = next(r for r in planted_run if r["adapter"] == "planted-sum-not-mean" and r["check"] == "forward"
                   and r["case"] == NORMAL)
    assert "sums instead of averaging" in divisor["diagnosis"]["detail"]


def test_a_correct_kernel_with_one_ulp_noise_gets_no_diagnosis(cli, tmp_path):
    p = cli("run", "--suite", "smoke", "--adapter", P + "OneUlpNoise", "--out", str(tmp_path / "o"))
    rs = _records(tmp_path / "o")
    # Numerically nothing to find.  The noise is drawn from a seed that is the array's size,
    # so a row's last bit depends on its batch: that, and only that, is a property finding.
    assert rs and not [r for r in rs if "diagnosis" in r and r["check"] != "batch_invariance"]
    assert p.returncode == 1 and "batch_invariance: a row's output depends on the batch" in p.stdout


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


@pytest.mark.frameworks
@pytest.mark.parametrize("finding, adapter", [("forward/eps-different", "torch"),
                                              ("forward/scale-wrong-axis", "keras-tensorflow")])
def test_repro_script_reproduces_the_adapters_output_bits_without_the_suite(cli, tmp_path, finding, adapter):
    from conformance.reports.results import load_results
    from tests.conftest import ROOT

    found = {f["id"]: f for f in load_results(ROOT / "reports" / "baseline" / "standard.jsonl").findings}
    f = found[finding]
    assert adapter in f["adapters"]
    case = next(r["case"] for r in f["records"] if r["adapter"] == adapter and r["check"] == "forward")
    out = tmp_path / "repro"
    p = cli("repro", case, "--adapter", adapter, "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    suite_hash = p.stdout.split("sha256 ")[1].split()[0]
    script = (out / "repro.py").read_text()
    assert "conformance" not in script.split('"""', 2)[2]  # no import of this project
    run = _script_output(out / "repro.py", tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"output sha256: {suite_hash}" in run.stdout
    assert "max |y - formula|" in run.stdout


def _script_output(script: Path, cwd: Path) -> subprocess.CompletedProcess:
    """repro.py run as a stranger runs it: isolated mode, none of this project's environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    return subprocess.run([sys.executable, "-I", str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.frameworks
@pytest.mark.parametrize("adapter, case", [
    ("torch-functional", "f16/4x32/ax-1/eps1e-06/normal/rand/s0"),
    ("hf-gemma", "bf16/4x32/ax-1/eps1e-06/normal/rand/s0"),  # the weight is loaded as scale - 1
    ("hf-t5", "dbf16/4x32/ax-1/epsdefault/normal/rand/s0"),
    ("flax-nnx", "dbf16/2x4x8/ax-2,-1/eps1e-06/normal/rand/s0"),
    ("flax-linen", "f32/2x8x8/ax1/eps1e-06/normal/rand/s0"),
    ("equinox", "f32/16/ax-1/eps0.001/subnormal/rand/s0"),
    ("onnx-reference", "f16/16/ax-1/eps1e-06/huge/rand/s0"),
    ("onnxruntime", "f64/16/ax-1/eps1e-06/normal/rand/s0"),
    ("keras-jax", "dbf16/4x32/ax-1/eps1e-06/normal/rand/s0"),
])
def test_every_framework_adapter_writes_a_script_that_needs_only_the_framework(cli, tmp_path, adapter, case):
    out = tmp_path / "repro"
    p = cli("repro", case, "--adapter", adapter, "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    suite_hash = p.stdout.split("sha256 ")[1].split()[0]
    assert "conformance" not in (out / "repro.py").read_text().split('"""', 2)[2]
    run = _script_output(out / "repro.py", tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"output sha256: {suite_hash}" in run.stdout


@pytest.mark.frameworks
def test_repro_of_a_crash_writes_a_script_that_raises_the_same(cli, tmp_path):
    """torch's exported bfloat16 graph with a float32 weight: onnxruntime refuses the model."""
    out = tmp_path / "repro"
    p = cli("repro", "dbf16/4x32/ax-1/eps1e-06/normal/rand/s0", "--adapter", "torch-onnx", "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "torch-onnx raises Fail: [ONNXRuntimeError]" in p.stdout
    run = _script_output(out / "repro.py", tmp_path)
    assert run.returncode == 1 and "Type Error: Type (tensor(bfloat16))" in run.stderr


def test_repro_of_a_user_adapter_without_a_snippet_imports_it(cli, tmp_path):
    p = cli("repro", NORMAL, "--adapter", "tests.planted.adapters:SloppyRsqrt", "--out", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr
    suite_hash = p.stdout.split("sha256 ")[1].split()[0]
    run = subprocess.run([sys.executable, str(tmp_path / "r" / "repro.py")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"output sha256: {suite_hash}" in run.stdout


def test_repro_refuses_what_it_cannot_reproduce(cli, tmp_path):
    p = cli("repro", "invalid/axis-out-of-range", "--adapter", "numpy-reference", "--out", str(tmp_path / "r"))
    assert p.returncode == 2 and "invalid configuration" in p.stderr
    p = cli("repro", "f32/2x8x8/ax1/eps1e-06/normal/rand/s0", "--adapter", "torch", "--out", str(tmp_path / "t"))
    assert p.returncode == 1 and "does not support" in p.stdout


def test_a_declared_effective_epsilon_is_scored_and_reported(cli, tmp_path):
    case = "f64/4x32/ax-1/eps0.1/normal/rand/s0"
    p = cli("run", "--case", case, "--adapter", P + "Float32Epsilon", "--out", str(tmp_path / "o"))
    assert p.returncode == 1
    by = {r["check"]: r for r in _records(tmp_path / "o")}
    assert by["forward"]["status"] == "pass"  # right against the epsilon it applies
    assert by["parameters"]["status"] == "fail"
    assert by["parameters"]["diagnosis"]["class"] == "parameters"
    assert "epsilon stored as float32: 0.10000000149011612 for 0.1" in by["parameters"]["message"]
