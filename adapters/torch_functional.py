"""`torch.nn.functional.rms_norm`, as a user calling the function writes it.

- `normalized_shape` is the sizes of the requested axes, which must be trailing (as for
  `torch.nn.RMSNorm`); other axes, rank-0 inputs and an empty axis list are declined.
- `weight` is a tensor in the case's parameter dtype (torch's default dtype, float32, for
  the `default_` precisions); `eps` is passed as given, `None`
  for torch's default (`config()` reports `torch.finfo(x.dtype).eps`, as documented).
- There is no module: no configuration to rebuild from and nothing to save, so
  `rebuild` and `save_load` are not provided.  Gradients with autograd.
"""
from __future__ import annotations

from conformance.adapter import Adapter
from conformance.adapters._convert import torch_dtype
from conformance.adapters._snippets import bind
from conformance.adapters._steps import from_torch, to_torch
from conformance.adapters.torch_nn import TorchRMSNorm, _Built


def torch_functional_rmsnorm(input_shape, axes, eps, scale, param_dtype, dtype_args):
    """`torch.nn.functional.rms_norm` with the case's arguments bound, a function of x: the weight
    in the parameters' dtype (torch's default dtype where the case passes none)."""
    import functools

    import torch

    weight = to_torch(scale).to(getattr(torch, param_dtype) if dtype_args else torch.get_default_dtype())
    return functools.partial(torch.nn.functional.rms_norm, normalized_shape=[input_shape[k] for k in axes],
                             weight=weight, eps=eps)


class TorchFunctional(TorchRMSNorm):
    name = "torch-functional"
    _build_fn = staticmethod(torch_functional_rmsnorm)
    rebuild = Adapter.rebuild  # a function has no configuration of its own
    save_load = Adapter.save_load  # nor anything to save

    def build(self, spec):
        fn = bind(torch_functional_rmsnorm, spec)
        fn.keywords["weight"].requires_grad_(True)
        return _Built(fn, spec.compute_dtype)

    def _params(self, layer) -> list:
        return [layer.module.keywords["weight"]]

    def defaults(self) -> dict:
        return {"axis": "trailing normalized_shape (required argument)", "epsilon": "None: torch.finfo(x.dtype).eps (documented)",
                "scale_init": "given (weight=None: no scale)", "parameter_dtype": "the weight's"}

    def claims(self) -> list[dict]:
        return []

    def parameters(self, layer):
        return {"weight": from_torch(self._params(layer)[0])}

    def config(self, layer):
        shape, eps = layer.module.keywords["normalized_shape"], layer.module.keywords["eps"]
        used = eps if eps is not None else self.torch.finfo(torch_dtype(layer.input_dtype)).eps
        return {"normalized_shape": list(shape), "eps": eps, "epsilon": used}
