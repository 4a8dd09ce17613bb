"""Hugging Face `transformers` RMS norms, as model code runs them (torch, CPU).

- `hf-llama` (`LlamaRMSNorm`), `hf-gemma` (`GemmaRMSNorm`), `hf-t5` (`T5LayerNorm`): each
  normalizes the last axis only (`mean(-1)`); other axes, several axes and rank-0
  inputs are declined.  `hidden_size` is the last dimension; `eps` is passed when the
  case gives one, else the class's default (1e-6).
- The module is moved to the case's parameter dtype (`.to(dtype)`, as `from_pretrained`
  with `torch_dtype` does): float32 weights under the mixed policies, fed half inputs;
  not moved at all for the `default_` precisions (float32, as constructed).
  Each class then does its own casting: Llama and T5 compute in float32 and multiply the
  weight after casting back, Gemma multiplies `(1 + weight)` in float32.
- Gemma's weight is the offset from 1: for the plain cases the adapter loads `scale - 1` in
  the parameter dtype, and `effective()` reports the scale the layer really applies, `1 + w` as
  the layer computes it (in bfloat16, -0.0037 + 1 rounds away).  The offset form
  (`build_offset`) loads the case's w as it is and is scored against the offset oracle, which
  tells whether 1 + w is added in float32 or in the weight's dtype.
- Gradients with autograd; one thread (see runner.py).
"""
from __future__ import annotations

import importlib

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._convert import describe_init, use_torch_device
from conformance.adapters._snippets import Source, bind, invoke, snippet
from conformance.adapters._steps import from_torch, to_torch, torch_call
from conformance.adapters.torch_nn import TorchRMSNorm, _Built


def hf_rmsnorm(cls, input_shape, eps, scale, param_dtype, dtype_args, offset):
    """The transformers class `cls` for the last axis (its default eps unless the case gives one),
    moved to the parameters' dtype as from_pretrained(torch_dtype=...) does, its weight loaded
    from the case's scale (offset: the layer applies 1 + weight, so the weight is scale - 1, in
    the scale's dtype)."""
    import torch

    module = cls(input_shape[-1]) if eps is None else cls(input_shape[-1], eps=eps)
    if dtype_args:
        module = module.to(dtype=getattr(torch, param_dtype))
    weight = (scale.astype(np.float64) - 1.0).astype(scale.dtype) if offset else scale
    with torch.no_grad():
        module.weight.copy_(to_torch(weight))
    return module


class _HFNorm(TorchRMSNorm):
    module_path = ""  # "transformers.models.llama.modeling_llama:LlamaRMSNorm"
    eps_attribute = "variance_epsilon"
    offset = False  # the layer multiplies by 1 + weight (Gemma)
    packages = ("transformers", "torch")
    owners = ("transformers", "pytorch")
    # The fused add and fp8 output are torch's reference module's (torch_fused.py), not the
    # transformers classes': withdrawn here.  Gemma's offset is its own (HFGemma.build_offset).
    call_fused_add, grad_fused_add, call_quantized = Adapter.call_fused_add, Adapter.grad_fused_add, Adapter.call_quantized

    def load(self):
        import torch
        import transformers

        self.torch = torch
        use_torch_device(self.device)
        module, _, cls = self.module_path.partition(":")
        self.cls = getattr(importlib.import_module(module), cls)
        return {"torch": torch.__version__, "transformers": transformers.__version__}

    def supports(self, spec):
        if not spec.is_last_axis:
            return f"{self.cls.__name__} normalizes the last axis only (mean(-1)); the case asks for {list(spec.axis)}"
        return None

    def _new(self, hidden: int, eps, dtype):
        kwargs = {} if eps is None else {"eps": eps}
        module = self.cls(hidden, **kwargs)
        return module if dtype is None else module.to(dtype=dtype)

    def build(self, spec):
        return _Built(bind(hf_rmsnorm, spec, cls=self.cls, offset=self.offset), spec.compute_dtype)

    def snippet(self, spec) -> dict:
        module, _, cls = self.module_path.partition(":")
        return snippet(hf_rmsnorm, torch_call, imports=(f"from {module} import {cls}",),
                       build=invoke("layer", hf_rmsnorm, cls=Source(cls), offset=self.offset),
                       call="out = torch_call(layer, x)")

    def defaults(self) -> dict:
        m = self.cls(8)
        return {"axis": "last (mean(-1))", "epsilon": getattr(m, self.eps_attribute),
                "scale_init": describe_init(from_torch(m.weight)),
                "parameter_dtype": str(m.weight.dtype).removeprefix("torch.")}

    def claims(self) -> list[dict]:
        return []

    def _same_constructor(self, m):
        return self._new(m.weight.shape[0], getattr(m, self.eps_attribute), m.weight.dtype)

    def config(self, layer):
        m = layer.module
        return {"hidden_size": int(m.weight.shape[0]), "eps": getattr(m, self.eps_attribute),
                "weight_dtype": str(m.weight.dtype).removeprefix("torch."), "epsilon": getattr(m, self.eps_attribute)}


class HFLlama(_HFNorm):
    name = "hf-llama"
    module_path = "transformers.models.llama.modeling_llama:LlamaRMSNorm"


class HFT5(_HFNorm):
    name = "hf-t5"
    module_path = "transformers.models.t5.modeling_t5:T5LayerNorm"


class HFGemma(_HFNorm):
    name = "hf-gemma"
    module_path = "transformers.models.gemma.modeling_gemma:GemmaRMSNorm"
    eps_attribute = "eps"
    offset = True  # the layer applies 1 + w

    def build_offset(self, spec):
        """The offset form, natively: GemmaRMSNorm with `spec.scale` as its weight w (the layer
        applies 1 + w; its offset is fixed at 1)."""
        if spec.offset != 1.0:
            raise NotImplementedError(f"GemmaRMSNorm's offset is 1, not {spec.offset}")
        return _Built(bind(hf_rmsnorm, spec, cls=self.cls, offset=False), spec.compute_dtype)

    def effective(self, layer) -> dict:
        """The scale the layer multiplies by: 1 + w, in float32, as GemmaRMSNorm.forward computes it."""
        w = layer.module.weight.detach().float()
        return {"scale": from_torch(1.0 + w), "epsilon": float(layer.module.eps)}
