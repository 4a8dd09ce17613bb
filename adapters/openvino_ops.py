"""An RMS norm graph built with OpenVINO's opset operations and compiled for its CPU plugin.

- The graph is the one OpenVINO's PyTorch frontend makes of `aten::rms_norm` (seen with
  `openvino.convert_model(torch.nn.RMSNorm(...))`): `Power(x, 2)` → `ReduceMean(axes,
  keep_dims=True)` → `Add(epsilon)` → `Sqrt` → `Divide(x, ·)` → `Multiply(·, scale)`, built with
  `openvino.opset16` (OpenVINO 2026 has no `openvino.runtime`; no opset has an RMS operator).
  The CPU plugin fuses the pattern into its internal `RMS` kernel when it compiles it.
- `ReduceMean` takes any axes: every case is expressible, non-trailing and multi-axis ones too;
  the scale is a `Constant` reshaped to broadcast over the normalized axes (all 1 elsewhere).
- The constants (the exponent 2, epsilon, the scale) have the graph's element type, as the
  frontend writes them: epsilon is rounded to that type, which `effective()` reports.  bfloat16
  constants are made from float32 values by OpenVINO's `constant(..., Type.bf16)`.
- Where the scale's dtype differs from the input's (the mixed and default precisions: OpenVINO
  graphs have no default, the scale is float32), the elementwise operations need one element
  type (the PyTorch frontend fails on such a module): the input is `Convert`ed to the scale's
  type, normalized there, and the result `Convert`ed back to the input's type.
- There is no default epsilon in OpenVINO: the `epsdefault` cases are declined.
- Compiled by `Core().compile_model(model, "CPU")` with one inference thread and otherwise the
  plugin's defaults: its inference precision hint (f32 on this machine; bf16 on CPUs with AMX or
  AVX512-BF16) is reported by `config()`.  The CPU plugin runs float64 graphs in float32 and
  float16 ones in float32 internally; those are its numerics, not this adapter's.
- Inputs are numpy arrays; bfloat16 (which numpy lacks) crosses as an `ov.Tensor` of its bits.
- `import openvino` sends telemetry by default (a subprocess posting an event, unless the user
  opted out with `opt_in_out --opt_out`); OpenVINO turns it off where `CI=true`, which `env` sets
  for this adapter's worker (a test run), so the suite sends nothing and leaves no thread running.
- Forward only: OpenVINO has no autodiff.  Rebuild: the model cloned and compiled again;
  save/load: `openvino.save_model` (its default `compress_to_fp16=True`) and `Core.read_model`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._snippets import bind, invoke, snippet
from conformance.numerics.layouts import numpy_layout

OPS = ("Power", "ReduceMean", "Add", "Sqrt", "Divide", "Multiply")  # what the graph is made of (and Convert)


def openvino_model(input_shape, axes, eps, scale, compute_dtype, param_dtype):
    """The RMS norm graph over `axes` of an input of `input_shape`: the PyTorch frontend's pattern,
    computed in the scale's type (x converted there and back where they differ)."""
    import openvino as ov
    import openvino.opset16 as ops

    types = {"float16": ov.Type.f16, "bfloat16": ov.Type.bf16, "float32": ov.Type.f32, "float64": ov.Type.f64}

    def constant(value, dtype, name):
        if dtype == "bfloat16":  # numpy has no bfloat16 OpenVINO takes: OpenVINO converts from float32
            return ops.constant(np.asarray(value, np.float32), types[dtype], name=name)
        return ops.constant(np.asarray(value, dtype), name=name)

    x = ops.parameter(list(input_shape), types[compute_dtype], name="x")
    work = x if param_dtype == compute_dtype else ops.convert(x, types[param_dtype])
    mean = ops.reduce_mean(ops.power(work, constant(2, param_dtype, "two")),
                           ops.constant(np.array(axes, np.int64), name="axes"), keep_dims=True)
    norm = ops.divide(work, ops.sqrt(ops.add(mean, constant(eps, param_dtype, "epsilon"))))
    broadcast = [input_shape[k] if k in axes else 1 for k in range(len(input_shape))]
    scale = np.asarray(scale)
    if scale.size == np.prod(broadcast, dtype=int):  # else as given: Multiply's broadcasting decides
        scale = scale.reshape(broadcast)
    y = ops.multiply(norm, constant(scale, param_dtype, "scale"))
    if param_dtype != compute_dtype:
        y = ops.convert(y, types[compute_dtype])
    return ov.Model([y], [x], "rmsnorm")


def openvino_compile(model):
    """The model compiled by the CPU plugin, one inference thread."""
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1})


