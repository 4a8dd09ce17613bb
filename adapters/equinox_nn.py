"""`equinox.nn.RMSNorm`, as an Equinox user writes it.

- The module normalizes every axis of the `shape` it is given and is called on one
  example; a user `jax.vmap`s it over the batch.  So the requested axes must be the
  trailing ones (others, and an empty axis list, are declined), `shape` is their sizes,
  and the leading axes are flattened into one vmapped batch axis (of size 0 for an empty
  input: Equinox is called whatever the input, and what it does with none is its own).
- `use_bias=False`: an RMS norm has no bias (Equinox's default adds a zero-initialised
  one); `use_weight=True` with the case's scale in the parameter dtype (`dtype`; not
  passed for the `default_` precisions, so Equinox's default floating dtype).
- Equinox computes in `result_type(x, float32)` and casts back to the input's dtype.
- Rebuild: a new module from the module's own fields, the weight put back with
  `eqx.tree_at`; save/load: `eqx.tree_serialise_leaves` / `tree_deserialise_leaves`.
- `JAX_ENABLE_X64=1`; forward and `jax.vjp` run as one `eqx.filter_jit`-compiled step,
  reused across cases of the same shapes and dtypes; `call()` returns its primal output.
"""
from __future__ import annotations

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._jax_step import JittedStep
from conformance.adapters._snippets import bind


def equinox_rmsnorm(input_shape, axes, eps, scale, param_dtype, dtype_args):
    """`eqx.nn.RMSNorm` of the trailing `axes`' sizes, no bias, its weight the case's scale."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    shape = tuple(input_shape[k] for k in axes)
    kwargs = {} if eps is None else {"eps": eps}
    if dtype_args:
        kwargs["dtype"] = jnp.dtype(param_dtype)
    model = eqx.nn.RMSNorm(shape, use_weight=True, use_bias=False, **kwargs)
    return eqx.tree_at(lambda m: m.weight, model, jax.device_put(np.asarray(scale).reshape(shape)))


def equinox_split(model):
    """(static, params): the module's non-array fields and its arrays."""
    import equinox as eqx

    params, static = eqx.partition(model, eqx.is_array)
    return static, params


def equinox_apply(static, params, x):
    """The module vmapped over x's leading axes, flattened into one batch axis as a user would;
    the trailing ones are x's own, so a mismatched input reaches the module (which refuses it)."""
    import math

    import equinox as eqx
    import jax

    model = eqx.combine(params, static)
    lead = x.ndim - len(model.shape)
    batch = x.reshape((math.prod(x.shape[:lead]), *x.shape[lead:]))
    return jax.vmap(model)(batch).reshape(x.shape)


def filter_jit(fn):
    """`eqx.filter_jit`: the arrays traced, everything else the compile key."""
    import equinox as eqx

    return eqx.filter_jit(fn)


class EquinoxRMSNorm(JittedStep, Adapter):
    name = "equinox"
    packages = ("equinox", "jax", "jaxlib")
    owners = ("equinox", "jax")
    build_fn, split_fn, apply_fn = staticmethod(equinox_rmsnorm), staticmethod(equinox_split), staticmethod(equinox_apply)
    compile_fn = staticmethod(filter_jit)

    def load(self):
        import equinox as eqx
        import jax

        self.jax, self.eqx = jax, eqx
        return {"equinox": eqx.__version__, "jax": jax.__version__}

    def supports(self, spec):
        if not spec.axes or not spec.is_trailing:
            return "equinox.nn.RMSNorm normalizes its whole `shape`, vmapped over leading axes: trailing axes only"
        return None

    def build(self, spec):
        return bind(equinox_rmsnorm, spec)

    def rebuild(self, layer):
        new = self.eqx.nn.RMSNorm(layer.shape, eps=layer.eps, use_weight=layer.use_weight, use_bias=layer.use_bias,
                                  dtype=np.asarray(layer.weight).dtype)
        return self.eqx.tree_at(lambda m: m.weight, new, layer.weight)

    def save_load(self, layer, folder):
        path = f"{folder}/model.eqx"
        self.eqx.tree_serialise_leaves(path, layer)
        return self.eqx.tree_deserialise_leaves(path, self.rebuild(layer))

    def parameters(self, layer):
        return {"weight": np.asarray(layer.weight)}

    def config(self, layer):
        return {"shape": list(layer.shape), "eps": layer.eps, "epsilon": layer.eps, "use_weight": layer.use_weight,
                "use_bias": layer.use_bias}

    def defaults(self) -> dict:
        m = self.eqx.nn.RMSNorm(8)
        return {"axis": "the whole `shape` (vmap over the rest)", "epsilon": m.eps, "scale_init": "all 1",
                "parameter_dtype": str(np.asarray(m.weight).dtype) + f", use_bias={m.use_bias}"}
