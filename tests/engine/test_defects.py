"""Defects (reports/defects.py), crash diagnoses (conformance/diagnosis/crashes.py), adapter errors
and the readable smallest case, as pure functions of records, in this process; and the defects of
the committed baseline (reports/baseline/standard.jsonl)."""
import json
from pathlib import Path

import pytest

from conformance.adapters import ALL
from conformance.checks.registry import attach_diagnosis, finding_id, finding_title
from conformance.diagnosis.crashes import crash, stable_message
from conformance.diagnosis.diagnose import of_error
from conformance.reports.defects import defects, owners_of
from conformance.reports.findings import findings, smallest_readable
from conformance.reports.results import Results, load_results, verdict

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "reports" / "baseline" / "standard.jsonl"
BUILTINS = {name: {"adapter": name, "ref": name} for name in (
    "keras-jax", "keras-torch", "keras-tensorflow", "keras-numpy", "onnxruntime", "torch-onnx", "flax-nnx",
    "flax-linen", "equinox", "torch", "hf-llama")}

ASSIGN = ("build raised ValueError: The shape of the target variable and the shape of the target value in "
          "`variable.assign(value)` must match. variable.shape=(8, 4), Received: value.shape={value}. Target variable: "
          "<Variable path=rms_normalization_{n}/scale, shape=(8, 4), dtype=float16, value=[[1. 1. 1. 1.]]> (variables.py:285)")
ORT = ("build raised Fail: [ONNXRuntimeError] : 1 : FAIL : Type Error: Type (tensor(float16)) of output arg ({arg}) "
       "of node ({node}) does not match expected type (tensor(float)). (onnxruntime_inference_collection.py:755)")


def _record(adapter, check="forward", status="error", message="", case="f16/2x4x8/ax1,-1/eps1e-06/normal/rand/s0",
            **fields):
    from conformance.cases.case import parse_case

    r = {"record": "result", "case": case, "adapter": adapter, "check": check, "status": status,
         **parse_case(case).params(), "metrics": {}, "tolerance": None, "message": message, **fields}
    return attach_diagnosis(r)


def _defects_of(records, adapters=BUILTINS):
    fs = findings(records, lambda r: ("", ""))
    return defects(fs, records, adapters)


def test_builtin_owners_are_declared_and_a_user_adapter_is_its_top_package():
    assert owners_of("keras-jax", {"ref": "keras-jax"}) == ("keras", "jax")
    assert owners_of("torch-onnx", {"ref": "torch-onnx"})[:2] == ("pytorch", "onnxruntime")
    assert owners_of("hf-gemma", {"ref": "hf-gemma"}) == ("transformers", "pytorch")
    assert owners_of("numpy-reference", {"ref": "numpy-reference"})[0] == "rmsnorm-conformance"
    assert owners_of("mine", {"ref": "mypkg.kernels:Mine"}) == ("mypkg",)
    assert owners_of("mine", {"ref": "mypkg.kernels:Mine", "owners": ["triton", "mypkg"]}) == ("triton", "mypkg")


def test_a_crash_with_one_stable_cause_on_four_keras_backends_is_one_keras_defect():
    records = [_record(a, message=ASSIGN.format(value=v, n=n)) for n, (a, v) in enumerate(
        [("keras-jax", "(4, 8)"), ("keras-torch", "torch.Size([4, 8])"), ("keras-tensorflow", "(4, 8)"),
         ("keras-numpy", "(4, 8)")])]
    ids = {r["finding"] for r in records}
    assert len({i.split("/")[1] for i in ids}) == 1, ids  # one stable cause: the layer counter and value repr aside
    ds = _defects_of(records)
    assert len(ds) == 1 and ds[0]["owner"] == "keras" and ds[0]["adapters"] == sorted(a for a in BUILTINS if "keras" in a)
    assert "(8, 4)" in records[0]["diagnosis"]["detail"] and "sorted as given" in records[0]["diagnosis"]["detail"]


def test_the_onnxruntime_type_error_under_two_adapters_is_onnxruntimes():
    records = [_record("onnxruntime", message=ORT.format(arg="Y", node=""), case="mf16/4x32/ax-1/eps1e-06/normal/rand/s0"),
               _record("torch-onnx", message=ORT.format(arg="rms_norm", node="node_rms_norm"),
                       case="mf16/4x32/ax-1/eps1e-06/normal/rand/s0")]
    ds = _defects_of(records)
    assert [(d["owner"], d["adapters"]) for d in ds] == [("onnxruntime", ["onnxruntime", "torch-onnx"])]


