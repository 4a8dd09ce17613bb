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

from conformance.adapter import Adapter
from conformance.adapters._steps import op_by_op, tf_call, tf_tape_step
from conformance.adapters.flax_nnx import FlaxNNXRMSNorm
from conformance.adapters.keras_layer import KerasTensorFlow, keras_weights
from conformance.adapters.tensorflow_ops import TensorFlowOpsRMSNorm
from conformance.adapters.torch_nn import TorchRMSNorm, _Built

DYNAMO_CACHE_LIMIT = 1024  # compiled variants per frame before Dynamo would fall back to eager


def torch_compiled(module):
    """The module through `torch.compile` (Inductor)."""
    import torch

    return torch.compile(module)


class TorchCompile(TorchRMSNorm):
    name = "torch-compile"
    worker_group = None  # a worker of its own: load() raises Dynamo's process-wide recompile limits
    _compile_fn = staticmethod(torch_compiled)

    def load(self):
        versions = super().load()
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = DYNAMO_CACHE_LIMIT
        torch._dynamo.config.accumulated_cache_size_limit = DYNAMO_CACHE_LIMIT
        return versions

    def _compile(self, built: _Built) -> _Built:
        built.compiled = torch_compiled(built.module)
        return built

    def build(self, spec):
        return self._compile(super().build(spec))

    def rebuild(self, layer):
        return self._compile(super().rebuild(layer))

    def save_load(self, layer, folder):
        return self._compile(super().save_load(layer, folder))


def xla_forward(fn):
    """fn inside `tf.function(jit_compile=True)`."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def forward(x):
        return fn(x)

    return forward


def xla_step(fn, variables):
    """fn's GradientTape step inside `tf.function(jit_compile=True)`."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def step(x, dy):
        return tf_tape_step(fn, variables, x, dy)

    return step


def xla_call(layer, x):
    """The layer's call, XLA-compiled (the adapters compile it once per layer)."""
    return tf_call(xla_forward(layer), x)


class _XlaFunctions:
    """One pair of XLA-compiled functions per layer, made on first use."""

    jvp, hvp = Adapter.jvp, Adapter.hvp  # the eager ones would not go through XLA
    _call_fn = staticmethod(xla_call)

    def _functions(self, layer):
        cache = self.__dict__.setdefault("_xla", weakref.WeakKeyDictionary())
        if layer not in cache:
            cache[layer] = xla_forward(layer), xla_step(layer, self._variables(layer))
        return cache[layer]

    def call(self, layer, x):
        return tf_call(self._functions(layer)[0], x)

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
        return keras_weights(layer)


class FlaxNNXEager(FlaxNNXRMSNorm):
    name = "flax-nnx-eager"
    compile_fn = staticmethod(op_by_op)