def openvino_call(compiled, x):
    """The compiled model on x; bfloat16 as a Tensor of its bits in and out."""
    import openvino as ov

    if x.dtype.name != "bfloat16":
        return compiled(x)[0]
    tensor = ov.Tensor(ov.Type.bf16, ov.Shape(list(x.shape)))
    tensor.data.view(np.uint16)[...] = np.ascontiguousarray(x).view(np.uint16)
    request = compiled.create_infer_request()
    request.infer({0: tensor})
    out = request.get_output_tensor(0)
    bits = np.array(out.data.view(np.uint16))  # OpenVINO shows bfloat16 data as float16: the bits are what count
    return bits.view(x.dtype) if out.element_type == ov.Type.bf16 else np.array(out.data)


@dataclass(frozen=True)
class _Graph:
    model: object
    compiled: object
    axes: tuple
    epsilon: float
    param_dtype: str


def _constant_values(node) -> np.ndarray:
    """The values a Constant gives the graph, or a Convert of one (a constant `save_model` compressed
    to float16, converted back when the graph runs); bfloat16 from its bits (OpenVINO shows them as
    float16)."""
    import ml_dtypes
    import openvino as ov

    if node.get_type_name() == "Convert":
        source = _constant_values(node.input_value(0).get_node())
        target = node.get_output_element_type(0)
        return source.astype(ml_dtypes.bfloat16 if target == ov.Type.bf16 else target.to_dtype())
    data = np.array(node.get_data())
    if node.get_element_type() == ov.Type.bf16:
        return data.view(np.uint16).view(ml_dtypes.bfloat16)
    return data


class OpenVinoRMSNorm(Adapter):
    name = "openvino"
    packages = ("openvino",)
    owners = ("openvino",)
    # OpenVINO sends telemetry when imported (a subprocess posting to Google Analytics, on unless the
    # user opted out); it is off where CI=true, which this worker is: it runs a test suite.
    env = {"CI": "true"}

    def load(self):
        import openvino as ov

        self.ov = ov
        return {"openvino": ov.__version__.split("-")[0]}

    def supports(self, spec):
        spec.axes  # noqa: B018  (raises for axes no graph can be given: out of range, repeated)
        if spec.epsilon is None:
            return "an OpenVINO graph has no default epsilon: the Add's constant is the graph writer's"
        return None

    def build(self, spec):
        model = bind(openvino_model, spec)
        return _Graph(model, openvino_compile(model), spec.axes, spec.epsilon, spec.param_dtype)

    def call(self, layer, x):
        return np.asarray(openvino_call(layer.compiled, x))

    def call_layout(self, layer, x, layout):
        """A non-contiguous numpy view, handed to the compiled model as it is."""
        return np.asarray(openvino_call(layer.compiled, numpy_layout(x, layout)))

    def snippet(self, spec) -> dict:
        return snippet(openvino_model, openvino_compile, openvino_call, build=invoke("layer", openvino_model),
                       call="out = openvino_call(openvino_compile(layer), x)")

    def _node(self, model, name: str):
        return next(op for op in model.get_ordered_ops() if op.get_friendly_name() == name)

    def rebuild(self, layer):
        model = layer.model.clone()
        return _Graph(model, openvino_compile(model), layer.axes, layer.epsilon, layer.param_dtype)

    def save_load(self, layer, folder):
        path = f"{folder}/rmsnorm.xml"
        self.ov.save_model(layer.model, path)
        model = self.ov.Core().read_model(path)
        return _Graph(model, openvino_compile(model), layer.axes, layer.epsilon, layer.param_dtype)

    def parameters(self, layer):
        scale = _constant_values(self._node(layer.model, "scale"))
        return {"scale": scale.reshape([scale.shape[k] for k in layer.axes]) if scale.ndim else scale}

    def effective(self, layer) -> dict:
        """The epsilon and scale the graph's constants hold (in the graph's element type)."""
        eps = _constant_values(self._node(layer.model, "epsilon"))
        return {"epsilon": float(eps.astype(np.float64)), **self.parameters(layer)}

    def config(self, layer):
        return {"ops": list(OPS), "axes": list(layer.axes), "epsilon": layer.epsilon,
                "element_type": layer.param_dtype, "device": "CPU",
                "inference_precision": str(layer.compiled.get_property("INFERENCE_PRECISION_HINT"))}

    def defaults(self) -> dict:
        return {"axis": "ReduceMean's axes (given)", "epsilon": "none (a constant of the graph)",
                "scale_init": "a constant (given)", "parameter_dtype": "the graph's element type"}