def test_the_same_diagnosis_on_two_owners_stays_two_defects():
    bad = {"diagnosis": {"id": "out-dtype", "class": "dtype", "detail": "float32 for float16"}}
    records = [_record(a, check="out_dtype", status="fail", case="mf16/4x32/ax-1/eps1e-06/normal/rand/s0", **bad)
               for a in ("keras-jax", "keras-torch", "flax-nnx", "flax-linen", "hf-llama")]
    records += [_record(a, check="out_dtype", status="pass", case="mf16/4x32/ax-1/eps1e-06/normal/rand/s0")
                for a in ("equinox", "torch")]  # jax and pytorch themselves keep the dtype: not theirs
    ds = _defects_of(records)
    assert sorted((d["owner"], tuple(d["adapters"])) for d in ds) == [
        ("flax", ("flax-linen", "flax-nnx")), ("keras", ("keras-jax", "keras-torch")), ("transformers", ("hf-llama",))]


def test_a_dependency_every_adapter_built_on_it_shows_takes_the_defect():
    bad = {"diagnosis": {"id": "batch-variant", "class": "property", "detail": ""}}
    records = [_record(a, check="batch_invariance", status="fail", case="f32/4x32/ax-1/eps0/normal/rand/s0", **bad)
               for a in ("flax-nnx", "flax-linen", "equinox", "keras-jax")]
    ds = _defects_of(records)
    assert [(d["owner"], len(d["adapters"])) for d in ds] == [("jax", 4)]


@pytest.mark.parametrize("message", [
    ASSIGN.format(value="(4, 8)", n=12),
    ORT.format(arg="Y", node=""),
    "call raised InvalidArgumentError: Exception encountered when calling RMSNormalization.call(). {{function_node "
    "__wrapped__Mul_device_/job:localhost/replica:0/task:0/device:CPU:0}} Incompatible shapes: [4,3,4,3] vs. [4,4] "
    "[Op:Mul] name: Arguments received by RMSNormalization.call(): • x=tf.Tensor(shape=(4, 3, 4, 3)) (ops.py:6027)",
    "call raised RuntimeError: something at 0x7f3a2b1c in /usr/lib/python3/site-packages/fw/kernel.py failed (k.py:3)",
])
def test_crash_titles_show_no_exception_text(message):
    d = of_error(message, {"shape": [4, 3, 4, 3], "axis": [0, 2], "dtype": "float16"})
    title = finding_title(d, "forward")
    text = message.split(": ", 1)[1]
    words = text.split()
    assert not any(" ".join(words[k:k + 4]) in title for k in range(len(words) - 3)), title
    assert "0x" not in title and "/" not in title.replace("(", "").replace(")", "")
    assert d["step"] in title and d["error"] in title
    assert "0x7f3a" not in d["stable"] and "/usr/lib" not in d["stable"]  # the stable message: no address, no path
    assert message == message  # the raw message stays the record's own (attach_diagnosis never rewrites it)


def test_a_broadcast_error_of_the_scale_on_non_trailing_axes_is_diagnosed_as_the_scale_on_the_wrong_axes():
    message = ("call raised ValueError: operands could not be broadcast together with shapes (4,3,4,3) (4,4) "
               "(numpy.py:101)")
    d = crash(message, {"shape": [4, 3, 4, 3], "axis": [0, 2], "dtype": "float32"})
    assert d["cause"] == "scale-wrong-axis" and "(4, 4)" in d["detail"] and "axes (0, 2)" in d["detail"]
    # on trailing axes the same words are no such cause
    assert "cause" not in crash(message, {"shape": [4, 8], "axis": [-1], "dtype": "float32"})


def test_stable_message_drops_names_addresses_and_paths():
    a = stable_message(ORT.format(arg="Y", node="").split(": ", 1)[1].rsplit(" (", 1)[0])
    b = stable_message(ORT.format(arg="rms_norm", node="node_rms_norm").split(": ", 1)[1].rsplit(" (", 1)[0])
    assert a == b and "ONNXRuntimeError" not in a


