"""A worked example adapter: a plain numpy RMS norm kernel, plugged in as
`--adapter examples.my_kernel:MyRMSNorm` (README, "Plugging in your own implementation").

The tests run it through the CLI and the pytest plugin, so the README's example cannot rot.
"""
import numpy as np

from conformance.adapter import Adapter


class MyRMSNorm(Adapter):
    name = "my-kernel"                  # how it appears in reports
    env = {}                            # environment its worker process needs

    def load(self):                     # import your framework here, not at module top
        return {"numpy": np.__version__}

    def supports(self, spec):           # None, or why this case is outside your kernel
        if not spec.axes:
            return "needs at least one normalized axis"
        if not spec.is_trailing:
            return "normalizes trailing axes only"
        return None

    def build(self, spec):              # a layer: whatever your kernel needs
        eps = 1e-6 if spec.epsilon is None else spec.epsilon
        # half precision computes in float32, like most kernels; outputs in the input dtype
        compute = np.float64 if spec.compute_dtype == "float64" else np.float32
        return {"eps": eps, "axes": spec.axes, "scale": spec.scale, "compute": compute}

    def _parts(self, layer, x):
        xc = x.astype(layer["compute"])
        r = 1 / np.sqrt(np.mean(xc * xc, axis=layer["axes"], keepdims=True) + layer["eps"])
        return xc, r.astype(layer["compute"]), layer["scale"].astype(layer["compute"])

    def call(self, layer, x):           # numpy in, numpy out, in the dtype your kernel produced
        xc, r, s = self._parts(layer, x)
        # integer or boolean input: a float output (casting back would truncate the result)
        return (xc * r * s).astype(x.dtype if x.dtype.kind not in "biu" else layer["compute"])

    def grad(self, layer, x, dy):       # (dx, dscale); leave it out if you have none (forward only)
        xc, r, s = self._parts(layer, x)
        dyc = dy.astype(layer["compute"])
        dx = r * s * dyc - xc * r**3 * np.mean(s * dyc * xc, axis=layer["axes"], keepdims=True)
        other = tuple(a for a in range(x.ndim) if a not in layer["axes"])
        dscale = np.sum(dyc * xc * r, axis=other)
        return dx.astype(x.dtype), dscale.astype(layer["scale"].dtype)

    def config(self, layer):            # your layer's configuration; "epsilon" = the value used
        return {"epsilon": layer["eps"]}
