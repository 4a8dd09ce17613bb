"""A user adapter over `tinykernel`, a package the tests build as wheels of several versions
(tests/planted/wheels.py) and serve from a local folder: what `conformance bisect` and
`conformance matrix` run across releases (tests/harness/test_bisect.py, test_matrix.py).

tinykernel is never installed in the suite's environment: the worker imports it from the overlay
that `run --with tinykernel==V` puts first on its sys.path, and load() reports its version.
Forward only (no grad): the gradient checks are unsupported.  TINYKERNEL_LOAD_DELAY
("VERSION=SECONDS,...") slows load() of those versions down, for the test that interrupts a
matrix mid-run.
"""
from __future__ import annotations

import os
import time

import numpy as np

from conformance.adapter import Adapter


class TinyKernel(Adapter):
    name = "tinykernel"
    env = {}

    def load(self):
        import tinykernel  # from the overlay

        self.kernel = tinykernel
        delays = dict(item.split("=", 1) for item in os.environ.get("TINYKERNEL_LOAD_DELAY", "").split(",") if "=" in item)
        if tinykernel.__version__ in delays:
            time.sleep(float(delays[tinykernel.__version__]))
        return {"tinykernel": tinykernel.__version__}

    def supports(self, spec):
        if not spec.axes:
            return "needs at least one normalized axis"
        if not spec.is_trailing:
            return "normalizes trailing axes only"
        return None

    def build(self, spec):
        eps = 1e-6 if spec.epsilon is None else spec.epsilon
        compute = np.float64 if spec.compute_dtype == "float64" else np.float32
        return {"eps": eps, "axes": spec.axes, "scale": spec.scale, "compute": compute}

    def call(self, layer, x):
        ct = layer["compute"]
        with np.errstate(all="ignore"):
            y = self.kernel.rms_norm(x.astype(ct), layer["axes"], ct(layer["eps"])) * layer["scale"].astype(ct)
        return y if x.dtype.kind in "biu" else y.astype(x.dtype)

    def config(self, layer):
        return {"epsilon": layer["eps"]}