def test_the_smallest_case_is_the_most_readable():
    def r(case, check="forward"):
        from conformance.cases.case import parse_case

        return {"case": case, "adapter": "a", "check": check, **parse_case(case).params()}

    rs = [r("f64/0x8/ax-1/eps1e-12/mixed/rand/s0"), r("f64/4x1/ax-1/eps1e-05/nonfinite/rand/s0"),
          r("bf16/16/ax-1/eps1e-06/normal/rand/s0"), r("f32/4x32/ax-1/eps0.1/normal/rand/s0"),
          r("f32/4x32/ax-1/eps1e-06/normal/rand/s0"), r("f32/2x4096/ax-1/eps1e-06/normal/rand/s0")]
    assert smallest_readable(rs)["case"] == "f32/4x32/ax-1/eps1e-06/normal/rand/s0"
    assert smallest_readable(rs[:2])["case"] == "f64/4x1/ax-1/eps1e-05/nonfinite/rand/s0"  # non-empty first


def test_an_adapters_own_bug_is_an_adapter_error_and_fails_an_invalid_configuration():
    from tests.engine.inprocess import run

    rs = {r["case"]: r for r in run("tests.planted.adapter_bugs:KeyErrorInBuild", ["invalid/input-bool", "invalid/rank-0"])}
    bug = rs["invalid/input-bool"]
    assert bug["status"] == "error" and bug["outcome"] == "adapter error at build", bug
    assert bug["diagnosis"]["id"].startswith("adapter-error-") and bug["finding"].startswith("adapter-error/")
    assert "in the adapter's own code" in bug["message"]
    refused = rs["invalid/rank-0"]  # the suite's LayerSpec refusing the axes: not the adapter's bug
    assert refused["status"] == "pass" and refused["outcome"] == "error at build"
    numpy_refuses = {r["case"]: r for r in run("conformance.adapters.numpy_reference:NumpyReference",
                                               ["invalid/scale-wrong-shape"])}["invalid/scale-wrong-shape"]
    assert numpy_refuses["status"] == "pass" and numpy_refuses["outcome"] == "error at call"  # numpy's own refusal
    call = [r for r in run("tests.planted.adapter_bugs:RaisesInCall", ["f16/4x32/ax-1/eps1e-06/normal/rand/s0"])
            if r["check"] == "forward"][0]
    assert call["finding"].startswith("adapter-error/") and call["diagnosis"]["class"] == "crash"
    ds = _defects_of([bug], {"planted-keyerror-in-build": {"ref": "tests.planted.adapter_bugs:KeyErrorInBuild"}})
    assert [d["owner"] for d in ds] == ["tests"]  # the adapter's own project, not its framework's


@pytest.fixture(scope="module")
def baseline():
    return load_results(BASELINE)


# The defects of the committed baseline, each one real and attributed to the project whose code has it.
EXPECTED = {
    "keras/non-trailing-axes", "keras/0-d-input", "keras/mixed-sign-axes", "keras/lower-precision", "keras/out-dtype",
    "keras/special-values", "keras/invalid-configuration-silent-wrong-result",
    "transformers/lower-precision", "transformers/effective-scale", "transformers/out-dtype",
    "transformers/invalid-configuration-silent-wrong-result",
    "onnx/effective-epsilon", "onnx/lower-precision", "onnx/invalid-configuration-silent-wrong-result",
    "onnx/layout-dependent", "onnxruntime/output-type-follows-scale", "onnxruntime/crash-NotImplemented-no-kernel",
    "pytorch/eps-different", "pytorch/layout-dependent", "flax/out-dtype", "flax/structure",
    "tensorflow/batch-variant", "tensorflow/special-values",
    "equinox/invalid-configuration-silent-wrong-result",
    # Batch variance on the JAX-based adapters is each library's since Pallas, jax's own kernel,
    # shows none (reports/defects.py, 2); keras-tensorflow shows it at epsilon 1e-5.
    "equinox/batch-variant", "flax/batch-variant", "keras/batch-variant",
    # The kernel libraries (issue 24), each checked against the library's source.
    "jax/empty-input", "jax/invalid-configuration-silent-wrong-result", "jax/lower-precision",
    "mlx/crash-RuntimeError-received-invalid-dtype", "mlx/effective-epsilon", "mlx/lower-precision", "mlx/out-dtype",
    "mlx/sequential-sum", "onnxruntime/effective-epsilon", "onnxruntime/out-dtype", "openvino/effective-epsilon",
    "openvino/lower-precision", "openvino/save-load", "openvino/sequential-sum", "openvino/special-values",
    # The fused forms (issue 25): Gemma adds 1 + w in float32 even for float64 weights.
    "transformers/offset-in-float32",
}


