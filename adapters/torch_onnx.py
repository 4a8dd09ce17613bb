"""`torch.nn.RMSNorm` exported with `torch.onnx.export(dynamo=True)` and run in onnxruntime:
what a model porter gets.

- The module is built as the `torch` adapter builds it (trailing axes only, weight in the
  parameter dtype or torch's default, `eps=None` passed through) and exported at opset 23 for the case's
  input shape and dtype; the exporter (onnxscript) emits one `RMSNormalization` node.
  An export that fails is recorded as the case's error: that is the finding.
- Exports are reused across cases with the same module and input (the weight is an
  initializer, replaced per case), since one costs ~0.6 s; with a run cache (--cache-dir) they
  are kept there as verified entries (conformance/execution/entries.py), keyed by the adapter's
  identity (its class and a digest of its source, so a subclass never shares them), the export's
  inputs and the exporter's versions; an entry that fails verification or does not decode is
  removed, said in one warning line, and exported again.
  The exporter rebuilds its registry of torchlib functions on every call (~0.4 s of its ~0.6 s,
  parsing the source of ~2,500 functions); `_reuse_torchlib_registry` builds it once per
  process and hands each export a fresh copy, so the models are byte-identical and cost ~0.2 s.
- Run by onnxruntime's CPU provider, one thread.  `effective()` reports the epsilon the
  exported node stores (a 32-bit float attribute).  Forward only.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._convert import torch_param_dtype
from conformance.adapters._snippets import Source, bind, expression, invoke, snippet
from conformance.adapters.onnx_op import OnnxRuntime, _Model, ort_session
from conformance.adapters.torch_nn import TorchRMSNorm, torch_module
from conformance.execution import entries
from conformance.execution.cache import ENV as CACHE_ENV


def torch_onnx_export(module, input_shape, compute_dtype):
    """The module exported as a model porter does: `torch.onnx.export(dynamo=True)` at opset 23,
    for an input of the case's shape and dtype (the exporter's chatter silenced)."""
    import contextlib
    import io
    import warnings

    import torch

    example = torch.zeros(input_shape, dtype=getattr(torch, compute_dtype))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), dynamo=True, opset_version=23)
    return program.model_proto


def with_weight(proto, scale, param_dtype):
    """A copy of the exported model with its `weight` initializer set to the case's scale (a
    bfloat16 initializer travels as its bits)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    for init in model.graph.initializer:
        if init.name == "weight":
            scale = np.asarray(scale)
            bf16 = param_dtype == "bfloat16"
            new = numpy_helper.from_array(scale.view(np.uint16) if bf16 else scale, "weight")
            if bf16:
                new.data_type = onnx.TensorProto.BFLOAT16
            init.CopyFrom(new)
    return model


def exported_call(session, x):
    """The exported graph's one input is x (its weight an initializer)."""
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _reuse_torchlib_registry() -> None:
    """Build the exporter's torchlib registry once per process instead of once per export.

    `torch.onnx.export` calls `ONNXRegistry.from_torchlib()` each time and only reads the result
    (a `custom_translation_table` adds to it, so every call still gets a copy of its own).  A
    private API: on a torch without it, exports simply stay slow."""
    try:
        from torch.onnx._internal.exporter._registration import ONNXRegistry

        build = ONNXRegistry.__dict__["from_torchlib"].__func__
    except (ImportError, KeyError, AttributeError):
        return
    if getattr(build, "reused", False):  # a second adapter in this worker already did it
        return
    built: dict = {}

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in built:
            built[key] = build(cls, *args, **kwargs)
        fresh = cls()
        fresh._opset_version = built[key]._opset_version
        fresh.functions = {target: list(metas) for target, metas in built[key].functions.items()}
        return fresh

    from_torchlib.reused = True
    ONNXRegistry.from_torchlib = classmethod(from_torchlib)


class TorchOnnx(OnnxRuntime):
    name = "torch-onnx"
    worker_group = "torch"  # it imports torch to export the graph
    packages = ("torch", "onnx", "onnxruntime", "onnxscript")
    owners = ("pytorch", "onnxruntime", "onnx")  # the exporter, the runtime, the format
    call_fused_add = Adapter.call_fused_add  # onnxruntime's contrib op is not what torch exports

    def load(self):
        import torch

        self.torch = torch
        versions = super().load()
        import onnxscript

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # torchvision notices, per export
        _reuse_torchlib_registry()
        self._exported: dict = {}
        self.onnxscript_version = onnxscript.__version__
        return {**versions, "torch": torch.__version__, "onnxscript": onnxscript.__version__}

    def supports(self, spec):
        return TorchRMSNorm.supports(self, spec)

    def _export(self, spec):
        key = (tuple(spec.input_shape), spec.compute_dtype, str(torch_param_dtype(spec)), spec.epsilon, spec.axes)
        if key not in self._exported:
            store, entry = self._cache_entry(key)
            model = store.get(entry, self.onnx.load_model_from_string) if store else None
            if model is None:
                model = bind(torch_onnx_export, spec, module=bind(torch_module, spec))
                if store:
                    store.put(entry, model.SerializeToString())
            self._exported[key] = model
        return self._exported[key]

    def _cache_entry(self, key) -> tuple[entries.Entries | None, str]:
        """The run's cache (--cache-dir) of exports, and this export's key there: the model
        depends on the adapter's code (the class, its bases and the functions it builds the module
        with), the export's inputs and the exporter's versions (the weight is replaced per case).
        No store without a cache, or where the adapter's source cannot be read."""
        if "_store" not in self.__dict__:  # once per process
            folder = os.environ.get(CACHE_ENV)
            identity = entries.adapter_identity(type(self), torch_module, torch_onnx_export, bind, torch_param_dtype)
            self._store = entries.Entries(Path(folder) / "torch-onnx") if folder and identity else None
            self._identity = identity
        if self._store is None:
            return None, ""
        versions = {"torch": self.torch.__version__, "onnxscript": self.onnxscript_version,
                    "onnx": self.onnx.__version__}
        parts = {"what": "torch.onnx.export model", **self._identity, "versions": versions,
                 "device": getattr(self, "device", "cpu"), "export": [list(key[0]), *key[1:3], key[3], list(key[4])]}
        return self._store, entries.key(parts)

    def build(self, spec):
        proto = bind(with_weight, spec, proto=self._export(spec))
        axis = next((a.i for a in proto.graph.node[0].attribute if a.name == "axis"), spec.axes[0])
        return _Model(proto, self._runner(proto), axis, spec.epsilon), spec.scale

    def snippet(self, spec) -> dict:
        """The module exported as build() exports it, its weight set as build() sets it, run as
        onnxruntime runs it."""
        export = invoke("model", torch_onnx_export, module=Source(expression(torch_module)))
        return snippet(torch_module, torch_onnx_export, with_weight, ort_session, exported_call,
                       build=export + "\n" + invoke("layer", with_weight, proto=Source("model")),
                       call="out = exported_call(ort_session(layer), x)")

    def _run(self, session, x, scale):
        return exported_call(session, x)

    def config(self, layer):
        model, _ = layer
        eps = model.epsilon if model.epsilon is not None else self._attribute_epsilon(model)
        return {"axis": model.axis, "opset": 23, "epsilon": eps, "nodes": [n.op_type for n in model.proto.graph.node]}

    def defaults(self) -> dict:
        return {"axis": "trailing normalized_shape", "epsilon": "torch's (eps=None), as exported",
                "scale_init": "the module's weight, an initializer", "parameter_dtype": "the module's"}
