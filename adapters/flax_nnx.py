"""`flax.nnx.RMSNorm`, as a Flax user writes it.

- `reduction_axes` and `feature_axes` are both the requested axes, as given;
  the scale (Flax keeps it flat, `num_features` long, reshaped onto the feature
  axes) is the case's scale flattened in ascending axis order.
- `dtype` (computation/output) is the case's compute dtype and `param_dtype`
  its parameter dtype; Flax's default `param_dtype=float32` would otherwise turn
  every half-precision output into float32.  The `default_` precisions pass neither
  (the layer as `nnx.RMSNorm(n)` makes it), which shows that promotion.
- JAX runs with `JAX_ENABLE_X64=1`, as a user running float64 must set.
- Forward and `jax.vjp` run as one `jax.jit`-compiled training step over
  `nnx.split` state; `call()` returns that step's primal output (what a training
  step computes as y).  The compiled step is reused across cases with the same
  graph and input (shape, dtype, axes, epsilon).  XLA compilation (~0.2 s a
  configuration on this CPU) dominates the run time, so compiling the forward
  separately would double it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._convert import describe_init
from conformance.adapters._jax_step import JittedStep
from conformance.adapters._snippets import bind


def nnx_rmsnorm(scale, axis, eps, compute_dtype, param_dtype, dtype_args):
    """`nnx.RMSNorm` over `axis` (reduction and feature axes), its flat scale the case's scale."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    kwargs = {} if eps is None else {"epsilon": eps}
    if dtype_args:
        kwargs |= {"dtype": jnp.dtype(compute_dtype), "param_dtype": jnp.dtype(param_dtype)}
    ax = tuple(axis) if len(axis) != 1 else axis[0]
    flat = np.asarray(scale).reshape(-1)
    # device_put, not jnp ops: an eager reshape would compile once per shape.
    return nnx.RMSNorm(flat.size, reduction_axes=ax, feature_axes=ax, rngs=nnx.Rngs(0),
                       scale_init=lambda key, shape, dt: jax.device_put(flat.reshape(shape).astype(dt)), **kwargs)


def nnx_split(module):
    """(graphdef, state): the static part and the parameters."""
    from flax import nnx

    return nnx.split(module)


def nnx_apply(graphdef, state, x):
    """The module's forward as a pure function of its state."""
    from flax import nnx

    return nnx.merge(graphdef, state)(x)


@dataclass(frozen=True)
class _Built:
    graphdef: object  # static: epsilon, dtypes, axes (the compile key)
    state: object
    module: object
    scale_shape: tuple  # the case's layout of the scale, which Flax keeps flat


class FlaxNNXRMSNorm(JittedStep, Adapter):
    name = "flax-nnx"
    packages = ("flax", "jax", "jaxlib")
    owners = ("flax", "jax")
    build_fn, split_fn, apply_fn = staticmethod(nnx_rmsnorm), staticmethod(nnx_split), staticmethod(nnx_apply)

    def load(self):
        import flax
        import jax
        import jaxlib
        from flax import nnx

        self.jax, self.nnx = jax, nnx
        return {"flax": flax.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__}

    def defaults(self) -> dict:
        m = self.nnx.RMSNorm(8, rngs=self.nnx.Rngs(0))
        return {"axis": f"reduction_axes={m.reduction_axes}, feature_axes={m.feature_axes}", "epsilon": m.epsilon,
                "scale_init": describe_init(m.scale[...]),
                "parameter_dtype": str(np.dtype(m.param_dtype)), "computation_dtype": str(m.dtype)}

    def build(self, spec):
        return self._wrap(bind(nnx_rmsnorm, spec), spec.scale.shape)

    def _wrap(self, module, scale_shape) -> _Built:
        return _Built(*nnx_split(module), module, scale_shape)

    def _step_args(self, layer) -> tuple:
        return layer.graphdef, layer.state  # split once, when built

    def _same_constructor(self, m):
        """A fresh module from m's own constructor arguments (its attributes)."""
        return self.nnx.RMSNorm(m.num_features, epsilon=m.epsilon, dtype=m.dtype, param_dtype=m.param_dtype,
                                use_scale=m.use_scale, reduction_axes=m.reduction_axes,
                                feature_axes=m.feature_axes, rngs=self.nnx.Rngs(0))

    def rebuild(self, layer):
        new = self._same_constructor(layer.module)
        self.nnx.update(new, layer.state)
        return self._wrap(new, layer.scale_shape)

    def save_load(self, layer, folder):
        # nnx state as a pure dict, in flax's own msgpack serialization.
        from flax import serialization

        path = f"{folder}/state.msgpack"
        with open(path, "wb") as f:
            f.write(serialization.msgpack_serialize(layer.state.to_pure_dict()))
        new = self._same_constructor(layer.module)
        restored = self.nnx.state(new)
        with open(path, "rb") as f:
            self.nnx.replace_by_pure_dict(restored, serialization.msgpack_restore(f.read()))
        self.nnx.update(new, restored)
        return self._wrap(new, layer.scale_shape)

    def parameters(self, layer):
        return {"scale": np.asarray(layer.module.scale[...])} if layer.module.scale is not None else {}

    def _dscale(self, layer, leaves: list):
        # Flax keeps the scale flat (num_features,); report it in the case's layout,
        # as build() loaded it from there.
        return np.asarray(leaves[0]).reshape(layer.scale_shape) if leaves else None

    def config(self, layer):
        m = layer.module
        return {
            "num_features": m.num_features,
            "epsilon": m.epsilon,
            "dtype": str(np.dtype(m.dtype)) if m.dtype is not None else None,
            "param_dtype": str(np.dtype(m.param_dtype)),
            "use_scale": m.use_scale,
            "reduction_axes": m.reduction_axes,
            "feature_axes": m.feature_axes,
            "scale_shape": list(np.shape(m.scale[...])),
        }
