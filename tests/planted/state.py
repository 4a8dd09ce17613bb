"""Adapters planted by the tests of shared workers that notice poisoned state
(tests/harness/test_worker_state.py, tests/frameworks/test_worker_state.py): user adapters, each a
subclass of a built-in that changes one piece of process-wide state in its first case and is
otherwise correct.  Sharing a worker with them (`--share-with-builtins`), the built-in after them
would run in that state: the worker must see the change, mark it, and restart.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import signal
import threading
import time

import numpy as np

from conformance.adapters.flax_nnx import FlaxNNXRMSNorm
from conformance.adapters.numpy_reference import NumpyReference
from conformance.adapters.torch_nn import TorchRMSNorm

# <fenv.h>'s FE_UPWARD: x86's MXCSR/x87 bits, AArch64's FPCR bits.
FE_UPWARD = {"x86_64": 0x800, "AMD64": 0x800, "aarch64": 0x400000, "arm64": 0x400000}.get(platform.machine())


class _OnFirstCall:
    """Calls `poison()` once, in the first case's forward call."""

    poisoned = False

    def call(self, layer, x):
        if not type(self).poisoned:
            type(self).poisoned = True
            self.poison()
        return super().call(layer, x)


class RoundsUpward(_OnFirstCall, NumpyReference):
    """fesetround(FE_UPWARD): every float operation after it rounds up."""

    name = "planted-rounds-upward"

    def poison(self):
        libm = ctypes.CDLL(ctypes.util.find_library("m"))
        if FE_UPWARD is None or libm.fesetround(FE_UPWARD) != 0:
            raise RuntimeError(f"cannot set the rounding mode on {platform.machine()}")


class RaisesOnFloatErrors(_OnFirstCall, NumpyReference):
    """np.seterr(all="raise"): numpy's overflow, underflow and invalid results become exceptions."""

    name = "planted-numpy-raises"

    def poison(self):
        np.seterr(all="raise")


class RaisesInLoad(NumpyReference):
    """np.seterr(all="raise") in load(), before any case."""

    name = "planted-raises-in-load"

    def load(self):
        np.seterr(all="raise")
        return super().load()


def _kill_worker_at_next_task() -> None:
    """Until the worker's stderr goes to another log (its next task, of another adapter), wait;
    then kill the worker, as a thread of a library gone wrong would."""
    first = os.fstat(2)
    while True:
        now = os.fstat(2)
        if (now.st_dev, now.st_ino) != (first.st_dev, first.st_ino):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.005)


class LeavesDaemonThread(_OnFirstCall, NumpyReference):
    """A daemon thread left running, which kills the worker once another adapter's task starts."""

    name = "planted-daemon-thread"
    daemon = True

    def poison(self):
        threading.Thread(target=_kill_worker_at_next_task, daemon=self.daemon, name="planted-killer").start()


class LeavesThread(LeavesDaemonThread):
    """The same as a thread that is not a daemon (a process with it cannot even exit by itself)."""

    name = "planted-thread"
    daemon = False


class TorchLeavesThread(_OnFirstCall, TorchRMSNorm):
    """torch's layer, and a thread left running that kills the worker in torch's next task."""

    name = "planted-torch-thread"

    def poison(self):
        threading.Thread(target=_kill_worker_at_next_task, daemon=True, name="planted-killer").start()


class TorchFlushesDenormals(_OnFirstCall, TorchRMSNorm):
    """torch.set_flush_denormal(True): flush-to-zero and denormals-are-zero on."""

    name = "planted-torch-ftz"

    def poison(self):
        import torch

        if not torch.set_flush_denormal(True):
            raise RuntimeError("this CPU cannot flush denormals")


class TorchDefaultsToFloat64(_OnFirstCall, TorchRMSNorm):
    """torch.set_default_dtype(torch.float64): new parameters are float64."""

    name = "planted-torch-float64"

    def poison(self):
        import torch

        torch.set_default_dtype(torch.float64)


class FlaxX64Off(_OnFirstCall, FlaxNNXRMSNorm):
    """jax.config.update("jax_enable_x64", False) in a JAX-group adapter: float64 is float32 after it."""

    name = "planted-flax-x64-off"

    def poison(self):
        import jax

        jax.config.update("jax_enable_x64", False)
