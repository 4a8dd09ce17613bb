"""Liger Kernel's Triton RMS norm, `liger_kernel.transformers.rms_norm.LigerRMSNorm`, as the models
Liger patches run it.

- `LigerRMSNorm(hidden_size, eps)` with its defaults otherwise: `offset=0.0`,
  `casting_mode="llama"` (the mean of squares and rstd in float32, `x * rstd` cast back to x's
  dtype, then times the weight), `in_place=True` (the backward writes dx into dy's buffer: the
  adapter hands it a copy).  It normalizes the last axis (`X.view(-1, hidden)`); other axes,
  several axes and rank 0 are declined.  `eps` is the case's, or the class's default (1e-6).
- The module is moved to the parameter dtype as the Hugging Face adapters do (not for the
  `default_` precisions: float32, as constructed); the weight is the case's scale.  Liger's
  kernel pins `eps` to float32 (`eps.to(tl.float32)`), which `effective()` reports.
- On the CPU the kernels run in Triton's interpreter: `env` sets `TRITON_INTERPRET=1` before
  anything imports Triton (`@triton.jit` reads it when Liger's module is imported).  On
  `--device cuda` the variable is removed in `load()`, before that import, and the kernels are
  compiled.  `load()` runs the module once on a tiny input; where the interpreter cannot run it
  (Triton 3.9's interpreter passes `eps` as a Python float, and the kernel's `eps.to(...)` raises
  an `InterpreterError`), `supports()` declines every case with that reason instead of recording
  the same crash for each: the kernel is not patched, nor is Triton.
- Gradients with autograd (`LigerRMSNormFunction.backward`, more Triton kernels).  The Function
  has no forward-mode rule and its backward is not differentiable: no `jvp`, no `hvp`.
- A worker of its own: the interpreter is process-wide.
"""
from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters.hf_transformers import _HFNorm

# What the interpreter's failure means, when it is that failure (read from Liger's kernel source).
EPS_AS_FLOAT = ("'float' object has no attribute 'to'",
                "the kernel calls eps.to(tl.float32) on the Python float the interpreter passes for eps")


class LigerRMSNorm(_HFNorm):
    name = "liger"
    module_path = "liger_kernel.transformers.rms_norm:LigerRMSNorm"
    packages = ("liger-kernel", "triton", "torch")
    owners = ("liger-kernel", "triton")
    env = {"TRITON_INTERPRET": "1"}  # Triton's interpreter on the CPU (see load() for the accelerator)
    worker_group = None
    jvp = Adapter.jvp  # an autograd.Function without a forward-mode rule
    hvp = Adapter.hvp  # whose backward (Triton kernels) is not differentiated again
    interpreter_problem: str | None = None

    def load(self):
        import importlib.metadata
        import os

        if self.device != "cpu":
            os.environ.pop("TRITON_INTERPRET", None)  # compiled kernels on the accelerator
        versions = super().load()
        import triton

        versions = {"liger-kernel": importlib.metadata.version("liger-kernel"), "triton": triton.__version__,
                    "torch": versions["torch"]}
        if os.environ.get("TRITON_INTERPRET") == "1":
            self.interpreter_problem = self._probe_interpreter(triton, versions)
        return versions

    def _probe_interpreter(self, triton, versions: dict) -> str | None:
        """Why the interpreter cannot run the module (one forward call on a tiny input), or None."""
        from triton.runtime.errors import InterpreterError

        torch = self.torch
        try:
            with torch.no_grad():
                self.cls(8)(torch.ones(2, 8))
        except InterpreterError as exc:
            why = f"{type(exc).__name__}: {exc}"
            if EPS_AS_FLOAT[0] in str(exc):
                why += f" ({EPS_AS_FLOAT[1]})"
            return (f"Triton {versions['triton']}'s interpreter (TRITON_INTERPRET=1, how Triton runs on the CPU) cannot "
                    f"run liger-kernel {versions['liger-kernel']}'s RMS norm kernel: {why}; it runs compiled on "
                    f"--device cuda")
        return None

    def supports(self, spec):
        if self.interpreter_problem:
            return self.interpreter_problem
        if not spec.is_last_axis:
            return f"LigerRMSNorm normalizes the last axis only (x.view(-1, hidden)); the case asks for {list(spec.axis)}"
        return None

    def snippet(self, spec) -> dict:
        """The Hugging Face adapters' script with Liger's class; the interpreter's variable on the
        CPU, the accelerator as torch's default device elsewhere."""
        out = super().snippet(spec)
        if self.device == "cpu":
            out["imports"] = f"os.environ.update({dict(self.env)!r})  # read when Triton kernels are defined\n" + \
                             out["imports"]
        else:
            out["imports"] += f"\nimport torch\ntorch.set_default_device({self.device!r})"
        return out

    def effective(self, layer) -> dict:
        """eps as the kernel uses it: pinned to float32."""
        m = layer.module
        return {"epsilon": float(np.float32(m.variance_epsilon)), "scale": self.parameters(layer)["weight"]}

    def config(self, layer):
        m = layer.module
        return {**super().config(layer), "offset": m.offset, "casting_mode": m.casting_mode, "in_place": m.in_place,
                "interpret": self.device == "cpu"}
