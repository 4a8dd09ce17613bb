"""Execution modes: each a small subclass of an eager adapter, running the same layer compiled
(or, for Flax, not compiled), so a report can set a mode against its twin (issue 12).

- `torch-compile`: the `torch.nn.RMSNorm` module through `torch.compile` (Inductor; C++ on the
  CPU).  Forward, backward (AOTAutograd), `call_layout`, `jvp` and `hvp` all go through the
  compiled module, as a user who compiles the module gets them.  Dynamo's recompile limit is
  raised so that no case silently falls back to eager.
- `tensorflow-xla`: the TensorFlow-ops module's call and its GradientTape step inside
  `tf.function(jit_compile=True)`, one function per layer.
- `keras-tensorflow-jit`: the same for `keras.layers.RMSNormalization` on the TensorFlow
  backend, which is what Keras's `jit_compile=True` train and predict steps run.
- `flax-nnx-eager`: `flax.nnx.RMSNorm` with the training step, jvp and hvp run op by op, with
  no `jax.jit` (flax-nnx compiles them).

The compiled modes compile once per shape, dtype and epsilon, so they run the `modes` suite
(`--adapters modes` also runs their twins); `jvp` and `hvp` are left out where they would not go
through the compiled path.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

from conformance.adapters.flax_nnx import FlaxNNXRMSNorm
from conformance.adapters.keras_layer import KerasTensorFlow
from conformance.adapters.tensorflow_ops import TensorFlowOpsRMSNorm
from conformance.adapters.torch_nn import TorchRMSNorm, _Built

DYNAMO_CACHE_LIMIT = 1024  # compiled variants per frame before Dynamo would fall back to eager


@dataclass
class _Compiled(_Built):
    compiled: object = None


class TorchCompile(TorchRMSNorm):
    name = "torch-compile"
    worker_group = None  # a worker of its own: load() raises Dynamo's process-wide recompile limits

    def load(self):
        versions = super().load()
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = DYNAMO_CACHE_LIMIT
        torch._dynamo.config.accumulated_cache_size_limit = DYNAMO_CACHE_LIMIT
        return versions

    def _compile(self, built: _Built) -> _Compiled:
        return _Compiled(built.module, built.input_dtype, self.torch.compile(built.module))

    def build(self, spec):
        return self._compile(super().build(spec))

    def _forward(self, layer, xt):
        return layer.compiled(xt)

    def rebuild(self, layer):
        return self._compile(super().rebuild(layer))

    def save_load(self, layer, folder):
        return self._compile(super().save_load(layer, folder))

    def snippet(self, spec) -> dict:
        out = super().snippet(spec)
        out["build"] = out["build"].rstrip() + "\n                layer = torch.compile(layer)\n"
        return out


def _xla_functions(tf, call, variables):
    """`call` and its gradient step, each in `tf.function(jit_compile=True)`."""

    @tf.function(jit_compile=True)
    def forward(x):
        return call(x)

    @tf.function(jit_compile=True)
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = call(x)
        dx, *dvars = tape.gradient(y, [x, *variables], output_gradients=tf.cast(dy, y.dtype))
        return dx, dvars

    return forward, step


class _XlaFunctions:
    """One pair of XLA-compiled functions per layer, made on first use."""

    jvp = hvp = None  # the eager ones would not go through XLA

    def _variables(self, layer) -> list:
        raise NotImplementedError

    def _functions(self, layer):
        cache = self.__dict__.setdefault("_xla", weakref.WeakKeyDictionary())
        if layer not in cache:
            cache[layer] = _xla_functions(self.tf, layer, self._variables(layer))
        return cache[layer]

    def call(self, layer, x):
        return self._functions(layer)[0](self.tf.constant(x)).numpy()

    def grad(self, layer, x, dy):
        dx, dvars = self._functions(layer)[1](self.tf.constant(x), self.tf.constant(dy))
        return dx.numpy(), (dvars[0].numpy() if dvars else None)


class TensorFlowXla(_XlaFunctions, TensorFlowOpsRMSNorm):
    name = "tensorflow-xla"

    def _variables(self, layer) -> list:
        return [layer.scale]


class KerasTensorFlowJit(_XlaFunctions, KerasTensorFlow):
    name = "keras-tensorflow-jit"

    def _load_backend(self):
        versions = super()._load_backend()
        import tensorflow as tf

        self.tf = tf
        return versions

    def _variables(self, layer) -> list:
        return [v.value for v in layer.trainable_variables]

    def snippet(self, spec):
        return None  # the suite's adapter builds it (see conformance/commands/repro.py)


class FlaxNNXEager(FlaxNNXRMSNorm):
    name = "flax-nnx-eager"

    def _compile(self, fn):
        return fn  # op by op: every jax.numpy call dispatched as it comes

    def snippet(self, spec) -> dict:
        out = super().snippet(spec)
        out["call"] = out["call"].replace("jax.jit(step)(", "step(")
        return out
