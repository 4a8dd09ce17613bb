"""`torch.nn.RMSNorm`, as a PyTorch user writes it.

- `normalized_shape` is the sizes of the requested axes, which must be the
  trailing ones: that is all the module can express; other axes, rank-0 inputs
  and an empty axis list are declined by `supports()`.
- The weight has the parameter dtype of the case (float32 for the mixed
  policies, fed half-precision inputs: torch's own mixed-dtype path); for the
  `default_` precisions the module gets no `dtype` (torch's default, float32).
- `eps=None` is passed through; torch documents `torch.finfo(x.dtype).eps`,
  which `config()["epsilon"]` reports.  `claims()` checks that documentation
  against the module (for half inputs the CPU kernel uses float32's epsilon).
- Eager mode, gradients with autograd (`backward`), one thread (see runner.py).
- The fused forms as a user writes them around the module (adapters/torch_fused.py): the fused
  add `x + residual` in the input's dtype then the module (`fused_add_sum = "input"`), the fp8
  output `(y / scale).clamp(-448, 448).to(torch.float8_e4m3fn)`; `torch-functional` the same
  around `rms_norm`.
"""
from __future__ import annotations

from dataclasses import dataclass

from conformance.adapter import Adapter
from conformance.adapters._convert import describe_init, torch_dtype, torch_layout, use_torch_device
from conformance.adapters._snippets import bind, invoke, snippet
from conformance.adapters._steps import from_torch, to_torch, torch_backward, torch_call
from conformance.adapters.torch_fused import torch_fused_add, torch_fused_add_backward, torch_quantized


def torch_module(input_shape, axes, eps, param_dtype, dtype_args):
    """`torch.nn.RMSNorm` over the trailing `axes`, in the parameters' dtype (torch's default
    where the case passes no dtype)."""
    import torch

    return torch.nn.RMSNorm(tuple(input_shape[k] for k in axes), eps=eps,
                            dtype=getattr(torch, param_dtype) if dtype_args else None)


def torch_rmsnorm(input_shape, axes, eps, scale, param_dtype, dtype_args):
    """The module, its weight loaded from the case's scale."""
    import torch

    module = torch_module(input_shape, axes, eps, param_dtype, dtype_args)
    with torch.no_grad():
        module.weight.copy_(to_torch(scale))
    return module


@dataclass
class _Built:
    module: object  # the torch.nn.Module; for torch-functional, the function with its arguments bound
    input_dtype: str
    compiled: object = None  # what a call runs instead of the module (torch-compile)

    @property
    def forward(self):
        return self.module if self.compiled is None else self.compiled


