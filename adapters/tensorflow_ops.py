"""RMS normalization composed from TensorFlow ops, the way TensorFlow model code writes it.

TensorFlow has no RMSNorm layer; model code (T5, Gemma ports) writes
`x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axes, keepdims=True) + eps)`,
computing in float32 for half-precision inputs and casting back.  The scale is
a `tf.Variable` of the case's parameter dtype, multiplied in the compute dtype.
Default epsilon: 1e-6 (what that model code uses).  Any axes can be expressed.
Eager execution; gradients with `tf.GradientTape`.
"""
from __future__ import annotations

from conformance.adapter import Adapter
from conformance.adapters._snippets import Source, bind, invoke, snippet
from conformance.adapters._steps import tf_call, tf_tape_step

DEFAULT_EPSILON = 1e-6


def tf_rmsnorm_module():
    """The `tf.Module` model code writes: statistics in float32 for half-precision inputs, the
    scale a `tf.Variable` broadcast onto the normalized axes."""
    import tensorflow as tf

    class RMSNorm(tf.Module):
        def __init__(self, axes, epsilon, scale, input_rank):
            super().__init__()
            self.axes = list(axes)
            self.epsilon = epsilon
            self.scale = tf.Variable(scale, name="scale")
            shape = [1] * input_rank
            # Axes out of range are left to TensorFlow's own ops to refuse.
            valid = sorted(a % input_rank for a in axes if -input_rank <= a < input_rank)
            for a, size in zip(valid, scale.shape):
                shape[a] = size
            self.broadcast_shape = shape

        def __call__(self, x):
            compute = tf.float32 if x.dtype in (tf.float16, tf.bfloat16) else x.dtype
            xc = tf.cast(x, compute)
            mean_square = tf.reduce_mean(tf.square(xc), axis=self.axes, keepdims=True)
            scale = tf.cast(tf.reshape(self.scale, self.broadcast_shape), compute)
            return tf.cast(xc * tf.math.rsqrt(mean_square + self.epsilon) * scale, x.dtype)

    return RMSNorm


def tf_rmsnorm(RMSNorm, axis, eps, scale, input_shape):
    """The module over `axis` as requested, with the case's epsilon (1e-6 where it gives none)."""
    return RMSNorm(axis, DEFAULT_EPSILON if eps is None else eps, scale, len(input_shape))


class TensorFlowOpsRMSNorm(Adapter):
    name = "tensorflow"
    worker_group = "tensorflow"
    packages = ("tensorflow|tensorflow-cpu",)
    owners = ("tensorflow",)

    def load(self):
        import tensorflow as tf

        self.tf = tf
        self.RMSNorm = tf_rmsnorm_module()
        return {"tensorflow": tf.__version__}

    def defaults(self) -> dict:
        return {"axis": "given (model code passes it)", "epsilon": DEFAULT_EPSILON, "scale_init": "given",
                "parameter_dtype": "the input's dtype"}

    def build(self, spec):
        return bind(tf_rmsnorm, spec, RMSNorm=self.RMSNorm)

    def call(self, layer, x):
        return tf_call(layer, x)

    _call_fn = staticmethod(tf_call)  # what snippet() calls the layer with

    def snippet(self, spec) -> dict:
        """build() and call() as a script: the same functions, numpy and TensorFlow only."""
        return snippet(tf_rmsnorm_module, tf_rmsnorm, self._call_fn,
                       build=invoke("layer", tf_rmsnorm, RMSNorm=Source("tf_rmsnorm_module()")),
                       call=f"out = {self._call_fn.__name__}(layer, x)")

    def grad(self, layer, x, dy):
        tf = self.tf
        dx, (dscale,) = tf_tape_step(layer, [layer.scale], tf.constant(x), tf.constant(dy))
        return dx.numpy(), dscale.numpy()

    def jvp(self, layer, x, v):
        """Forward mode, `tf.autodiff.ForwardAccumulator`."""
        tf = self.tf
        xt = tf.constant(x)
        with tf.autodiff.ForwardAccumulator(xt, tf.constant(v)) as acc:
            y = layer(xt)
        return y.numpy(), acc.jvp(y).numpy()

    def hvp(self, layer, x, dy, v):
        """Nested GradientTapes: the gradient of <dx, v>."""
        tf = self.tf
        xt = tf.constant(x)
        with tf.GradientTape() as outer:
            outer.watch(xt)
            with tf.GradientTape() as inner:
                inner.watch(xt)
                y = layer(xt)
            dx = inner.gradient(y, xt, output_gradients=tf.cast(tf.constant(dy), y.dtype))
            total = tf.reduce_sum(dx * tf.constant(v))
        return outer.gradient(total, xt).numpy()

    def config(self, layer):
        return {"axes": layer.axes, "epsilon": layer.epsilon, "scale_dtype": layer.scale.dtype.name}

    def rebuild(self, layer):
        return self.RMSNorm(layer.axes, layer.epsilon, layer.scale.numpy(), len(layer.broadcast_shape))

    def save_load(self, layer, folder):
        # tf.train.Checkpoint: TensorFlow's own format for a module's variables.
        path = self.tf.train.Checkpoint(module=layer).write(f"{folder}/ckpt")
        zeros = layer.scale.numpy() * 0
        fresh = self.RMSNorm(layer.axes, layer.epsilon, zeros, len(layer.broadcast_shape))
        self.tf.train.Checkpoint(module=fresh).read(path).assert_consumed()
        return fresh

    def parameters(self, layer):
        return {"scale": layer.scale.numpy()}
