"""Adapters that attack the harness rather than the numerics (tests/harness/, helpers in
tests/harness/processes.py).  Some end or stop their process: run them through the CLI only,
never in-process (tests/engine/inprocess.py).

Processes they start carry the test's token in their environment (they inherit
it), so a test can find every one that outlives a run by scanning /proc.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from conformance.adapters.numpy_reference import NumpyReference


def _start_sleeper(new_session: bool) -> None:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=new_session,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class SpawnsHelpers(NumpyReference):
    """Starts a helper in its own process group and one in a new session, then works correctly."""

    name = "hostile-spawns"

    def load(self):
        _start_sleeper(new_session=False)
        _start_sleeper(new_session=True)
        return super().load()


class SpawnsThenHangs(SpawnsHelpers):
    """Starts helpers, then hangs on bfloat16: the hang kill must take the helpers too."""

    name = "hostile-spawns-hangs"

    def call(self, layer, x):
        if x.dtype.name == "bfloat16":
            _start_sleeper(new_session=True)
            time.sleep(600)
        return super().call(layer, x)


class ForksHoldingPipe(NumpyReference):
    """A forked child inherits every descriptor, the protocol pipe included, and lingers."""

    name = "hostile-fork"

    def load(self):
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        return super().load()


class Slow(NumpyReference):
    """Correct, 50 ms a case: slow enough to be interrupted in the middle of a run."""

    name = "hostile-slow"

    def call(self, layer, x):
        time.sleep(0.05)
        return super().call(layer, x)


class HangsAlways(NumpyReference):
    name = "hostile-hangs"

    def call(self, layer, x):
        time.sleep(600)


class SlashName(NumpyReference):
    name = "../../escaped"


class IntName(NumpyReference):
    name = 42


class EnvNotDict(NumpyReference):
    name = "hostile-env-list"
    env = ["A=1"]


class EnvIntValue(NumpyReference):
    name = "hostile-env-int"
    env = {"A": 1}


class EnvEqualsInName(NumpyReference):
    name = "hostile-env-eq"
    env = {"A=B": "1"}


class EnvNulInName(NumpyReference):
    name = "hostile-env-nul"
    env = {"A\0B": "1"}


class NamedLikeBuiltin(NumpyReference):
    name = "torch"


class Twin(NumpyReference):
    name = "planted-correct"  # the name of tests.planted.adapters:Correct


class ObjectOutput(NumpyReference):
    """Returns an object array on float16, strings on bfloat16: wrong outputs, not crashes."""

    name = "hostile-object-output"

    def call(self, layer, x):
        if x.dtype == np.float16:
            return np.array([object()] * x.size, dtype=object)
        if x.dtype.name == "bfloat16":
            return np.full(x.shape, "nan", dtype="<U3")
        return super().call(layer, x)


class TensorRequiringGrad(NumpyReference):
    """Returns a torch tensor that still requires grad (numpy refuses it)."""

    name = "hostile-tensor"

    def call(self, layer, x):
        import torch

        y = super().call(layer, x)
        if x.dtype == np.float32:
            return torch.tensor(y.astype(np.float32), requires_grad=True)
        return y


class SupportsRaises(NumpyReference):
    name = "hostile-supports-raises"

    def supports(self, spec):
        if spec.dtype == "float16":
            raise RuntimeError("supports exploded")
        return super().supports(spec)


class ConfigNone(NumpyReference):
    name = "hostile-config-none"

    def config(self, layer):
        return None


class ConfigArrays(NumpyReference):
    name = "hostile-config-arrays"

    def config(self, layer):
        return {**super().config(layer), "scale": np.ones(3)}


class SlowExact(NumpyReference):
    """The float64 oracle rounded once to the case's dtypes, 50 ms a call: nothing to find, slowly."""

    name = "hostile-slow-exact"

    def _exact(self, layer, x, dy):
        from conformance.numerics.oracle import oracle

        scale = layer.scale.reshape(layer.scale_shape)
        return oracle(x, scale, np.zeros(x.shape) if dy is None else dy, layer.axes, layer.epsilon)

    def call(self, layer, x):
        time.sleep(0.05)
        return self._exact(layer, x, None).y.astype(x.dtype)

    def grad(self, layer, x, dy):
        ref = self._exact(layer, x, dy)
        return ref.dx.astype(x.dtype), ref.dscale.astype(layer.scale.dtype)


class _Exits:
    def __array__(self, *args, **kwargs):
        raise SystemExit(0)


class ArrayRaisesSystemExit(NumpyReference):
    """Returns, on float16, an object whose conversion to an array raises SystemExit."""

    name = "hostile-array-exit"

    def call(self, layer, x):
        return _Exits() if x.dtype == np.float16 else super().call(layer, x)


class ConfigRaisesKeyboardInterrupt(NumpyReference):
    name = "hostile-config-kbd"

    def config(self, layer):
        raise KeyboardInterrupt


class ExitInCall(NumpyReference):
    name = "hostile-exit-in-call"

    def call(self, layer, x):
        if x.dtype == np.float16:
            sys.exit(0)
        return super().call(layer, x)


class _EvilDict(dict):
    def items(self):
        raise RuntimeError("items exploded")

    def keys(self):
        raise RuntimeError("keys exploded")

    def __iter__(self):
        raise RuntimeError("iter exploded")


class ConfigDictRaises(NumpyReference):
    """config() returns a dict that raises whenever it is read."""

    name = "hostile-config-evil-dict"

    def config(self, layer):
        return _EvilDict(super().config(layer))
