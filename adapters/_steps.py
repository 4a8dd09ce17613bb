"""The framework code several adapters share, written once: torch conversions and backward, the
JAX training step (forward and `jax.vjp`), the TensorFlow GradientTape step.

Plain functions of numpy and their framework, imported inside them (see _snippets.py), so that
`conformance repro` writes them into a script as they are.
"""
from __future__ import annotations

import numpy as np


# -- torch ------------------------------------------------------------------------------------
def to_torch(a):
    """A numpy array as a torch tensor on torch's default device; bfloat16 travels as its 16 bits
    (an ml_dtypes array, or the bits themselves as uint16 where ml_dtypes is not installed)."""
    import torch

    if a.dtype.name in ("bfloat16", "uint16"):
        t = torch.from_numpy(np.ascontiguousarray(a).view(np.int16).copy()).view(torch.bfloat16)
    else:
        t = torch.from_numpy(np.array(a, copy=True))
    return t.to(torch.get_default_device())


def from_torch(t):
    """A torch tensor as a numpy array in its dtype: bfloat16 as ml_dtypes' (its bits as uint16
    where ml_dtypes is not installed)."""
    import torch

    t = t.detach().cpu()
    if t.dtype != torch.bfloat16:
        return t.numpy()
    bits = t.contiguous().view(torch.int16).numpy()
    try:
        import ml_dtypes
    except ImportError:
        return bits.view(np.uint16)
    return bits.view(ml_dtypes.bfloat16)


def torch_call(fn, x):
    """fn(x) in eager mode without autograd, as inference runs it."""
    import torch

    with torch.no_grad():
        return from_torch(fn(to_torch(x)))


def torch_backward(fn, params, x, dy):
    """(dx, [gradient of each of params]): fn(x) and autograd's `backward` from dy, as a training
    step runs them (the parameters' gradients cleared first)."""
    xt = to_torch(x).requires_grad_(True)
    for p in params:
        p.grad = None
    fn(xt).backward(to_torch(dy))
    return from_torch(xt.grad), [from_torch(p.grad) for p in params]


# -- JAX: a layer's forward as a pure function apply(static, params, x) ----------------------
def jax_vjp_step(apply, static, params, x, dy):
    """A training step: y = apply(static, params, x) and its `jax.vjp` pulled back from dy (in y's
    dtype, as autodiff requires), traced together: (y, dx, dparams)."""
    import jax

    y, pullback = jax.vjp(lambda p, xx: apply(static, p, xx), params, x)
    dparams, dx = pullback(dy.astype(y.dtype))
    return y, dx, dparams


def jax_jvp(apply, static, params, x, v):
    """(y, J v): forward mode through the forward, a function of x alone."""
    import jax

    return jax.jvp(lambda xx: apply(static, params, xx), (x,), (v,))


def jax_hvp(apply, static, params, x, dy, v):
    """The gradient in x of <dx(x; dy), v>: the forward's vjp, differentiated again."""
    import jax

    def inner(xx):  # <dx, v>; its gradient is exact whatever the sum's own rounding
        y, pullback = jax.vjp(lambda x1: apply(static, params, x1), xx)
        return (pullback(dy.astype(y.dtype))[0] * v).sum()

    return jax.grad(inner)(x)


def jax_step(apply, compile):
    """The training step of `apply` (jax_vjp_step), a function of (static, params, x, dy) made by
    `compile`: jax.jit with the static part as its key (jit_static), eqx.filter_jit, or op_by_op."""
    import functools

    return compile(functools.partial(jax_vjp_step, apply))


def jax_primal(step, args, x):
    """What `call` returns: the primal output of the training step (dy zero), as a training step
    computes y."""
    y, _, _ = step(*args, x, np.zeros_like(x))
    return np.asarray(y)


def jit_static(fn):
    """`jax.jit`, the first argument (the layer's static part: epsilon, dtypes, axes) the compile key."""
    import jax

    return jax.jit(fn, static_argnums=0)


def op_by_op(fn):
    """No compilation: every jax.numpy call dispatched as it comes."""
    return fn


# -- TensorFlow -------------------------------------------------------------------------------
def tf_call(fn, x):
    """fn on x as a tensor, back in numpy."""
    import tensorflow as tf

    return fn(tf.constant(x)).numpy()


def tf_tape_step(fn, variables, x, dy):
    """(dx, [gradient of each variable]) of fn at the tensor x from dy (cast to y's dtype, as
    autodiff requires): the GradientTape step of a training loop."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    dx, *dvars = tape.gradient(y, [x, *variables], output_gradients=tf.cast(dy, y.dtype))
    return dx, dvars