class TorchRMSNorm(Adapter):
    name = "torch"
    worker_group = "torch"  # with torch-functional, the Hugging Face adapters and torch-onnx
    device_family = "torch"
    packages = ("torch",)
    owners = ("pytorch",)

    def load(self):
        import torch

        self.torch = torch
        use_torch_device(self.device)
        return {"torch": torch.__version__}

    def supports(self, spec):
        if not spec.axes:
            return "torch.nn.RMSNorm needs at least one normalized dimension (normalized_shape cannot be empty)"
        if not spec.is_trailing:
            return f"torch.nn.RMSNorm normalizes trailing dimensions only; axes {list(spec.axis)} of a rank-{len(spec.input_shape)} input are not"
        return None

    def build(self, spec):
        return _Built(bind(torch_rmsnorm, spec), spec.compute_dtype)

    def _params(self, layer) -> list:
        return [layer.module.weight]

    def call(self, layer, x):
        return torch_call(layer.forward, x)

    def grad(self, layer, x, dy):
        dx, (dweight,) = torch_backward(layer.forward, self._params(layer), x, dy)
        return dx, dweight

    # -- the fused forms, as a PyTorch user writes them around the layer (adapters/torch_fused.py) --
    fused_add_sum = "input"  # x + residual in the input's dtype, as torch adds two half tensors

    def call_fused_add(self, layer, x, residual):
        return torch_fused_add(layer.forward, x, residual)

    def grad_fused_add(self, layer, x, residual, dy, dresidual):
        dx, dres, (dweight,) = torch_fused_add_backward(layer.forward, self._params(layer), x, residual, dy, dresidual)
        return dx, dres, dweight

    def call_quantized(self, layer, x, scale):
        return torch_quantized(layer.forward, x, scale)

    # -- the property checks' methods --
    def call_layout(self, layer, x, layout):
        """The input as a non-contiguous tensor (transposed, strided, channels_last)."""
        with self.torch.no_grad():
            return from_torch(layer.forward(torch_layout(x, layout)))

    def jvp(self, layer, x, v):
        """Forward mode, `torch.func.jvp`."""
        y, t = self.torch.func.jvp(layer.forward, (to_torch(x),), (to_torch(v),))
        return from_torch(y), from_torch(t)

    def hvp(self, layer, x, dy, v):
        """Double backward: the gradient of <dx, v>, dx taken with create_graph=True."""
        torch = self.torch
        xt = to_torch(x).requires_grad_(True)
        y = layer.forward(xt)
        (dx,) = torch.autograd.grad(y, xt, to_torch(dy).to(y.dtype), create_graph=True)
        (h,) = torch.autograd.grad((dx * to_torch(v)).sum(), xt)
        return from_torch(h)

    _build_fn = staticmethod(torch_rmsnorm)  # what build() builds with, for snippet()
    _compile_fn = None  # what compiles the built module (torch-compile)

    def snippet(self, spec) -> dict:
        """build() and call() as a script: the same functions, numpy and torch only."""
        build, entries = invoke("layer", self._build_fn), [self._build_fn, torch_call]
        if self._compile_fn is not None:
            build += f"\nlayer = {self._compile_fn.__name__}(layer)"
            entries.append(self._compile_fn)
        return snippet(*entries, build=build, call="out = torch_call(layer, x)")

    def defaults(self) -> dict:
        m = self.torch.nn.RMSNorm(8)
        return {"axis": "trailing normalized_shape (required argument)", "epsilon": "None: torch.finfo(x.dtype).eps (documented)",
                "scale_init": describe_init(from_torch(m.weight)),
                "parameter_dtype": str(m.weight.dtype).removeprefix("torch.")}

    def claims(self) -> list[dict]:
        """torch's documented default epsilon, checked against the module on tiny inputs."""
        torch = self.torch
        out = []
        for dtype in (torch.float16, torch.bfloat16, torch.float32):
            x = (torch.linspace(-1, 1, 16, dtype=torch.float64) * 1e-3).reshape(1, 16).to(dtype)
            y = torch.nn.RMSNorm(16, eps=None, dtype=dtype)(x).detach().double()
            x64 = x.double()
            gaps = {}
            for label, eps in (("finfo(x.dtype).eps", torch.finfo(dtype).eps), ("finfo(float32).eps", torch.finfo(torch.float32).eps)):
                ref = x64 / torch.sqrt((x64 * x64).mean(-1, keepdim=True) + eps)
                gaps[label] = float((y - ref).abs().max())
            closest = min(gaps, key=gaps.get)
            out.append({"claim": f"torch.nn.RMSNorm docs: eps=None uses torch.finfo(x.dtype).eps ({str(dtype).removeprefix('torch.')} input)",
                        "holds": closest == "finfo(x.dtype).eps" or dtype == torch.float32,
                        "observed": f"on inputs of magnitude 1e-3 the output matches {closest} "
                                    f"(max differences: " + ", ".join(f"{k} {v:.3g}" for k, v in gaps.items()) + ")"})
        return out

    def _same_constructor(self, m):
        """A fresh module from m's own constructor arguments (its attributes)."""
        return self.torch.nn.RMSNorm(m.normalized_shape, eps=m.eps, elementwise_affine=m.elementwise_affine,
                                     dtype=m.weight.dtype)

    def rebuild(self, layer):
        new = self._same_constructor(layer.module)
        new.load_state_dict(layer.module.state_dict())
        return _Built(new, layer.input_dtype)

    def save_load(self, layer, folder):
        path = f"{folder}/rmsnorm.pt"
        self.torch.save(layer.module.state_dict(), path)
        new = self._same_constructor(layer.module)
        new.load_state_dict(self.torch.load(path, weights_only=True))
        return _Built(new, layer.input_dtype)

    def parameters(self, layer):
        return {name: from_torch(p) for name, p in layer.module.named_parameters()}

    def config(self, layer):
        m = layer.module
        eps = m.eps if m.eps is not None else self.torch.finfo(torch_dtype(layer.input_dtype)).eps
        return {
            "normalized_shape": list(m.normalized_shape),
            "eps": m.eps,
            "elementwise_affine": m.elementwise_affine,
            "weight_dtype": str(m.weight.dtype).removeprefix("torch."),
            "epsilon": eps,
        }
