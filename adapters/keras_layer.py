"""`keras.layers.RMSNormalization` on each Keras backend, one class per backend.

- The layer's dtype policy is the case dtype (`"float16"`, ..., `"mixed_float16"`;
  none for the `default_` precisions: Keras's global policy, float32),
  `axis` is passed as requested (an int for one axis, a list for several; an
  empty list for rank-0 inputs), `epsilon` is omitted for the layer's default.
- The layer is built for the case's input shape and its `scale` weight assigned
  from the case.  Keras sorts a list of axes itself; whatever shape the weight
  then has is Keras's, and a mismatch with the case's scale is its error.
- Gradients: each backend's own autodiff (GradientTape, `jax.vjp`, torch autograd);
  the numpy backend has none.  `dy` is cast to the output's dtype where autodiff
  requires it (a default-dtype layer fed half precision returns float32).
- keras-jax: JAX gets `JAX_ENABLE_X64=1`, as a user running float64 must set;
  forward and `jax.vjp` of the layer's `__call__` in a `StatelessScope` (the
  weights as arguments) run as one `jax.jit`-compiled training step, as a model's
  layers run in `fit`; `call()` returns its primal output.  The step is
  reused across cases of the same shape, dtype, axes and epsilon (XLA
  compilation dominates the run time).  The other backends run eagerly, as a layer called directly does.
"""
from __future__ import annotations

import importlib
import json

import numpy as np

from conformance.adapter import Adapter
from conformance.adapters._convert import describe_init
from conformance.adapters._jax_step import JAX_ENV
from conformance.adapters._snippets import bind, invoke, snippet
from conformance.adapters._steps import jax_primal, jax_vjp_step, tf_tape_step, torch_backward, torch_call


def keras_rmsnorm(input_shape, axis, eps, scale, dtype, dtype_args):
    """`keras.layers.RMSNormalization` over `axis` (an int for one axis, a list for several), its
    dtype policy the case's (none where the case passes no dtype), built for the input shape and
    its scale assigned from the case."""
    import keras

    kwargs = {"axis": axis[0] if len(axis) == 1 else list(axis)}
    if dtype_args:
        kwargs["dtype"] = dtype
    if eps is not None:
        kwargs["epsilon"] = eps
    layer = keras.layers.RMSNormalization(**kwargs)
    layer.build(input_shape)
    layer.scale.assign(scale)
    return layer


def keras_call(layer, x):
    """The layer called directly, eagerly, on the numpy input."""
    import keras

    return keras.ops.convert_to_numpy(layer(x))


def keras_weights(layer) -> list:
    """The backend's arrays of the layer's trainable weights."""
    return [v.value for v in layer.trainable_variables]


def keras_stateless_apply(layer, weights, x):
    """The layer's __call__ in a stateless scope, the weights as arguments, as a model's layers run
    in `fit` (stateless_call() would skip __call__'s input casting and autocasting)."""
    import keras

    with keras.StatelessScope(state_mapping=list(zip(layer.trainable_variables, weights))):
        return layer(x)


def keras_jax_step(layer):
    """The layer's training step on the JAX backend, `jax.jit`-compiled: a function of
    (weights, x, dy)."""
    import functools

    import jax

    return jax.jit(functools.partial(jax_vjp_step, keras_stateless_apply, layer))


def keras_jax_call(layer, x):
    """The layer's output inside its training step, as `fit` runs it (keras-jax compiles the step
    once per configuration)."""
    return jax_primal(keras_jax_step(layer), (keras_weights(layer),), x)


