"""JAX's Pallas RMS norm kernel, `jax.experimental.pallas.ops.gpu.rms_norm.rms_norm`, as a Pallas
user calls it.

- The kernel is a Triton-style Pallas kernel written for the GPU.  On the CPU it runs with
  `interpret=True` (Pallas's interpreter, the same kernel body evaluated as JAX operations); on
  `--device gpu` it is compiled for the GPU (`interpret=False`).  `config()` says which.
- It normalizes the last axis of an input of rank exactly 3 (two `jax.vmap`s over the leading
  axes around a one-row `pallas_call`): the case's leading axes are reshaped to `(1, rows, n)`,
  as a user with another rank does, and back.  Only the single last axis is expressible (other
  axes, several axes, rank 0 and an empty axis list are declined).
- `rms_norm(x, weight, bias, eps=...)` requires a bias: it is fixed at zero (`jnp.zeros` of the
  weight's shape and dtype, made inside the traced function) and is not a parameter of the layer
  (its gradient is computed by the kernel and dropped).  The weight is the case's scale, in the
  parameter dtype (float32 for the mixed and default precisions: a function has no defaults).
- `eps` is the case's (a static Python float), or not passed for the kernel's default, 1e-5.
- Numerics as the source has them: each row is loaded and cast to float32, the sum of squares
  accumulated blockwise in `jnp.zeros(block_size)` (float64 under JAX_ENABLE_X64=1, which every
  JAX adapter here runs with), `rstd = 1 / sqrt(var + eps)`, `x * rstd * weight + bias` cast to
  x's dtype.  Float64 inputs are cast to float32 by the kernel itself.  The output has x's dtype
  whatever it is (an integer input comes back integer), and no shape is checked (a row wider than
  the weight is read past it).
- Gradients: `rms_norm` is a `jax.custom_vjp` whose backward is two more Pallas kernels (dx
  from the saved `rstd`, stored in x's dtype; dweight reduced over rows); `jax.vjp` runs it.  A
  custom_vjp has no forward mode (`jvp` raises by design) and its backward is not
  differentiable here (second derivatives raise in jax 0.10.2): `jvp` and `hvp` are not provided.
- A function, not a module: nothing to rebuild or save.  The training step (forward and vjp)
  is `jax.jit`-compiled with (eps, interpret) static and reused across cases of one shape and dtype.
"""
from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._jax_step import JittedStep
from conformance.adapters._snippets import bind, invoke, snippet
from conformance.adapters._steps import jax_primal, jax_step

DEFAULT_EPSILON = 1e-5  # rms_norm's keyword default


def pallas_rmsnorm(eps, scale, interpret):
    """(static, params): the kernel's static arguments and its weight, the case's scale."""
    import jax

    return (eps, interpret), jax.device_put(np.asarray(scale))


def pallas_apply(static, weight, x):
    """The kernel on x viewed as (1, rows, n), its bias zero; back in x's shape."""
    import jax.numpy as jnp
    from jax.experimental.pallas.ops.gpu.rms_norm import rms_norm

    eps, interpret = static
    kwargs = {} if eps is None else {"eps": eps}
    n = x.shape[-1]
    y = rms_norm(x.reshape((1, -1, n)), weight, jnp.zeros_like(weight), interpret=interpret, **kwargs)
    return y.reshape(x.shape)


class PallasRMSNorm(JittedStep, Adapter):
    name = "pallas"
    packages = ("jax", "jaxlib")
    owners = ("jax",)
    build_fn, apply_fn = staticmethod(pallas_rmsnorm), staticmethod(pallas_apply)  # the layer is (static, weight)
    jvp = Adapter.jvp  # a custom_vjp: no forward mode
    hvp = Adapter.hvp  # its backward (Pallas kernels) is not differentiated again

    def load(self):
        import jax
        import jaxlib
        from jax.experimental.pallas.ops.gpu import rms_norm  # noqa: F401  (the kernel's module imports)

        self.jax = jax
        return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}

    @property
    def interpret(self) -> bool:
        """Pallas's interpreter on the CPU, the compiled kernel on the GPU."""
        return self.device == "cpu"

    def supports(self, spec):
        if not spec.is_last_axis:
            return "the Pallas rms_norm kernel normalizes the last axis only (one axis, rank >= 1)"
        return None

    def build(self, spec):
        return bind(pallas_rmsnorm, spec, interpret=self.interpret)

    def snippet(self, spec) -> dict:
        """The same functions and training step, jitted the same way, interpret as here."""
        return snippet(pallas_rmsnorm, pallas_apply, self.compile_fn, jax_step, jax_primal, env=self.env,
                       build=invoke("layer", pallas_rmsnorm, interpret=self.interpret),
                       call=f"out = jax_primal(jax_step(pallas_apply, {self.compile_fn.__name__}), layer, x)")

    def parameters(self, layer):
        return {"weight": np.asarray(layer[1])}  # the bias is fixed at zero, not a parameter

    def config(self, layer):
        (eps, interpret), weight = layer
        return {"eps": eps, "epsilon": DEFAULT_EPSILON if eps is None else eps, "interpret": interpret,
                "weight_shape": list(weight.shape), "weight_dtype": str(weight.dtype), "bias": "zeros"}

    def defaults(self) -> dict:
        return {"axis": "-1 (of a rank-3 input)", "epsilon": DEFAULT_EPSILON, "scale_init": "given (weight and bias required)",
                "parameter_dtype": "the weight's"}
