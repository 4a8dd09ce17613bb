"""onnxruntime's fused residual add: the contrib operator `SkipSimplifiedLayerNormalization`.

Its schema (microsoft/onnxruntime docs/ContribOperators.md, domain `com.microsoft`, version 1):
inputs `input`, `skip`, `gamma` (and an optional `bias`), all of one type T (float, float16,
bfloat16), `input` and `skip` of rank 2 or 3, `gamma` of the hidden size; attribute `epsilon`
(a 32-bit float); outputs `output` (the normalized sum), `mean` and `inv_std_var` (optional,
float) and, fourth, `input_skip_bias_sum` (optional): the sum, which is the written-back residual.
A model builder asks for outputs 0 and 3 and leaves 1 and 2 unnamed.

Plain functions of numpy and onnx (adapters/_snippets.py's rules), used by adapters/onnx_op.py.
"""
from __future__ import annotations

SKIP_DOMAIN = "com.microsoft"
SKIP_RANKS = (2, 3)
SKIP_TYPES = ("float32", "float16", "bfloat16")


def skip_rmsnorm_model(input_shape, eps, compute_dtype):
    """The one-node model: SkipSimplifiedLayerNormalization of X and skip R with gamma G, its
    outputs Y (output 0) and S (input_skip_bias_sum, output 3)."""
    from onnx import TensorProto, helper

    elem = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16, "float32": TensorProto.FLOAT}[compute_dtype]
    node = helper.make_node("SkipSimplifiedLayerNormalization", ["X", "R", "G"], ["Y", "", "", "S"],
                            domain=SKIP_DOMAIN, epsilon=eps)
    graph = helper.make_graph(
        [node], "skip_rmsnorm",
        [helper.make_tensor_value_info("X", elem, list(input_shape)), helper.make_tensor_value_info("R", elem, list(input_shape)),
         helper.make_tensor_value_info("G", elem, [input_shape[-1]])],
        [helper.make_tensor_value_info("Y", elem, None), helper.make_tensor_value_info("S", elem, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23), helper.make_opsetid(SKIP_DOMAIN, 1)])
    model.ir_version = 10
    return model


def skip_call(session, x, residual, gamma):
    """(y, the sum) of the model's session."""
    y, summed = session.run(None, {"X": x, "R": residual, "G": gamma})
    return y, summed
