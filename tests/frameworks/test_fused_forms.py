"""Integration: the fused forms through the built-ins that have them, with the real frameworks.

torch and torch-functional (the fused add and fp8 output written around the layer, the
project's reference module adapters/torch_fused.py), onnxruntime (its contrib operator
SkipSimplifiedLayerNormalization) and hf-gemma (GemmaRMSNorm's native 1 + w) on the fused cases
of `smoke`.  What they do is kept as tests, so that a change upstream shows up.
"""
import json

import pytest

from conformance.cases.suites import smoke
from conformance.checks.fused import applies

pytestmark = pytest.mark.frameworks
ADAPTERS = ("torch", "torch-functional", "onnxruntime", "hf-gemma")
FUSED = {c.id for c in smoke() if applies(c)}
HALF = ("float16", "bfloat16")


@pytest.fixture(scope="module")
def fused_run(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("fused")
    p = run_cli("run", "--suite", "smoke", "--adapters", ",".join(ADAPTERS), "--out", str(out))
    assert p.returncode in (0, 1), p.stderr
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["adapter"], r["case"], r["check"]): r for r in lines if r["record"] == "result"}


def _mine(run, adapter, check):
    return [r for (a, case, c), r in run.items() if a == adapter and c == check and case in FUSED]


@pytest.mark.parametrize("adapter", ["torch", "torch-functional"])
@pytest.mark.parametrize("check", ["fused_add", "fused_add_residual", "fused_add_untouched", "fused_add_grad", "quantized"])
def test_torch_passes_the_fused_add_and_the_fp8_output(fused_run, adapter, check):
    mine = _mine(fused_run, adapter, check)
    assert len(mine) == len(FUSED) and all(r["status"] == "pass" for r in mine), \
        [(r["case"], r["message"]) for r in mine if r["status"] != "pass"][:3]


@pytest.mark.parametrize("adapter", ["torch", "torch-functional"])
def test_torch_adds_half_tensors_in_their_own_dtype(fused_run, adapter):
    seen = {r["dtype"]: r["metrics"]["sum_precision"] for r in _mine(fused_run, adapter, "fused_add")
            if r["dtype"] in HALF and r["metrics"]["sum_precision"] != "indistinguishable"}
    assert seen == {"float16": "float16", "bfloat16": "bfloat16"}  # as torch_fused declares: "input"


def test_onnxruntime_keeps_the_skip_sum_in_float32_and_declines_what_its_schema_cannot_take(fused_run):
    mine = _mine(fused_run, "onnxruntime", "fused_add")
    passing = [r for r in mine if r["status"] == "pass"]
    assert passing and {r["dtype"] for r in passing} >= {"float32", "float16"}
    assert {r["metrics"]["sum_precision"] for r in passing if r["dtype"] == "float16"} == {"float32"}
    declined = [r for r in mine if r["status"] == "unsupported"]
    assert declined and all("SkipSimplifiedLayerNormalization" in r["message"] for r in declined)
    assert {r["dtype"] for r in declined} >= {"float64"}
    residual = [r for r in _mine(fused_run, "onnxruntime", "fused_add_residual") if r["dtype"] in ("float32", "float16")]
    assert residual and all(r["status"] in ("pass", "unsupported") for r in residual)  # its 4th output is the sum


def test_gemma_adds_one_plus_w_in_float32(fused_run):
    mine = {r["case"]: r for r in _mine(fused_run, "hf-gemma", "offset_forward")}
    for case, r in mine.items():
        if r["dtype"] in ("float32", "float16", "bfloat16"):
            assert r["status"] == "pass" and r["metrics"]["offset_precision"] in ("float32", "indistinguishable"), r
    assert "float32" in {r["metrics"]["offset_precision"] for r in mine.values() if r["dtype"] == "bfloat16"}
    # A float64 input: GemmaRMSNorm computes in float32 (x.float()), 1 + w with it.
    f64 = [r for r in mine.values() if r["dtype"] == "float64"]
    assert f64 and all(r["status"] == "fail" and r["diagnosis"]["id"] == "offset-in-float32" for r in f64)
    assert all(r["finding"] == "offset/offset-in-float32" for r in f64)
    # Gemma has no fused add of its own here.
    assert all(r["status"] == "unsupported" and r["needs"] == "call_fused_add"
               for r in _mine(fused_run, "hf-gemma", "fused_add"))
