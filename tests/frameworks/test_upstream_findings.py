"""Real discrepancies of the implementations people run, each on the smallest case that shows
it (issue 11).  They are assertions about upstream code: when a framework fixes one, its test
fails and is updated with a note of the version that fixed it."""

import pytest

pytestmark = pytest.mark.frameworks

CASES = {
    "f64": "f64/16/ax-1/eps1e-06/normal/rand/s0",
    "f16-huge": "f16/16/ax-1/eps1e-06/huge/rand/s0",
    "f32-subnormal": "f32/16/ax-1/eps0.001/subnormal/rand/s0",
    "bf16": "bf16/16/ax-1/eps1e-06/normal/rand/s0",
    "int32": "invalid/input-int32",
    "default-bf16": "dbf16/16/ax-1/eps1e-06/normal/rand/s0",
}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    from tests.conftest import run_cases

    return run_cases(tmp_path_factory.mktemp("upstream"), CASES.values(), "--adapters",
                     "hf-llama,hf-gemma,hf-t5,onnx-reference,onnxruntime,flax-nnx,flax-linen,equinox,torch,keras-jax",
                     expect=(1,))


@pytest.mark.parametrize("adapter", ["hf-llama", "hf-gemma", "hf-t5"])
def test_hugging_face_computes_float64_in_float32(upstream, adapter):
    r = upstream[(adapter, CASES["f64"], "forward")]
    assert r["status"] == "fail" and r["diagnosis"]["id"] == "lower-precision"
    assert r["diagnosis"]["detail"] == "float32 accuracy for a float64 input"


@pytest.mark.parametrize("adapter", ["hf-llama", "hf-gemma", "onnx-reference", "equinox"])
def test_integer_input_comes_back_truncated_or_wrong(upstream, adapter):
    r = upstream[(adapter, CASES["int32"], "invalid_config")]
    assert r["status"] == "fail" and r["outcome"] == "silent wrong result"


def test_onnx_reference_squares_half_precision_in_the_input_dtype(upstream):
    r = upstream[("onnx-reference", CASES["f16-huge"], "forward")]  # stash_type=1 notwithstanding
    assert r["status"] == "fail" and r["diagnosis"]["detail"] == "computed in float16 without upcasting"


def test_onnxruntime_has_no_bfloat16_kernel_on_cpu(upstream):
    r = upstream[("onnxruntime", CASES["bf16"], "forward")]
    assert r["status"] == "error" and "NOT_IMPLEMENTED" in r["message"]


@pytest.mark.parametrize("adapter", ["flax-nnx", "flax-linen", "equinox"])
def test_xla_on_cpu_flushes_subnormal_inputs(upstream, adapter):
    r = upstream[(adapter, CASES["f32-subnormal"], "forward")]
    assert r["status"] == "fail" and r["diagnosis"]["id"] == "subnormals-flushed"


@pytest.mark.parametrize("adapter,out_dtype", [
    ("flax-nnx", "float32"), ("flax-linen", "float32"), ("keras-jax", "float32"), ("hf-llama", "float32"),
    ("torch", "bfloat16"), ("equinox", "bfloat16"), ("hf-gemma", "bfloat16"),
])
def test_a_layer_built_without_dtype_arguments_promotes_or_keeps_half_input(upstream, adapter, out_dtype):
    """bfloat16 into a layer with the framework's default (float32) parameters: the values are
    right everywhere; the output dtype is the framework's choice, and frameworks choose apart."""
    case = CASES["default-bf16"]
    assert upstream[(adapter, case, "forward")]["status"] == "pass"
    r = upstream[(adapter, case, "out_dtype")]
    assert r["metrics"]["out_dtype"] == out_dtype
    assert r["status"] == ("pass" if out_dtype == "bfloat16" else "fail")
    if out_dtype != "bfloat16":
        assert r["diagnosis"]["class"] == "dtype"
