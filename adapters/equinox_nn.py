"""`equinox.nn.RMSNorm`, as an Equinox user writes it.

- The module normalizes every axis of the `shape` it is given and is called on one
  example; a user `jax.vmap`s it over the batch.  So the requested axes must be the
  trailing ones (others, and an empty axis list, are declined), `shape` is their sizes,
  and the leading axes are flattened into one vmapped batch axis.
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

import math

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._jax_step import JAX_ENV, hvp_of, jvp_of
from conformance.adapters._snippets import NUMPY_OUTPUT, env_imports, join


class EquinoxRMSNorm(Adapter):
    name = "equinox"
    env = JAX_ENV
    worker_group = "jax"
    device_family = "jax"
    packages = ("equinox", "jax", "jaxlib")

    def load(self):
        import equinox as eqx
        import jax

        self.jax, self.eqx = jax, eqx

        @eqx.filter_jit
        def step(model, x, dy):
            # Leading axes flattened into one vmapped batch; the trailing ones are x's own, so a
            # mismatched input reaches the module (which refuses it) as a user's vmap would.
            batch = x.reshape((-1, *x.shape[x.ndim - len(model.shape):]))
            params, static = eqx.partition(model, eqx.is_array)

            def forward(p, xx):
                return jax.vmap(eqx.combine(p, static))(xx)

            y, pullback = jax.vjp(forward, params, batch)
            dparams, dx = pullback(dy.reshape(batch.shape).astype(y.dtype))
            return y.reshape(x.shape), dx.reshape(x.shape), dparams

        def apply(model, x):
            batch = x.reshape((-1, *x.shape[x.ndim - len(model.shape):]))
            return jax.vmap(model)(batch).reshape(x.shape)

        @eqx.filter_jit
        def jvp(model, x, v):
            return jvp_of(jax, lambda xx: apply(model, xx), x, v)

        @eqx.filter_jit
        def hvp(model, x, dy, v):
            return hvp_of(jax, lambda xx: apply(model, xx), x, dy, v)

        self._step, self._jvp, self._hvp = step, jvp, hvp
        return {"equinox": eqx.__version__, "jax": jax.__version__}

    def supports(self, spec):
        if not spec.axes or not spec.is_trailing:
            return "equinox.nn.RMSNorm normalizes its whole `shape`, vmapped over leading axes: trailing axes only"
        return None

    def build(self, spec):
        import jax.numpy as jnp

        shape = tuple(spec.input_shape[a] for a in spec.axes)
        kwargs = {} if spec.epsilon is None else {"eps": spec.epsilon}
        if not spec.no_dtype_args:
            kwargs["dtype"] = jnp.dtype(spec.param_dtype)
        model = self.eqx.nn.RMSNorm(shape, use_weight=True, use_bias=False, **kwargs)
        weight = self.jax.device_put(np.asarray(spec.scale).reshape(shape))
        return self.eqx.tree_at(lambda m: m.weight, model, weight)

    def snippet(self, spec) -> dict:
        """Build as build() does; call through the same jitted, vmapped training step."""
        dtype = "" if spec.no_dtype_args else 'kwargs["dtype"] = jnp.dtype(param_dtype)'
        return {
            "imports": env_imports(self.env, "import equinox as eqx", "import jax", "import jax.numpy as jnp"),
            "build": f"""
                shape = tuple(input_shape[k] for k in axes)
                kwargs = {{}} if eps is None else {{"eps": eps}}
                {dtype}
                layer = eqx.nn.RMSNorm(shape, use_weight=True, use_bias=False, **kwargs)
                layer = eqx.tree_at(lambda m: m.weight, layer, jax.device_put(np.asarray(scale).reshape(shape)))
            """,
            "call": join("""
                @eqx.filter_jit
                def step(model, xx, dy):  # leading axes flattened into one vmapped batch, as a user would
                    batch = xx.reshape((-1, *xx.shape[xx.ndim - len(model.shape):]))
                    params, static = eqx.partition(model, eqx.is_array)
                    y, pullback = jax.vjp(lambda p, b: jax.vmap(eqx.combine(p, static))(b), params, batch)
                    return y.reshape(xx.shape), pullback(dy.reshape(batch.shape).astype(y.dtype))

                out, _ = step(layer, x, np.zeros_like(x))
            """, NUMPY_OUTPUT),
        }

    def call(self, layer, x):
        if math.prod(x.shape) == 0:
            return np.zeros(x.shape, x.dtype)  # nothing to vmap over
        y, _, _ = self._step(layer, x, np.zeros_like(x))
        return np.asarray(y)

    def grad(self, layer, x, dy):
        _, dx, dparams = self._step(layer, x, dy)
        return np.asarray(dx), np.asarray(dparams.weight)

    def jvp(self, layer, x, v):
        y, t = self._jvp(layer, x, v)
        return np.asarray(y), np.asarray(t)

    def hvp(self, layer, x, dy, v):
        return np.asarray(self._hvp(layer, x, dy, v))

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
