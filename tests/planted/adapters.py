"""Adapters planted by the tests: user adapters loaded with --adapter tests.planted.adapters:Name.

Each is built on the numpy reference and breaks one thing on purpose; a bug the diagnosis must
name declares it (`expect`, tests/planted/expect.py).  CrashOnHalf, KilledOnHalf,
KillsItsRayActorOnHalf and HangOnBfloat16 end or stop their process: through the CLI only.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from conformance.adapters.numpy_reference import NumpyReference
from tests.planted.expect import Expect

GRADIENTS_TOO = ("forward", "grad_x", "grad_scale")


class Correct(NumpyReference):
    name = "planted-correct"


class SloppyRsqrt(NumpyReference):
    """rsqrt with relative error 3e-4, as a fast approximate kernel might have."""

    name = "planted-sloppy-rsqrt"
    expect = Expect("f32/4x32/ax-1/eps1e-06/normal/rand/s0", GRADIENTS_TOO, "approximate-rsqrt")

    def _rrms(self, layer, xc):
        return super()._rrms(layer, xc) * xc.dtype.type(1 + 3e-4)


class EpsOutsideSqrt(NumpyReference):
    """1 / (sqrt(mean(x^2)) + eps): the other common placement of epsilon."""

    name = "planted-eps-outside"
    expect = Expect("f32/4x32/ax-1/eps1e-05/tiny/rand/s0", GRADIENTS_TOO, "eps-outside-sqrt")

    def _rrms(self, layer, xc):
        return 1.0 / (np.sqrt(np.mean(xc * xc, axis=layer.axes, keepdims=True)) + layer.epsilon)


class CrashOnHalf(NumpyReference):
    """Kills its worker process on float16 inputs, like a segfaulting kernel."""

    name = "planted-crash"

    def call(self, layer, x):
        if x.dtype == np.float16:
            os._exit(7)
        return super().call(layer, x)


class KilledOnHalf(NumpyReference):
    """Its process is killed (SIGKILL) in the middle of float16 cases, as the OOM killer would."""

    name = "planted-killed"

    def call(self, layer, x):
        if x.dtype == np.float16:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().call(layer, x)


class KillsItsRayActorOnHalf(NumpyReference):
    """Under `--executor ray`, kills the Ray actor that holds its worker process in the middle of
    float16 cases, as a lost node would.  Anywhere else (its parent is then the CLI) it never does."""

    name = "planted-kills-actor"

    def call(self, layer, x):
        parent = os.getppid()
        if x.dtype == np.float16 and Path(f"/proc/{parent}/cmdline").read_bytes().startswith(b"ray::"):
            os.kill(parent, signal.SIGKILL)
        return super().call(layer, x)


class HangOnBfloat16(NumpyReference):
    name = "planted-hang"

    def call(self, layer, x):
        if x.dtype.name == "bfloat16":
            time.sleep(3600)
        return super().call(layer, x)


class FailsToLoad(NumpyReference):
    name = "planted-no-framework"

    def load(self):
        import framework_that_does_not_exist  # noqa: F401


class CorrectButSloppy(SloppyRsqrt):
    """The sloppy kernel under the correct one's name: a regression of 'planted-correct'."""

    name = "planted-correct"


class RebuildDropsEpsilon(NumpyReference):
    """Its configuration forgets epsilon, so a layer rebuilt from it uses the default."""

    name = "planted-config-drops-epsilon"

    def rebuild(self, layer):
        new = super().rebuild(layer)
        new.epsilon = 1e-6
        return new


class SaveLoadLosesScale(NumpyReference):
    """Loads back the initial (ones) scale instead of the saved one."""

    name = "planted-save-loses-scale"

    def save_load(self, layer, folder):
        new = super().save_load(layer, folder)
        new.scale = np.ones_like(new.scale)
        return new


class FlatScale(NumpyReference):
    """Reports its scale flattened, as Flax stores a multi-axis scale."""

    name = "planted-flat-scale"

    def parameters(self, layer):
        return {"scale": super().parameters(layer)["scale"].reshape(-1)}
