"""`mlx.nn.RMSNorm`, as an MLX user writes it.

- `nn.RMSNorm(dims, eps)` normalizes the last axis (`dims` its size) and calls
  `mlx.core.fast.rms_norm(x, self["weight"], self.eps)`: the numerics are the `mlx` adapter's
  (adapters/mlx_fast.py: the CPU fallback computes in float32, `eps` is a C++ float, reported by
  `effective()`); other axes, several axes, rank 0 and an empty axis list are declined.
- `eps` is the case's, or not passed for the module's default (1e-5).  The module's weight is
  created as `mx.ones(dims)` (float32); for the plain and mixed precisions the module is cast with
  `set_dtype(parameter dtype)`, as a user running a half-precision model does; the `default_`
  precisions leave it float32.  The case's scale is then loaded with `load_weights`.
- Gradients: `mx.vjp` in x and the weight parameter, the weight updated into the module as
  `nn.value_and_grad` does; `jvp` and `hvp` as the `mlx` adapter.
- The module refuses `eps <= 0` (`ValueError`, by design): the cases with epsilon 0 are declined;
  a negative epsilon (an invalid configuration) reaches it.
- Rebuild: a new module from the module's own `weight.shape` and `eps`, its weights loaded;
  save/load: `save_weights` / `load_weights` (safetensors, the format MLX recommends).
"""
from __future__ import annotations

from conformance.adapters._snippets import bind, invoke, snippet
from conformance.adapters.mlx_fast import MlxFast, mlx_call, to_mlx


def mlx_nn_rmsnorm(input_shape, eps, scale, param_dtype, dtype_args):
    """`nn.RMSNorm` of the last axis, in the parameters' dtype (MLX's default, float32, where the
    case passes no dtype), its weight the case's scale."""
    import mlx.core as mx
    import mlx.nn as nn

    module = nn.RMSNorm(input_shape[-1], **({} if eps is None else {"eps": eps}))
    if dtype_args:
        module.set_dtype(getattr(mx, param_dtype))
    module.load_weights([("weight", to_mlx(scale))])
    return module


def mlx_nn_apply(module, x):
    return module(x)


class MlxNN(MlxFast):
    name = "mlx-nn"
    apply_fn = staticmethod(mlx_nn_apply)

    def supports(self, spec):
        if spec.epsilon == 0.0:  # a valid RMS norm the module refuses by design; a negative one reaches it
            return "mlx.nn.RMSNorm refuses eps = 0 (ValueError: 'eps' must be positive)"
        return super().supports(spec)

    def build(self, spec):
        return bind(mlx_nn_rmsnorm, spec)

    def _weight(self, layer):
        return layer.weight

    def _eps(self, layer) -> float:
        return layer.eps

    def snippet(self, spec) -> dict:
        return snippet(mlx_nn_rmsnorm, mlx_nn_apply, mlx_call, build=invoke("layer", mlx_nn_rmsnorm),
                       call="out = mlx_call(mlx_nn_apply, layer, x)")

    def _same_constructor(self, m):
        import mlx.nn as nn

        new = nn.RMSNorm(m.weight.shape[0], eps=m.eps)
        new.set_dtype(m.weight.dtype)
        return new

    def rebuild(self, layer):
        from mlx.utils import tree_flatten

        new = self._same_constructor(layer)
        new.load_weights(tree_flatten(layer.parameters()))
        return new

    def save_load(self, layer, folder):
        path = f"{folder}/rmsnorm.safetensors"
        layer.save_weights(path)
        new = self._same_constructor(layer)
        new.load_weights(path)
        return new

    def config(self, layer):
        return {"dims": layer.weight.shape[0], "eps": layer.eps, "epsilon": layer.eps,
                "weight_dtype": str(layer.weight.dtype)}

    def defaults(self) -> dict:
        import mlx.nn as nn

        m = nn.RMSNorm(8)
        return {"axis": "-1 (dims: the last axis's size)", "epsilon": m.eps,
                "scale_init": "all 1" if bool((m.weight == 1).all()) else "not ones",
                "parameter_dtype": str(m.weight.dtype).removeprefix("mlx.core.")}
