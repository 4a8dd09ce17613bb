"""ONNX's `RMSNormalization` operator (opset 23), as a one-node model built with `onnx.helper`.

- `onnxruntime`: the model run by onnxruntime's CPU execution provider;
  `onnx-reference`: the same model run by `onnx.reference.ReferenceEvaluator`.
- The operator normalizes the axes from `axis` to the last: the case's axes must be
  the trailing ones (others, and rank 0, are declined); `axis` is the first of them.
- `epsilon` is the case's, or the attribute omitted for ONNX's default (1e-5).  ONNX
  stores the attribute as a 32-bit float: `effective()` reports that value, which is
  what the operator applies.
- `stash_type=1`: the statistics in float32, the schema's default.  The scale input has
  the case's parameter dtype (float32 under the mixed policies, as the schema allows, and
  for the `default_` precisions: an ONNX graph has no default, `TensorProto.FLOAT` is what
  a model builder writes without thinking of it).
- Forward only: ONNX models have no gradients here (`grad` is unsupported).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._snippets import NUMPY_OUTPUT, join
from conformance.numerics.layouts import numpy_layout

OPSET = 23
DEFAULT_EPSILON = 1e-5


@dataclass(frozen=True)
class _Model:
    proto: object
    runner: object
    axis: int
    epsilon: float | None


class _OnnxRMSNorm(Adapter):
    worker_group = "onnx"
    gradients = False

    def load(self):
        import onnx

        self.onnx = onnx
        return {"onnx": onnx.__version__, **self._load_runtime()}

    def _load_runtime(self) -> dict:
        return {}

    def supports(self, spec):
        rank = len(spec.input_shape)
        if not spec.axes or rank == 0:
            return "RMSNormalization needs at least one normalized axis"
        if not spec.is_trailing:
            return f"RMSNormalization normalizes from `axis` to the last axis; {list(spec.axis)} are not trailing"
        return None

    def _elem(self, dtype: str) -> int:
        return {"float16": self.onnx.TensorProto.FLOAT16, "bfloat16": self.onnx.TensorProto.BFLOAT16,
                "float32": self.onnx.TensorProto.FLOAT, "float64": self.onnx.TensorProto.DOUBLE}[dtype]

    def build(self, spec):
        helper = self.onnx.helper
        axis = spec.axes[0]
        attrs = {"axis": axis, "stash_type": 1}
        if spec.epsilon is not None:
            attrs["epsilon"] = spec.epsilon
        node = helper.make_node("RMSNormalization", ["X", "scale"], ["Y"], **attrs)
        graph = helper.make_graph(
            [node], "rmsnorm",
            [helper.make_tensor_value_info("X", self._elem(spec.compute_dtype), list(spec.input_shape)),
             helper.make_tensor_value_info("scale", self._elem(spec.param_dtype), list(spec.scale.shape))],
            [helper.make_tensor_value_info("Y", self._elem(spec.compute_dtype), None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 10
        return _Model(model, self._runner(model), axis, spec.epsilon), spec.scale

    _snippet_runtime = ""  # imports and `run(model, feeds)` of the runtime

    def snippet(self, spec) -> dict:
        """The one-node model as build() writes it, run by the same runtime."""
        elem = {"float16": "FLOAT16", "bfloat16": "BFLOAT16", "float32": "FLOAT", "float64": "DOUBLE"}
        return {
            "imports": join("import onnx\nfrom onnx import TensorProto, helper", self._snippet_runtime),
            "build": f"""
                attrs = {{"axis": axes[0], "stash_type": 1}}
                if eps is not None:
                    attrs["epsilon"] = eps
                node = helper.make_node("RMSNormalization", ["X", "scale"], ["Y"], **attrs)
                graph = helper.make_graph(
                    [node], "rmsnorm",
                    [helper.make_tensor_value_info("X", TensorProto.{elem[spec.compute_dtype]}, list(input_shape)),
                     helper.make_tensor_value_info("scale", TensorProto.{elem[spec.param_dtype]}, list(scale.shape))],
                    [helper.make_tensor_value_info("Y", TensorProto.{elem[spec.compute_dtype]}, None)])
                model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", {OPSET})])
                model.ir_version = 10
            """,
            "call": join('out = run(model, {"X": x, "scale": scale})', NUMPY_OUTPUT),
        }

    def call(self, layer, x):
        model, scale = layer
        return np.asarray(self._run(model.runner, x, scale))

    def grad(self, layer, x, dy):
        raise NotImplementedError("an ONNX model has no gradients here")

    def call_layout(self, layer, x, layout):
        """A non-contiguous numpy view fed as it is (the runtime makes what copy it needs)."""
        model, scale = layer
        return np.asarray(self._run(model.runner, numpy_layout(x, layout), scale))

    def rebuild(self, layer):
        """The same graph, from the model's own serialized form."""
        model, scale = layer
        proto = self.onnx.load_model_from_string(model.proto.SerializeToString())
        return _Model(proto, self._runner(proto), model.axis, model.epsilon), scale

    def save_load(self, layer, folder):
        model, scale = layer
        path = f"{folder}/rmsnorm.onnx"
        self.onnx.save_model(model.proto, path)
        proto = self.onnx.load_model(path)
        return _Model(proto, self._runner(proto), model.axis, model.epsilon), scale

    def parameters(self, layer):
        return {"scale": np.asarray(layer[1])}  # an input of the graph, given with every call

    def _attribute_epsilon(self, model: _Model) -> float:
        """The epsilon attribute as the model stores it (a 32-bit float), or ONNX's default."""
        for a in model.proto.graph.node[0].attribute:
            if a.name == "epsilon":
                return float(a.f)
        return float(np.float32(DEFAULT_EPSILON))

    def config(self, layer):
        model, _ = layer
        requested = model.epsilon if model.epsilon is not None else DEFAULT_EPSILON
        return {"axis": model.axis, "stash_type": 1, "opset": OPSET, "epsilon": requested}

    def effective(self, layer) -> dict:
        model, scale = layer
        return {"epsilon": self._attribute_epsilon(model), "scale": np.asarray(scale)}

    def defaults(self) -> dict:
        return {"axis": "-1", "epsilon": DEFAULT_EPSILON, "scale_init": "an input (no initializer)",
                "parameter_dtype": "the scale input's"}


class OnnxRuntime(_OnnxRMSNorm):
    name = "onnxruntime"
    packages = ("onnx", "onnxruntime")

    def _load_runtime(self) -> dict:
        import onnxruntime

        self.ort = onnxruntime
        return {"onnxruntime": onnxruntime.__version__}

    def _runner(self, model):
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return self.ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def _run(self, session, x, scale):
        return session.run(None, {"X": x, "scale": scale})[0]

    _snippet_runtime = """
        import onnxruntime

        def run(model, feeds):  # the CPU provider, one thread, as the suite runs it
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                   providers=["CPUExecutionProvider"])
            return session.run(None, feeds)[0]
    """


class OnnxReference(_OnnxRMSNorm):
    name = "onnx-reference"
    packages = ("onnx",)

    def _runner(self, model):
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model)

    def _run(self, evaluator, x, scale):
        return evaluator.run(None, {"X": x, "scale": scale})[0]

    _snippet_runtime = """
        from onnx.reference import ReferenceEvaluator

        def run(model, feeds):
            return ReferenceEvaluator(model).run(None, feeds)[0]
    """
