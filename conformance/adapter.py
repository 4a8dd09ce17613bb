"""The adapter contract (DESIGN.md section 4) and how adapters are found.

Requirements of the design, which every adapter keeps:
- it is what a user of that framework would write: the framework's own layer
  with its own numerics; it never casts outputs or catches the framework's errors;
- it imports its framework inside `load()`, never at module import, so the
  parent process can read `name` and `env` without paying for (or fixing) the
  framework's import, which happens in the adapter's own worker process;
- a case the framework cannot express is declined by `supports()` with the
  reason, and recorded as `unsupported`, which never counts as a pass;
- `grad()` raising NotImplementedError means "this adapter has no gradients";
  every other exception is the framework's and is recorded as an `error`;
- `config(layer)["epsilon"]` is the epsilon the layer actually uses, so cases
  with `epsilon=None` (the implementation's default) can be scored;
- the configuration checks use three optional methods, each the framework's
  own way: `rebuild(layer)` (a new layer from the layer's configuration, same
  parameters loaded), `save_load(layer, folder)` (saved in the framework's
  format and loaded back) and `parameters(layer)` ({name: array}, trainable
  ones).  Not implementing one records its checks as `unsupported`;
- optional `defaults()` describes a default-constructed layer (`axis`,
  `epsilon`, `scale_init`) and `claims()` checks the framework's documentation
  against its behaviour; both go into the adapter's record and the reports.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from conformance.spec import LayerSpec


class Adapter:
    name: str = ""
    env: dict[str, str] = {}
    gradients: bool = True  # False: forward only; gradient checks are `unsupported` whatever happens
    device_family: str | None = None  # "torch" or "jax": can run on an accelerator (conformance/execution/devices.py)
    device: str = "cpu"  # set by the worker before load(): "cpu", "cuda" (torch) or "gpu" (JAX)
    # Adapters of one worker group with identical environments share a worker process, so their
    # framework is imported once ("torch", "jax", ...; a subclass inherits its parent's).  None:
    # a worker of its own.  Only for adapters that leave the framework's global state as they found it.
    worker_group: str | None = None
    # Distributions whose versions `conformance list` reads from their metadata, without importing
    # them; "a|b" where either provides the package (tensorflow or tensorflow-cpu).
    packages: tuple[str, ...] = ()

    def load(self) -> dict[str, str]:
        """Import the framework; return {package: version} of what the results depend on."""
        return {}

    def supports(self, spec: LayerSpec) -> str | None:
        """None, or why this spec is outside what the implementation can express."""
        return None

    def build(self, spec: LayerSpec) -> Any:
        raise NotImplementedError

    def call(self, layer: Any, x: np.ndarray) -> np.ndarray:
        """Forward pass, returned in the dtype the framework produced."""
        raise NotImplementedError

    def grad(self, layer: Any, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(dx, dscale) for upstream gradient dy; dscale None if the layer has no scale."""
        raise NotImplementedError

    def config(self, layer: Any) -> dict:
        """The layer's own configuration, JSON-safe, with "epsilon" the value it uses."""
        return {}

    def rebuild(self, layer: Any) -> Any:
        """A new layer made from `layer`'s own configuration, with its parameters loaded."""
        raise NotImplementedError

    def save_load(self, layer: Any, folder: str) -> Any:
        """Save `layer` in the framework's own format under `folder` and load it back."""
        raise NotImplementedError

    def parameters(self, layer: Any) -> dict[str, np.ndarray]:
        """The layer's trainable parameters by name, as numpy arrays in their own dtype."""
        raise NotImplementedError
