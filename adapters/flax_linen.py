"""`flax.linen.RMSNorm`, as a Flax (linen) user writes it.

- `reduction_axes` and `feature_axes` are both the requested axes, as given; linen keeps
  the scale in the sizes of the feature axes (not flat, unlike `flax.nnx.RMSNorm`).
- `dtype` (computation/output) is the case's compute dtype and `param_dtype` its
  parameter dtype (neither for the `default_` precisions: Flax's defaults); the scale is
  the case's, loaded in the parameters' dtype.
- JAX runs with `JAX_ENABLE_X64=1`, as a user running float64 must set.  Forward and
  `jax.vjp` of `module.apply` run as one `jax.jit`-compiled step with the module static,
  so the step is reused across cases with the same module and input (the same compile
  reuse as flax-nnx); `call()` returns that step's primal output.
- Rebuild: `module.clone()` (its own attributes) with the same parameters; save/load:
  the parameter pytree through flax's msgpack serialization.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._jax_step import JittedStep
from conformance.adapters._snippets import bind


def linen_rmsnorm(input_shape, axis, eps, scale, compute_dtype, param_dtype, dtype_args):
    """(module, params): `nn.RMSNorm` over `axis` (reduction and feature axes) and its parameters,
    the case's scale in their shapes and dtypes."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    kwargs = {} if eps is None else {"epsilon": eps}
    if dtype_args:
        kwargs |= {"dtype": jnp.dtype(compute_dtype), "param_dtype": jnp.dtype(param_dtype)}
    ax = tuple(axis) if len(axis) != 1 else axis[0]
    module = nn.RMSNorm(reduction_axes=ax, feature_axes=ax, **kwargs)
    # The parameters' structure, shapes and dtypes, from init() traced abstractly: its values are
    # replaced by the case's scale anyway, and run op by op it compiled a dozen primitives per shape.
    params = jax.eval_shape(module.init, jax.random.PRNGKey(0),
                            np.zeros(tuple(input_shape), compute_dtype.replace("bfloat16", "float32")))
    scale = np.asarray(scale)
    return module, jax.tree.map(lambda leaf: jax.device_put(scale.reshape(leaf.shape).astype(leaf.dtype)), params)


def linen_apply(module, params, x):
    return module.apply(params, x)


@dataclass(frozen=True)
class _Built:
    module: object  # static: epsilon, dtypes, axes
    params: dict


class FlaxLinenRMSNorm(JittedStep, Adapter):
    name = "flax-linen"
    packages = ("flax", "jax", "jaxlib")
    owners = ("flax", "jax")
    build_fn, apply_fn = staticmethod(linen_rmsnorm), staticmethod(linen_apply)  # the layer is (module, params)

    def load(self):
        import flax
        import flax.linen as nn
        import jax
        import jaxlib

        self.jax, self.nn = jax, nn
        return {"flax": flax.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__}

    def build(self, spec):
        return _Built(*bind(linen_rmsnorm, spec))

    def _step_args(self, layer) -> tuple:
        return layer.module, layer.params

    def rebuild(self, layer):
        return _Built(layer.module.clone(), layer.params)

    def save_load(self, layer, folder):
        from flax import serialization

        path = f"{folder}/params.msgpack"
        with open(path, "wb") as f:
            f.write(serialization.to_bytes(layer.params))
        with open(path, "rb") as f:
            return _Built(layer.module.clone(), serialization.from_bytes(layer.params, f.read()))

    def parameters(self, layer):
        return {"scale": np.asarray(leaf) for leaf in self.jax.tree.leaves(layer.params)}

    def config(self, layer):
        m = layer.module
        return {"epsilon": m.epsilon, "dtype": str(np.dtype(m.dtype)), "param_dtype": str(np.dtype(m.param_dtype)),
                "reduction_axes": m.reduction_axes, "feature_axes": m.feature_axes, "use_scale": m.use_scale}

    def defaults(self) -> dict:
        m = self.nn.RMSNorm()
        return {"axis": f"reduction_axes={m.reduction_axes}, feature_axes={m.feature_axes}", "epsilon": m.epsilon,
                "scale_init": "all 1", "parameter_dtype": str(np.dtype(m.param_dtype))}
