"""The kernel libraries' built-in adapters (Pallas, onnxruntime's SimplifiedLayerNormalization, MLX,
OpenVINO, Liger) on a few small cases, with the real libraries: each loads, runs what it can
express, declines what it cannot with the reason, and shows the discrepancies its library's source
predicts.  Those are assertions about upstream code: when a library changes, its test fails and is
updated with a note of the version.  A test skips only where its library is not importable."""
import importlib.util

import pytest

pytestmark = pytest.mark.frameworks

ADAPTERS = {  # adapter -> the modules it needs
    "pallas": ("jax",), "onnxruntime-simplified": ("onnx", "onnxruntime"), "mlx": ("mlx",), "mlx-nn": ("mlx",),
    "openvino": ("openvino",), "liger": ("liger_kernel", "triton", "torch"),
}
CASES = {
    "f32": "f32/4x32/ax-1/eps1e-06/normal/rand/s0",
    "f64": "f64/4x32/ax-1/eps1e-06/normal/rand/s0",
    "mf16": "mf16/4x32/ax-1/eps1e-06/normal/rand/s0",
    "bf16": "bf16/4x32/ax-1/eps1e-06/normal/rand/s0",
    "mbf16": "mbf16/4x32/ax-1/eps1e-06/normal/rand/s0",
    "non-trailing": "f32/2x8x8/ax1/eps1e-06/normal/rand/s0",
    "eps0": "f32/4x32/ax-1/eps0/normal/rand/s0",
    "default": "f32/4x32/ax-1/epsdefault/normal/rand/s0",
    "shape-changed": "invalid/shape-changed",
}
GRADIENTS = {"pallas", "mlx", "mlx-nn"}  # the others are forward only here (liger: declined on the CPU)


def needs(adapter: str) -> None:
    missing = [m for m in ADAPTERS[adapter] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{adapter}: {', '.join(missing)} not importable (pip install -c constraints.txt -e '.[kernels]')")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    from tests.conftest import run_cases

    return run_cases(tmp_path_factory.mktemp("kernels"), CASES.values(), "--adapters", ",".join(ADAPTERS), expect=(1,))


def result(kernels, adapter, case, check):
    return kernels[(adapter, CASES[case], check)]


@pytest.mark.parametrize("adapter", [a for a in ADAPTERS if a != "liger"])
def test_a_float32_row_passes_and_gradients_are_there_or_declared_missing(kernels, adapter):
    needs(adapter)
    for check in ("forward", "out_dtype", "invalid_config"):
        case = "shape-changed" if check == "invalid_config" else "f32"
        assert result(kernels, adapter, case, check)["status"] == "pass", result(kernels, adapter, case, check)["message"]
    for check in ("grad_x", "grad_scale"):
        r = result(kernels, adapter, "f32", check)
        if adapter in GRADIENTS:
            assert r["status"] == "pass", r["message"]
        else:
            assert r["status"] == "unsupported" and "grad()" in r["message"]


@pytest.mark.parametrize("adapter", ["pallas", "mlx", "mlx-nn", "openvino"])
def test_float64_is_computed_in_float32(kernels, adapter):
    # Pallas: the kernel's .astype(jnp.float32); MLX: the CPU fallback's astype(float32) (mlx/fast.cpp);
    # OpenVINO: the CPU plugin converts f64 graphs to f32.  onnxruntime's double kernel computes in double.
    needs(adapter)
    r = result(kernels, adapter, "f64", "forward")
    assert r["status"] == "fail" and r["diagnosis"]["id"] == "lower-precision", r["message"]


@pytest.mark.parametrize("adapter", ["mlx", "mlx-nn", "onnxruntime-simplified"])
def test_epsilon_is_a_float32_and_a_float64_layer_applies_it_rounded(kernels, adapter):
    needs(adapter)
    r = result(kernels, adapter, "f64", "parameters")
    assert r["status"] == "fail" and "epsilon stored as float32" in r["message"]


@pytest.mark.parametrize("adapter", ["mlx", "mlx-nn", "onnxruntime-simplified"])
def test_half_input_with_a_float32_scale_returns_float32(kernels, adapter):
    # MLX: out_type = result_type(x, weight); onnxruntime: Y has the scale's type V.
    needs(adapter)
    r = result(kernels, adapter, "mf16", "out_dtype")
    assert r["status"] == "fail" and "returns float32" in r["message"]
    assert result(kernels, adapter, "mf16", "forward")["status"] == "pass"


def test_pallas_declines_other_axes_and_has_no_forward_mode(kernels):
    needs("pallas")
    assert "last axis only" in result(kernels, "pallas", "non-trailing", "forward")["message"]
    r = result(kernels, "pallas", "eps0", "jvp")  # a property case
    assert r["status"] == "unsupported" and "jvp()" in r["message"]
    assert result(kernels, "pallas", "default", "forward")["status"] == "pass"  # the kernel's eps=1e-5


def test_pallas_accepts_an_input_wider_than_its_weight(kernels):
    # rms_norm checks no shapes: the row is read past the weight without complaint (a finding).
    needs("pallas")
    r = result(kernels, "pallas", "shape-changed", "invalid_config")
    assert r["status"] == "pass" and r["outcome"] == "silent result"


def test_onnxruntime_simplified_has_bfloat16_kernels_but_none_for_a_float32_scale(kernels):
    needs("onnxruntime-simplified")
    assert result(kernels, "onnxruntime-simplified", "bf16", "forward")["status"] == "pass"
    r = result(kernels, "onnxruntime-simplified", "mbf16", "forward")
    assert r["status"] == "error" and "NOT_IMPLEMENTED" in r["message"]
    assert result(kernels, "onnxruntime-simplified", "f64", "forward")["status"] == "pass"  # double in double
    assert "trailing" in result(kernels, "onnxruntime-simplified", "non-trailing", "forward")["message"]


def test_mlx_nn_refuses_epsilon_zero_and_mlx_fast_takes_it(kernels):
    needs("mlx-nn")
    assert "eps = 0" in result(kernels, "mlx-nn", "eps0", "forward")["message"]
    assert result(kernels, "mlx", "eps0", "forward")["status"] == "pass"
    assert result(kernels, "mlx-nn", "f32", "save_load")["status"] == "pass"


def test_openvino_normalizes_any_axes_and_save_model_compresses_the_scale(kernels):
    needs("openvino")
    assert result(kernels, "openvino", "non-trailing", "forward")["status"] == "pass"  # ReduceMean's axes
    assert result(kernels, "openvino", "mf16", "forward")["status"] == "pass"  # normalized in float32
    r = result(kernels, "openvino", "f32", "save_load")  # save_model's default compress_to_fp16=True
    assert r["status"] == "fail" and "parameters differ" in r["message"]
    assert "no default epsilon" in result(kernels, "openvino", "default", "forward")["message"]


def test_liger_is_declined_on_the_cpu_with_the_interpreters_reason(kernels):
    # Triton 3.9's interpreter passes eps as a Python float; Liger's kernel calls eps.to(tl.float32).
    needs("liger")
    mine = [r for (adapter, _, _), r in kernels.items() if adapter == "liger"]
    assert mine and all(r["status"] == "unsupported" for r in mine)
    reasons = {r["message"] for r in mine}
    assert len(reasons) == 1 and "'float' object has no attribute 'to'" in reasons.pop()
