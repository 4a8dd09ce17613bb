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
- Gemma's weight is the offset from 1: the adapter loads `scale - 1` in the parameter
  dtype, and `effective()` reports the scale the layer really applies, `1 + w` as the
  layer computes it (in bfloat16, -0.0037 + 1 rounds away).
- Gradients with autograd; one thread (see runner.py).
"""
from __future__ import annotations

import importlib

import numpy as np

from conformance.adapters._convert import describe_init, torch_from_numpy, torch_param_dtype, torch_to_numpy, use_torch_device
from conformance.adapters._snippets import TORCH_IMPORTS, TORCH_OUTPUT, join
from conformance.adapters.torch_nn import TorchRMSNorm, _Built


class _HFNorm(TorchRMSNorm):
    module_path = ""  # "transformers.models.llama.modeling_llama:LlamaRMSNorm"
    eps_attribute = "variance_epsilon"
    packages = ("transformers", "torch")

    def load(self):
        import torch
        import transformers

        self.torch = torch
        use_torch_device(self.device)
        module, _, cls = self.module_path.partition(":")
        self.cls = getattr(importlib.import_module(module), cls)
        return {"torch": torch.__version__, "transformers": transformers.__version__}

    def supports(self, spec):
        rank = len(spec.input_shape)
        if rank == 0 or spec.axes != (rank - 1,):
            return f"{self.cls.__name__} normalizes the last axis only (mean(-1)); the case asks for {list(spec.axis)}"
        return None

    def _weight(self, scale: np.ndarray) -> np.ndarray:
        return scale

    def _new(self, hidden: int, eps, dtype):
        kwargs = {} if eps is None else {"eps": eps}
        module = self.cls(hidden, **kwargs)
        return module if dtype is None else module.to(dtype=dtype)

    def build(self, spec):
        module = self._new(spec.input_shape[-1], spec.epsilon, torch_param_dtype(spec))
        with self.torch.no_grad():
            module.weight.copy_(torch_from_numpy(self._weight(spec.scale)))
        return _Built(module, spec.compute_dtype)

    def defaults(self) -> dict:
        m = self.cls(8)
        return {"axis": "last (mean(-1))", "epsilon": getattr(m, self.eps_attribute),
                "scale_init": describe_init(torch_to_numpy(m.weight)),
                "parameter_dtype": str(m.weight.dtype).removeprefix("torch.")}

    def claims(self) -> list[dict]:
        return []

    def _same_constructor(self, m):
        return self._new(m.weight.shape[0], getattr(m, self.eps_attribute), m.weight.dtype)

    def config(self, layer):
        m = layer.module
        return {"hidden_size": int(m.weight.shape[0]), "eps": getattr(m, self.eps_attribute),
                "weight_dtype": str(m.weight.dtype).removeprefix("torch."), "epsilon": getattr(m, self.eps_attribute)}

    _snippet_weight = "to_torch(scale)"

    def snippet(self, spec) -> dict:
        module, _, cls = self.module_path.partition(":")
        move = "" if spec.no_dtype_args else ".to(dtype=getattr(torch, param_dtype))"
        return {
            "imports": join(TORCH_IMPORTS, f"from {module} import {cls}"),
            "build": f"""
                layer = ({cls}(input_shape[-1]) if eps is None else {cls}(input_shape[-1], eps=eps)){move}
                with torch.no_grad():
                    layer.weight.copy_({self._snippet_weight})
            """,
            "call": join("""
                with torch.no_grad():
                    out = layer(to_torch(x))
            """, TORCH_OUTPUT),
        }


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

    def _weight(self, scale: np.ndarray) -> np.ndarray:
        return (scale.astype(np.float64) - 1.0).astype(scale.dtype)  # the layer applies 1 + w

    _snippet_weight = "(to_torch(scale).double() - 1.0).to(layer.weight.dtype)"  # the layer applies 1 + w

    def effective(self, layer) -> dict:
        """The scale the layer multiplies by: 1 + w, in float32, as GemmaRMSNorm.forward computes it."""
        w = layer.module.weight.detach().float()
        return {"scale": torch_to_numpy(1.0 + w), "epsilon": float(layer.module.eps)}
