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
- Forward only: ONNX models have no gradients here (no `grad`).
- `onnxruntime` has the fused residual add as its contrib operator
  `SkipSimplifiedLayerNormalization` (`call_fused_add`, adapters/onnx_fused.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._snippets import bind, invoke, snippet
from conformance.adapters.onnx_fused import SKIP_RANKS, SKIP_TYPES, skip_call, skip_rmsnorm_model
from conformance.numerics.layouts import numpy_layout

OPSET = 23
DEFAULT_EPSILON = 1e-5


def one_node_model(op, input_shape, axes, eps, scale, compute_dtype, param_dtype, out_dtype):
    """A one-node model of `op` in the default domain from the first of `axes` (stash_type 1),
    inputs X and scale, output Y of `out_dtype`."""
    from onnx import TensorProto, helper

    elem = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16, "float32": TensorProto.FLOAT,
            "float64": TensorProto.DOUBLE}
    attrs = {"axis": axes[0], "stash_type": 1}
    if eps is not None:
        attrs["epsilon"] = eps
    node = helper.make_node(op, ["X", "scale"], ["Y"], **attrs)
    graph = helper.make_graph(
        [node], op.lower(),
        [helper.make_tensor_value_info("X", elem[compute_dtype], list(input_shape)),
         helper.make_tensor_value_info("scale", elem[param_dtype], list(scale.shape))],
        [helper.make_tensor_value_info("Y", elem[out_dtype], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    return model


def onnx_rmsnorm_model(input_shape, axes, eps, scale, compute_dtype, param_dtype):
    """The one-node model: RMSNormalization (Y of the input's type)."""
    return one_node_model("RMSNormalization", input_shape, axes, eps, scale, compute_dtype, param_dtype, compute_dtype)


def ort_session(model):
    """An onnxruntime session on the CPU provider, one thread."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def reference_session(model):
    """onnx's reference implementation of the model."""
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model)


def onnx_call(session, x, scale):
    return session.run(None, {"X": x, "scale": scale})[0]


@dataclass(frozen=True)
class _Model:
    proto: object
    runner: object
    axis: int
    epsilon: float | None


class _OnnxRMSNorm(Adapter):
    worker_group = "onnx"
    session_fn = None  # the runtime's session of a model: ort_session or reference_session

    def load(self):
        import onnx

        self.onnx = onnx
        return {"onnx": onnx.__version__, **self._load_runtime()}

    def _load_runtime(self) -> dict:
        return {}

    def _runner(self, model):
        return self.session_fn(model)

    def supports(self, spec):
        rank = len(spec.input_shape)
        if not spec.axes or rank == 0:
            return "RMSNormalization needs at least one normalized axis"
        if not spec.is_trailing:
            return f"RMSNormalization normalizes from `axis` to the last axis; {list(spec.axis)} are not trailing"
        return None

    def build(self, spec):
        model = bind(onnx_rmsnorm_model, spec)
        return _Model(model, self._runner(model), spec.axes[0], spec.epsilon), spec.scale

    def snippet(self, spec) -> dict:
        """The one-node model as build() writes it, run by the same runtime."""
        return snippet(onnx_rmsnorm_model, self.session_fn, onnx_call, build=invoke("layer", onnx_rmsnorm_model),
                       call=f"out = onnx_call({self.session_fn.__name__}(layer), x, scale)")

    def _run(self, runner, x, scale):
        return onnx_call(runner, x, scale)

    def call(self, layer, x):
        model, scale = layer
        return np.asarray(self._run(model.runner, x, scale))

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
    owners = ("onnxruntime", "onnx")  # the runtime, then the format and its op schema
    session_fn = staticmethod(ort_session)

    def _load_runtime(self) -> dict:
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__}

    def call_fused_add(self, layer, x, residual):
        """The fused add as onnxruntime has it: a one-node `SkipSimplifiedLayerNormalization` model
        (adapters/onnx_fused.py) with the layer's scale as gamma and its epsilon; what its schema
        cannot take (another rank than 2 or 3, float64, a gamma of another type than the input's:
        the mixed precisions) is declined for that case."""
        model, scale = layer
        compute = np.dtype(x.dtype).name
        if x.ndim not in SKIP_RANKS or compute not in SKIP_TYPES or np.dtype(scale.dtype) != np.dtype(x.dtype) \
                or model.axis != x.ndim - 1:
            raise NotImplementedError(f"SkipSimplifiedLayerNormalization takes inputs of rank 2 or 3 and one type T "
                                      f"(float, float16, bfloat16) for input, skip and gamma, normalized over the last "
                                      f"axis; not {compute}{list(x.shape)} with a {np.dtype(scale.dtype).name} scale")
        eps = model.epsilon if model.epsilon is not None else DEFAULT_EPSILON
        session = self.session_fn(skip_rmsnorm_model(x.shape, eps, compute))
        y, summed = skip_call(session, x, residual, scale)
        return np.asarray(y), np.asarray(summed)


class OnnxReference(_OnnxRMSNorm):
    name = "onnx-reference"
    packages = ("onnx",)
    owners = ("onnx",)
    session_fn = staticmethod(reference_session)
