"""`torch.nn.functional.rms_norm`, as a user calling the function writes it.

- `normalized_shape` is the sizes of the requested axes, which must be trailing (as for
  `torch.nn.RMSNorm`); other axes, rank-0 inputs and an empty axis list are declined.
- `weight` is a tensor in the case's parameter dtype (torch's default dtype, float32, for
  the `default_` precisions); `eps` is passed as given, `None`
  for torch's default (`config()` reports `torch.finfo(x.dtype).eps`, as documented).
- There is no module: no configuration to rebuild from and nothing to save, so
  `rebuild` and `save_load` are unsupported.  Gradients with autograd.
"""
from __future__ import annotations

from dataclasses import dataclass

from conformance.adapters._convert import torch_dtype, torch_from_numpy, torch_param_dtype, torch_to_numpy
from conformance.adapters._snippets import TORCH_IMPORTS, TORCH_OUTPUT, join
from conformance.adapters.torch_nn import TorchRMSNorm


@dataclass
class _Call:
    normalized_shape: list
    weight: object
    eps: float | None
    input_dtype: str


class TorchFunctional(TorchRMSNorm):
    name = "torch-functional"

    def build(self, spec):
        weight = torch_from_numpy(spec.scale).to(torch_param_dtype(spec) or self.torch.get_default_dtype())
        weight.requires_grad_(True)
        return _Call([spec.input_shape[a] for a in spec.axes], weight, spec.epsilon, spec.compute_dtype)

    def _forward(self, layer, xt):
        return self.torch.nn.functional.rms_norm(xt, layer.normalized_shape, layer.weight, layer.eps)

    def grad(self, layer, x, dy):
        xt = torch_from_numpy(x).requires_grad_(True)
        layer.weight.grad = None
        self._forward(layer, xt).backward(torch_from_numpy(dy))
        return torch_to_numpy(xt.grad), torch_to_numpy(layer.weight.grad)

    def defaults(self) -> dict:
        return {"axis": "trailing normalized_shape (required argument)", "epsilon": "None: torch.finfo(x.dtype).eps (documented)",
                "scale_init": "given (weight=None: no scale)", "parameter_dtype": "the weight's"}

    def claims(self) -> list[dict]:
        return []

    def rebuild(self, layer):
        raise NotImplementedError("a function has no configuration of its own")

    def save_load(self, layer, folder):
        raise NotImplementedError("a function has nothing to save")

    def parameters(self, layer):
        return {"weight": torch_to_numpy(layer.weight)}

    def config(self, layer):
        eps = layer.eps if layer.eps is not None else self.torch.finfo(torch_dtype(layer.input_dtype)).eps
        return {"normalized_shape": list(layer.normalized_shape), "eps": layer.eps, "epsilon": eps}

    def snippet(self, spec) -> dict:
        dtype = "" if spec.no_dtype_args else ".to(getattr(torch, param_dtype))"
        return {
            "imports": TORCH_IMPORTS,
            "build": f"""
                weight = to_torch(scale){dtype}
                normalized_shape = [input_shape[k] for k in axes]
            """,
            "call": join("""
                with torch.no_grad():
                    out = torch.nn.functional.rms_norm(to_torch(x), normalized_shape, weight, eps)
            """, TORCH_OUTPUT),
        }
