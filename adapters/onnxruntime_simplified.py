"""onnxruntime's `SimplifiedLayerNormalization`, the contrib RMS norm its transformer optimizer fuses
LLM norms into, as a one-node model built with `onnx.helper`, run by the CPU execution provider.

- The operator is onnxruntime's own, registered in the default ONNX domain `''` at version 1
  (not an ONNX operator: `onnx.checker` and `onnx.reference` do not know it).  Its schema, as
  onnxruntime 1.32 reports it: attributes `axis` (default -1), `epsilon` (a FLOAT, default 1e-5)
  and `stash_type` (default 1, "type used for stash mean/inv_std_var"); inputs `X` (T) and
  `scale` (V), outputs `Y` (V, the scale's type) and optional `inv_std_var` (U); T and V any of
  float16, float, double, bfloat16, U float or double.  The CPU kernels registered are
  T = V = float, double, float16 and bfloat16, each with U = float.
- It normalizes from `axis` to the last axis: the case's axes must be the trailing ones (others,
  and rank 0, are declined); `axis` is the first of them.
- `epsilon` is the case's, or the attribute omitted for the default; ONNX stores it as a 32-bit
  float, which `effective()` reports (the kernel adds it as a float).  `stash_type=1` (the
  default, written out); the CPU kernel does not read it.
- The scale input has the case's parameter dtype, as the schema allows (float32 for the mixed and
  default precisions).  `Y` is declared with the scale's type, as the schema infers it: a float16
  input with a float32 scale has no kernel of its own, and onnxruntime's graph (its cast
  insertion for float16) decides what runs; a bfloat16 input with a float32 scale has none.
- bfloat16 crosses into onnxruntime as OrtValues of its bits (numpy has no bfloat16 onnxruntime
  accepts), the output bound to a buffer of bits; other dtypes go through `session.run`.
- Forward only: no gradients here.  Rebuild, save/load, parameters and layouts as `onnxruntime`;
  the fused residual add (`SkipSimplifiedLayerNormalization`) is left to the `onnxruntime` adapter.
"""
from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._snippets import bind, invoke, snippet
from conformance.adapters.onnx_op import OPSET, OnnxRuntime, _Model, one_node_model, ort_session

DEFAULT_EPSILON = 1e-5


def ort_simplified_model(input_shape, axes, eps, scale, compute_dtype, param_dtype):
    """The one-node model: SimplifiedLayerNormalization (Y of the scale's type, as its schema says)."""
    return one_node_model("SimplifiedLayerNormalization", input_shape, axes, eps, scale, compute_dtype, param_dtype,
                          param_dtype)


def ort_run(session, x, scale):
    """Y for inputs X and scale; bfloat16 arrays as OrtValues of their bits, Y (of the scale's
    type) then bound to a buffer of bits of x's shape."""
    import onnxruntime
    from onnx import TensorProto

    def value(a):
        if a.dtype.name == "bfloat16":
            return onnxruntime.OrtValue.ortvalue_from_numpy_with_onnx_type(a.view(np.uint16), TensorProto.BFLOAT16)
        return onnxruntime.OrtValue.ortvalue_from_numpy(a)

    if "bfloat16" not in (x.dtype.name, scale.dtype.name):
        return session.run(None, {"X": x, "scale": scale})[0]
    binding = session.io_binding()
    binding.bind_ortvalue_input("X", value(np.ascontiguousarray(x)))
    binding.bind_ortvalue_input("scale", value(np.ascontiguousarray(scale)))
    if scale.dtype.name == "bfloat16":
        bits = np.empty(x.shape, np.uint16)
        binding.bind_ortvalue_output("Y", onnxruntime.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, TensorProto.BFLOAT16))
        session.run_with_iobinding(binding)
        return bits.view(scale.dtype)
    binding.bind_output("Y")
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()[0]


class OnnxRuntimeSimplified(OnnxRuntime):
    name = "onnxruntime-simplified"
    owners = ("onnxruntime",)  # onnxruntime's own operator and schema
    # onnxruntime's fused residual add (SkipSimplifiedLayerNormalization) is checked once, on the
    # `onnxruntime` adapter: the same model would give the same records twice.
    call_fused_add = Adapter.call_fused_add

    def supports(self, spec):
        rank = len(spec.input_shape)
        if not spec.axes or rank == 0:
            return "SimplifiedLayerNormalization needs at least one normalized axis"
        if not spec.is_trailing:
            return (f"SimplifiedLayerNormalization normalizes from `axis` to the last axis; {list(spec.axis)} "
                    "are not trailing")
        return None

    def build(self, spec):
        model = bind(ort_simplified_model, spec)
        return _Model(model, self._runner(model), spec.axes[0], spec.epsilon), spec.scale

    def _run(self, runner, x, scale):
        return ort_run(runner, x, scale)

    def snippet(self, spec) -> dict:
        """The one-node model as build() writes it, run by the same session and call."""
        return snippet(ort_simplified_model, ort_session, ort_run, build=invoke("layer", ort_simplified_model),
                       call="out = ort_run(ort_session(layer), x, scale)")

    def config(self, layer):
        model, _ = layer
        requested = model.epsilon if model.epsilon is not None else DEFAULT_EPSILON
        return {"op": "SimplifiedLayerNormalization", "domain": "", "axis": model.axis, "stash_type": 1,
                "opset": OPSET, "epsilon": requested}