class _Keras(Adapter):
    backend = ""

    def load(self):
        import keras

        if keras.backend.backend() != self.backend:
            raise RuntimeError(f"KERAS_BACKEND is {keras.backend.backend()!r}, expected {self.backend!r}")
        self.keras = keras
        versions = {"keras": keras.__version__}
        versions.update(self._load_backend())
        return versions

    framework = ""  # the backend's own package, imported with Keras and versioned

    def _load_backend(self) -> dict:
        if not self.framework:
            return {}
        self.backend_module = importlib.import_module(self.framework)
        return {self.framework: self.backend_module.__version__}

    def defaults(self) -> dict:
        layer = self.keras.layers.RMSNormalization()
        layer.build((2, 8))
        scale = self.keras.ops.convert_to_numpy(layer.scale.value)
        return {"axis": layer.axis, "epsilon": layer.epsilon, "scale_init": describe_init(scale),
                "parameter_dtype": str(scale.dtype)}

    def claims(self) -> list[dict]:
        """Claims of Keras's own documentation, checked against the layer on this backend."""
        keras = self.keras
        out = []
        layer = keras.layers.RMSNormalization()
        layer.build([5, 20, 30, 10])
        shape = tuple(layer.scale.shape)
        out.append({"claim": "RMSNormalization docstring: after build([5, 20, 30, 10]) the scale has shape (10,)",
                    "holds": shape == (10,), "observed": f"scale shape {shape}"})
        # The docstring's formula has no epsilon; the layer adds epsilon=1e-6 inside the rsqrt.
        rng = np.random.default_rng(0)
        worst = {}
        for label, magnitude in (("the docstring's example input, np.random.rand(1, 10)", 1.0), ("inputs of magnitude 1e-3", 1e-3)):
            x = (rng.random((1, 10)) * magnitude).astype("float32")
            y = np.asarray(self.call(layer_for(keras, x.shape), x), np.float64)
            x64 = x.astype(np.float64)
            doc = x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True))
            worst[label] = float(np.max(np.abs(y - doc) / np.abs(doc)))
        out.append({"claim": "RMSNormalization docstring: rms_normalization(x) = x * rsqrt(mean(square(x))) * scale",
                    "holds": all(v < 4 * 2.0**-24 for v in worst.values()),
                    "observed": "; ".join(f"max relative difference {v:.3g} on {k}" for k, v in worst.items())
                    + f" (the layer adds epsilon={layer.epsilon:g} inside the rsqrt)"})
        # The op's docstring: "epsilon: A lower bound value for the norm".  A lower bound
        # would leave rows whose RMS exceeds epsilon untouched; test on RMS ~ 1e-4 > 1e-6.
        x = (rng.standard_normal((2, 16)) * 1e-4).astype("float32")
        y = np.asarray(keras.ops.convert_to_numpy(keras.ops.rms_normalization(x, epsilon=1e-6)), np.float64)
        x64 = x.astype(np.float64)
        bound = x64 / np.maximum(np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True)), 1e-6)
        gap = float(np.max(np.abs(y - bound) / np.abs(bound)))
        out.append({"claim": "keras.ops.rms_normalization docstring: epsilon is 'a lower bound value for the norm', "
                             "default backend.epsilon()",
                    "holds": gap < 4 * 2.0**-24,
                    "observed": f"rows with RMS ~1e-4 and epsilon=1e-6 differ from x / max(rms, eps) by up to {gap:.3g} "
                                f"(epsilon is added to mean(x^2)); the op's default epsilon is {keras.config.epsilon():g}, "
                                f"the layer's {layer.epsilon:g}"})
        return out

    def build(self, spec):
        return bind(keras_rmsnorm, spec)

    def call(self, layer, x):
        return keras_call(layer, x)

    _call_fn = staticmethod(keras_call)  # what snippet() calls the layer with

    def snippet(self, spec) -> dict:
        """build() and call() as a script: the same functions, numpy and Keras only."""
        return snippet(keras_rmsnorm, self._call_fn, env=self.env, build=invoke("layer", keras_rmsnorm),
                       call=f"out = {self._call_fn.__name__}(layer, x)")

    def config(self, layer):
        return layer.get_config()

    def rebuild(self, layer):
        new = type(layer).from_config(layer.get_config())
        new.build(self._input_shape(layer))
        new.set_weights(layer.get_weights())
        return new

    def save_load(self, layer, folder):
        # A one-layer model in Keras's own `.keras` format.
        keras = self.keras
        model = keras.Sequential([keras.Input(batch_shape=self._input_shape(layer), dtype=layer.dtype_policy.compute_dtype), layer])
        path = f"{folder}/model.keras"
        model.save(path)
        return keras.saving.load_model(path).layers[-1]

    def parameters(self, layer):
        return {w.path: self.keras.ops.convert_to_numpy(w.value) for w in layer.trainable_weights}

    @staticmethod
    def _input_shape(layer):
        return tuple(layer._build_shapes_dict["input_shape"])


def layer_for(keras, input_shape):
    layer = keras.layers.RMSNormalization()
    layer.build(input_shape)
    return layer


class KerasTensorFlow(_Keras):
    name = "keras-tensorflow"
    packages = ("keras", "tensorflow|tensorflow-cpu")
    owners = ("keras", "tensorflow")
    backend = "tensorflow"
    env = {"KERAS_BACKEND": "tensorflow"}
    framework = "tensorflow"

    def grad(self, layer, x, dy):
        tf = self.backend_module
        dx, dvars = tf_tape_step(layer, keras_weights(layer), tf.constant(x), tf.constant(dy))
        return dx.numpy(), (dvars[0].numpy() if dvars else None)


class KerasJax(_Keras):
    name = "keras-jax"
    packages = ("keras", "jax", "jaxlib")
    owners = ("keras", "jax")
    backend = "jax"
    env = {"KERAS_BACKEND": "jax", **JAX_ENV}

    def _load_backend(self):
        import jax
        import jaxlib

        self.jax = jax
        self._compiled: dict = {}  # compile key -> jitted training step
        return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}

    def _step(self, layer):
        # Layers with the same config and weight shapes share one compiled step:
        # the step takes the weights as arguments, so the first layer of a key
        # can stand for all.  Names are unique per layer and do not matter.
        config = {k: v for k, v in layer.get_config().items() if k != "name"}
        key = (json.dumps(config, sort_keys=True, default=str), tuple(tuple(w.shape) for w in layer.weights))
        if key not in self._compiled:
            self._compiled[key] = keras_jax_step(layer)
        return self._compiled[key]

    def call(self, layer, x):
        return jax_primal(self._step(layer), (keras_weights(layer),), x)

    _call_fn = staticmethod(keras_jax_call)

    def grad(self, layer, x, dy):
        _, dx, dweights = self._step(layer)(keras_weights(layer), x, dy)
        return np.asarray(dx), (np.asarray(dweights[0]) if dweights else None)


class KerasTorch(_Keras):
    name = "keras-torch"
    packages = ("keras", "torch")
    owners = ("keras", "pytorch")
    backend = "torch"
    env = {"KERAS_BACKEND": "torch"}
    framework = "torch"
    _call_fn = staticmethod(torch_call)

    def call(self, layer, x):
        return torch_call(layer, x)

    def grad(self, layer, x, dy):
        dx, dparams = torch_backward(layer, keras_weights(layer), x, dy)
        return dx, (dparams[0] if dparams else None)


class KerasNumpy(_Keras):
    name = "keras-numpy"
    packages = ("keras", "numpy")
    owners = ("keras", "numpy")
    backend = "numpy"
    env = {"KERAS_BACKEND": "numpy"}  # no autodiff on this backend: no grad
