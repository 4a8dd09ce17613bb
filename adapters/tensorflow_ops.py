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

DEFAULT_EPSILON = 1e-6


class TensorFlowOpsRMSNorm(Adapter):
    name = "tensorflow"
    worker_group = "tensorflow"
    packages = ("tensorflow|tensorflow-cpu",)

    def load(self):
        import tensorflow as tf

        self.tf = tf

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

        self.RMSNorm = RMSNorm
        return {"tensorflow": tf.__version__}

    def defaults(self) -> dict:
        return {"axis": "given (model code passes it)", "epsilon": DEFAULT_EPSILON, "scale_init": "given",
                "parameter_dtype": "the input's dtype"}

    def build(self, spec):
        eps = DEFAULT_EPSILON if spec.epsilon is None else spec.epsilon
        return self.RMSNorm(spec.axis, eps, spec.scale, len(spec.input_shape))

    def call(self, layer, x):
        return layer(self.tf.constant(x)).numpy()

    def grad(self, layer, x, dy):
        tf = self.tf
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt)
        dx, dscale = tape.gradient(y, [xt, layer.scale], output_gradients=tf.constant(dy))
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
