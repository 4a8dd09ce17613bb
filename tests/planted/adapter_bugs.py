"""Adapters whose own code has a bug (an adapter error, never the framework's crash), and one whose
framework refuses an input from inside its own code (numpy's broadcasting: the framework's).

`KeyErrorInBuild` reads a key its layer never had, on the invalid configurations only: the check
of an invalid configuration must not count that as the framework refusing it."""
import numpy as np

from conformance.adapters.numpy_reference import NumpyReference


class KeyErrorInBuild(NumpyReference):
    name = "planted-keyerror-in-build"

    def build(self, spec):
        layer = super().build(spec)
        if spec.input_shape == (2, 8) and spec.dtype == "float32" and spec.axis == (-1,):
            return {"layer": layer}["lyaer"]  # a typo: the adapter's own bug
        return layer


class RaisesInCall(NumpyReference):
    """Raises in its own call() on float16 inputs, as an adapter that checks something itself."""

    name = "planted-raises-in-call"

    def call(self, layer, x):
        if x.dtype == np.float16:
            raise ValueError("float16 is not handled here")
        return super().call(layer, x)
