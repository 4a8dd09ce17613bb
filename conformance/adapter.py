"""The adapter contract: what the suite calls on an implementation, declared once, here.

An adapter is what a user of that framework would write: the framework's own layer with its
own numerics.  It never casts outputs, never fixes the framework, never catches the
framework's errors to return something plausible.  It imports its framework inside `load()`,
never at module import, so the parent process can read `name` and `env` without paying for
(or fixing) the framework's import, which happens in the adapter's own worker process.

Required: `load`, `supports`, `build`, `call`, `config`.  Everything else is an optional
extension, declared below with its docstring, and follows one convention: **an adapter
provides an extension by overriding the method**; the base class's method raises
`NotImplementedError` and means "not provided", and the checks that need it are recorded as
`unsupported` with the name of the method that would enable them (never an error).  A
subclass withdraws an extension it inherits by assigning the base's method back
(`jvp = Adapter.jvp`).  `capabilities(adapter)` is derived from the overrides alone; inside a
provided method, raising `NotImplementedError` means "not for this input" (a layout that
does not apply to the case's shape), recorded as `unsupported` for that case only.

`python -m conformance.execution.loading REF` is how the runner reads a user's class;
`from conformance.adapter import Adapter` is the public import.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from conformance.spec import LayerSpec


class Adapter:
    """The base of every adapter; see the module docstring for the conventions."""

    name: str = ""
    env: dict[str, str] = {}  # environment variables of the adapter's worker (set before load())
    device_family: str | None = None  # "torch" or "jax": can run on an accelerator (adapters/_devices.py)
    device: str = "cpu"  # set by the worker before load(): "cpu", "cuda" (torch) or "gpu" (JAX)
    # Adapters of one worker group with identical environments share a worker process, so their
    # framework is imported once ("torch", "jax", ...; a subclass inherits its parent's).  None:
    # a worker of its own.  Only for adapters that leave the framework's global state as they found it.
    worker_group: str | None = None
    # Distributions whose versions `conformance list` reads from their metadata, without importing
    # them; "a|b" where either provides the package (tensorflow or tensorflow-cpu).
    packages: tuple[str, ...] = ()
    # The projects that own the implementation's numerics, the one whose code computes the result
    # first ("keras", then the backend "jax"; "transformers", then "pytorch"): the reports merge a
    # discrepancy seen on several adapters of one owner into one defect of that project, and a
    # dependency that shows it on its own adapter takes it from the adapters built on it.
    # () means the top-level package of the adapter's own module (reports/defects.py).
    owners: tuple[str, ...] = ()

    # -- required -------------------------------------------------------------------------
    def load(self) -> dict[str, str]:
        """Import the framework; return {package: version} of what the results depend on."""
        return {}

    def supports(self, spec: LayerSpec) -> str | None:
        """None, or why this spec is outside what the implementation can express (`unsupported`)."""
        return None

    def build(self, spec: LayerSpec) -> Any:
        """The layer for `spec`, with `spec.scale` loaded as its scale."""
        raise NotImplementedError

    def call(self, layer: Any, x: np.ndarray) -> np.ndarray:
        """Forward pass, returned in the dtype the framework produced."""
        raise NotImplementedError

    def config(self, layer: Any) -> dict:
        """The layer's own configuration, JSON-safe, with "epsilon" the value it uses (so cases
        with `epsilon=None`, the implementation's default, can be scored)."""
        return {}

    # -- optional: gradients and derivatives ------------------------------------------------
    def grad(self, layer: Any, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(dx, dscale) for upstream gradient dy, through the framework's autodiff; dscale None
        if the layer has no scale.  Not provided: a forward-only adapter."""
        raise NotImplementedError("grad is not provided")

    def jvp(self, layer: Any, x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y, t): the output and its forward-mode derivative in the direction v."""
        raise NotImplementedError("jvp is not provided")

    def hvp(self, layer: Any, x: np.ndarray, dy: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The gradient in x of <dx(x; dy), v>: the framework's autodiff applied twice."""
        raise NotImplementedError("hvp is not provided")

    # -- optional: inputs in other memory layouts -------------------------------------------
    def call_layout(self, layer: Any, x: np.ndarray, layout: str) -> np.ndarray:
        """`call` on x made non-contiguous in the framework ("transposed", "strided",
        "negative-strides", "channels-last"); NotImplementedError for a layout that does not
        apply to x's shape.  Not provided: a framework without strided inputs."""
        raise NotImplementedError("call_layout is not provided")

    # -- optional: configuration and serialization ------------------------------------------
    def rebuild(self, layer: Any) -> Any:
        """A new layer made from `layer`'s own configuration, with its parameters loaded."""
        raise NotImplementedError("rebuild is not provided")

    def save_load(self, layer: Any, folder: str) -> Any:
        """Save `layer` in the framework's own format under `folder` and load it back."""
        raise NotImplementedError("save_load is not provided")

    def parameters(self, layer: Any) -> dict[str, np.ndarray]:
        """The layer's trainable parameters by name, as numpy arrays in their own dtype."""
        raise NotImplementedError("parameters is not provided")

    def effective(self, layer: Any) -> dict:
        """{"epsilon": float, "scale": array} as the layer really applies them (ONNX stores
        epsilon as float32, Gemma multiplies by 1 + w); values are scored against these, and
        the `parameters` check compares them with the request."""
        raise NotImplementedError("effective is not provided")

    # -- optional: the fused forms (conformance/checks/fused.py, docs/adapters.md) -------------
    # The fused add's declarations, read by its checks: the precision the sum x + residual is
    # normalized in ("float32", as FlashInfer adds; "input", the input's dtype, as vLLM and Liger
    # do; None: undeclared, the checks report what they observe), and whether `call_fused_add`
    # writes in place (vLLM's fused_add_rms_norm: the sum into the residual's buffer, y into x's).
    fused_add_sum: str | None = None
    fused_add_in_place: bool = False

    def call_fused_add(self, layer: Any, x: np.ndarray, residual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y, new_residual): new_residual = x + residual, y = the layer's normalization of it, in
        one call as an inference engine's fused kernel runs it.  The inputs are left as they are,
        unless `fused_add_in_place` (then the residual buffer holds the sum and new_residual is it)."""
        raise NotImplementedError("call_fused_add is not provided")

    def grad_fused_add(self, layer: Any, x: np.ndarray, residual: np.ndarray, dy: np.ndarray,
                       dresidual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(dx, d(residual), dscale) of the fused add from the gradients dy of y and `dresidual` of
        the written-back residual, through the framework's autodiff."""
        raise NotImplementedError("grad_fused_add is not provided")

    def build_offset(self, spec: LayerSpec) -> Any:
        """A layer that applies (spec.offset + w), w = spec.scale in the parameter dtype, as its
        scale (Gemma's 1 + w, Liger's `offset`); called with `call` and `grad` (dscale is dw)."""
        raise NotImplementedError("build_offset is not provided")

    def call_quantized(self, layer: Any, x: np.ndarray, scale: float) -> np.ndarray:
        """The layer's output quantized with a static scale, as vLLM's and FlashInfer's fused
        kernels do: fp8(saturate(y / scale)), a float8_e4m3fn array (ml_dtypes), scale a float32 value."""
        raise NotImplementedError("call_quantized is not provided")

    # -- optional: what the reports and `repro` say about the implementation ----------------
    def snippet(self, spec: LayerSpec) -> dict:
        """{"imports", "functions", "build", "call"}: the framework code of build and call as
        source, for a `conformance repro` script that needs no suite; made from the very
        functions the adapter runs (adapters/_snippets.py), so it cannot drift from them."""
        raise NotImplementedError("snippet is not provided")

    def defaults(self) -> dict:
        """A default-constructed layer as the framework makes it: `axis`, `epsilon`,
        `scale_init`, `parameter_dtype`; shown in the reports."""
        raise NotImplementedError("defaults is not provided")

    def claims(self) -> list[dict]:
        """The framework's documentation checked against its behaviour: [{"claim", "holds",
        "observed"}]; shown in the reports."""
        raise NotImplementedError("claims is not provided")


# Every optional extension and what it enables: the checks and report sections that need it.
OPTIONAL: dict[str, str] = {
    "grad": "the gradient checks grad_x and grad_scale",
    "jvp": "the jvp property (forward-mode derivative)",
    "hvp": "the hvp property (second-order derivative)",
    "call_layout": "the layout property (non-contiguous inputs)",
    "rebuild": "the config_roundtrip check",
    "save_load": "the save_load check",
    "parameters": "the structure check",
    "effective": "the parameters check (effective epsilon and scale)",
    "call_fused_add": "the fused add's checks fused_add, fused_add_residual, fused_add_untouched",
    "grad_fused_add": "the fused add's fused_add_grad check",
    "build_offset": "the offset form's checks offset_forward, offset_grad",
    "call_quantized": "the quantized form's check quantized",
    "snippet": "a `conformance repro` script that needs no suite",
    "defaults": "the reports' table of default-constructed layers",
    "claims": "the reports' documentation claims",
}
REQUIRED: tuple[str, ...] = ("load", "supports", "build", "call", "config")


def provides(adapter: Adapter | type, method: str) -> bool:
    """Whether the adapter (instance or class) overrides the optional `method`."""
    cls = adapter if isinstance(adapter, type) else type(adapter)
    if method not in OPTIONAL:
        raise KeyError(f"{method!r} is not an optional method of the adapter contract")
    impl = getattr(cls, method, None)  # a duck-typed user class may lack it, or set it to None
    return callable(impl) and impl is not getattr(Adapter, method)


def capabilities(adapter: Adapter | type) -> tuple[str, ...]:
    """The optional methods the adapter provides, in the contract's order."""
    return tuple(m for m in OPTIONAL if provides(adapter, m))
