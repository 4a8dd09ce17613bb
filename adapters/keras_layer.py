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
from conformance.adapters._convert import describe_init, torch_from_numpy, torch_to_numpy  # torch imported lazily
from conformance.adapters._snippets import NUMPY_OUTPUT, TORCH_IMPORTS, TORCH_OUTPUT, join


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
        kwargs = {"axis": spec.axis[0] if len(spec.axis) == 1 else list(spec.axis)}
        if not spec.no_dtype_args:
            kwargs["dtype"] = spec.dtype
        if spec.epsilon is not None:
            kwargs["epsilon"] = spec.epsilon
        layer = self.keras.layers.RMSNormalization(**kwargs)
        layer.build(spec.input_shape)
        layer.scale.assign(spec.scale)
        return layer

    def call(self, layer, x):
        return self.keras.ops.convert_to_numpy(layer(x))

    def snippet(self, spec) -> dict:
        """The source of build and call, for `conformance repro` (numpy and Keras only)."""
        return {
            "imports": f"""
                os.environ.update({dict(self.env)!r})  # Keras picks its backend at import
                import keras
            """,
            # The dtype policy as the case names it; none at all for the framework's defaults.
            "build": f"""
                kwargs = {{"axis": axis[0] if len(axis) == 1 else list(axis){'' if spec.no_dtype_args else ', "dtype": dtype'}}}
                if eps is not None:
                    kwargs["epsilon"] = eps
                layer = keras.layers.RMSNormalization(**kwargs)
                layer.build(input_shape)
                layer.scale.assign(scale)
            """,
            "call": self._snippet_call,
        }

    _snippet_call = join("out = keras.ops.convert_to_numpy(layer(x))", NUMPY_OUTPUT)

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
    backend = "tensorflow"
    env = {"KERAS_BACKEND": "tensorflow"}
    framework = "tensorflow"

    def grad(self, layer, x, dy):
        tf = self.backend_module
        xt = tf.constant(x)
        variables = [v.value for v in layer.trainable_variables]
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt)
        # dy in the output's dtype, as autodiff requires (a default-dtype layer returns float32).
        dx, *dvars = tape.gradient(y, [xt, *variables], output_gradients=tf.cast(tf.constant(dy), y.dtype))
        return dx.numpy(), (dvars[0].numpy() if dvars else None)


class KerasJax(_Keras):
    name = "keras-jax"
    packages = ("keras", "jax", "jaxlib")
    backend = "jax"
    env = {"KERAS_BACKEND": "jax", "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}

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
            jax = self.jax

            keras = self.keras

            def step(weights, x, dy):
                def forward(w, xx):
                    # The layer's __call__ in a stateless scope, as a model's does in `fit`:
                    # stateless_call() would skip __call__'s input casting and autocasting.
                    with keras.StatelessScope(state_mapping=list(zip(layer.trainable_variables, w))):
                        return layer(xx)

                y, pullback = jax.vjp(forward, weights, x)
                dweights, dx = pullback(dy.astype(y.dtype))
                return y, dx, dweights

            self._compiled[key] = jax.jit(step)
        return self._compiled[key]

    def call(self, layer, x):
        y, _, _ = self._step(layer)([v.value for v in layer.trainable_variables], x, np.zeros_like(x))
        return np.asarray(y)

    _snippet_call = join("""
        import jax  # the adapter calls the layer inside a jitted training step, as `fit` does

        def step(w, xx, dy):
            def forward(w, xx):  # __call__ in a stateless scope, as a model's layers run in `fit`
                with keras.StatelessScope(state_mapping=list(zip(layer.trainable_variables, w))):
                    return layer(xx)

            y, pullback = jax.vjp(forward, w, xx)
            return y, pullback(dy.astype(y.dtype))

        out, _ = jax.jit(step)([v.value for v in layer.trainable_variables], x, np.zeros_like(x))
    """, NUMPY_OUTPUT)

    def grad(self, layer, x, dy):
        _, dx, dweights = self._step(layer)([v.value for v in layer.trainable_variables], x, dy)
        return np.asarray(dx), (np.asarray(dweights[0]) if dweights else None)


class KerasTorch(_Keras):
    name = "keras-torch"
    packages = ("keras", "torch")
    backend = "torch"
    env = {"KERAS_BACKEND": "torch"}
    framework = "torch"

    def call(self, layer, x):
        with self.backend_module.no_grad():
            return torch_to_numpy(layer(torch_from_numpy(x)))

    _snippet_call = join(TORCH_IMPORTS, """
        with torch.no_grad():
            out = layer(to_torch(x))
    """, TORCH_OUTPUT)

    def grad(self, layer, x, dy):
        xt = torch_from_numpy(x).requires_grad_(True)
        params = [v.value for v in layer.trainable_variables]
        for p in params:
            p.grad = None
        layer(xt).backward(torch_from_numpy(dy))
        return torch_to_numpy(xt.grad), (torch_to_numpy(params[0].grad) if params else None)


class KerasNumpy(_Keras):
    name = "keras-numpy"
    packages = ("keras", "numpy")
    backend = "numpy"
    env = {"KERAS_BACKEND": "numpy"}
    gradients = False

    def grad(self, layer, x, dy):
        raise NotImplementedError("Keras's numpy backend has no autodiff")