def test_the_baseline_defects_are_each_attributed(baseline):
    ds = baseline.defects
    assert {d["id"] for d in ds} == EXPECTED and len(ds) == len(EXPECTED)
    by_id = {d["id"]: d for d in ds}
    assert by_id["onnxruntime/output-type-follows-scale"]["adapters"] == ["onnxruntime", "torch-onnx"]
    assert by_id["flax/batch-variant"]["adapters"] == ["flax-linen", "flax-nnx"]
    # equinox casts back to the input's dtype in its own code: an interface cause is never jax's
    assert by_id["equinox/invalid-configuration-silent-wrong-result"]["adapters"] == ["equinox"]
    assert by_id["keras/invalid-configuration-silent-wrong-result"]["adapters"] == [
        "keras-jax", "keras-numpy", "keras-tensorflow", "keras-torch"]
    assert "keras-team/keras#22201" in by_id["keras/mixed-sign-axes"]["upstream_text"]
    assert by_id["flax/structure"]["upstream_text"] == "no upstream issue found"
    gating = {f["id"] for f in baseline.judgement.gating}
    assert {f for d in ds for f in d["findings"]} == gating  # every gating finding is in exactly one defect
    assert sum(len(d["findings"]) for d in ds) >= len(gating)
    line = verdict(baseline)
    assert line.startswith(f"FAIL: {len(EXPECTED)} defects in 11 projects (keras 8, ")


def test_rendering_the_baseline_changes_no_status(baseline):
    raw = [json.loads(line) for line in BASELINE.read_text().splitlines()]
    raw = [r for r in raw if r.get("record", "result") == "result"]
    assert [(r["adapter"], r["case"], r["check"], r["status"], r["message"]) for r in raw] == \
        [(r["adapter"], r["case"], r["check"], r["status"], r["message"]) for r in baseline.records]
    for before, after in zip(raw, baseline.records):
        if before["status"] != "error":
            assert before.get("diagnosis") == after.get("diagnosis") and before.get("finding") == after.get("finding")
        else:
            assert after["finding"] == finding_id(after)


def test_report_json_has_the_defects(baseline):
    from conformance.reports import json_report, markdown

    doc = json_report.render(baseline)
    for d in doc["defects"]:
        assert {"id", "title", "owner", "findings", "adapters", "results", "upstream"} <= set(d)
    assert len(doc["scoreboard"]) == len(ALL)  # every built-in of `--adapters all`
    md = markdown.render(baseline)
    assert md.index(f"{len(EXPECTED)} defects in 11 projects") < md.index("## Scoreboard") < md.index("## Findings")
    assert "build raised ValueError: The shape" not in md.split("## Findings")[1].split("### ")[0]  # the table


def test_a_results_file_without_gating_findings_has_no_defects():
    ok = [_record("torch", status="pass", case="f32/4x32/ax-1/eps1e-06/normal/rand/s0")]
    res = Results(ok, {"torch": {"adapter": "torch", "ref": "torch"}})
    assert res.defects == [] and verdict(res).startswith("PASS")


def test_the_verdict_the_readme_and_docs_show_is_the_baselines():
    """The README's and docs/reports.md's verdict line is copied from the generated findings.md."""
    generated = (ROOT / "reports" / "baseline" / "findings.md").read_text().splitlines()
    line = next(t for t in generated if t.startswith("**FAIL") or t.startswith("**PASS")).strip("*")
    for doc in ("README.md", "docs/reports.md"):
        # the lines quoting a run over the built-ins (the README also quotes a user's one-kernel run)
        shown = [t for t in (ROOT / doc).read_text().splitlines() if t.startswith(("FAIL: ", "PASS: "))
                 and " projects (keras " in t]
        assert shown == [line], doc
