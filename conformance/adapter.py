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

import importlib
import re
from typing import Any

import numpy as np

from conformance.adapters import BUILTIN
from conformance.errors import UsageError
from conformance.spec import LayerSpec


class Adapter:
    name: str = ""
    env: dict[str, str] = {}
    gradients: bool = True  # False: forward only; gradient checks are `unsupported` whatever happens
    device_family: str | None = None  # "torch" or "jax": can run on an accelerator (conformance/devices.py)
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


def import_adapter(ref: str) -> type[Adapter]:
    """The class for a built-in name or a `package.module:ClassName`; UsageError otherwise."""
    target = BUILTIN.get(ref, ref)
    if ":" not in target:
        raise UsageError(
            f"unknown adapter {ref!r}: use one of {', '.join(BUILTIN)} or package.module:ClassName"
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's input to fix
        raise UsageError(
            f"cannot import module {module_name!r} for adapter {ref!r} ({type(exc).__name__}: {exc}); "
            "check the name and that it is on PYTHONPATH"
        ) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise UsageError(f"module {module_name!r} has no class {class_name!r} (adapter {ref!r})")
    for method in ("build", "call", "grad", "load", "supports", "config"):
        if not callable(getattr(cls, method, None)):
            raise UsageError(f"adapter {ref!r} lacks the method {method}(); see the adapter contract in README.md")
    return cls


# Names key records, baselines and log files: a short, path-safe word.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def adapter_name(cls: type, ref: str) -> str:
    """The class's `name`, or for a user class without one, its reference with `:` as `.`."""
    name = getattr(cls, "name", "")
    return name if name or not isinstance(name, str) else ref.replace(":", ".")


def check_metadata(ref: str, name, env) -> None:
    """UsageError unless `name` is a path-safe word and `env` a dict of str to str."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"adapter {ref!r} has the name {name!r}: a name is 1-64 characters of letters, digits "
                         "and . _ + -, starting with a letter or digit; set the class attribute `name`")
    if not isinstance(env, dict):
        raise UsageError(f"adapter {ref!r}: `env` is a {type(env).__name__}, it must be a dict of str to str")
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise UsageError(f"adapter {ref!r}: environment variable name {key!r} is not valid "
                             "(a non-empty string without '=' or NUL)")
        if not isinstance(value, str) or "\0" in value:
            raise UsageError(f"adapter {ref!r}: environment variable {key} = {value!r} is not a string without NUL")


def describe_main(argv: list[str]) -> int:
    """`python -m conformance.adapter REF`: import REF's class, print its name, env, device
    family and worker group as JSON.

    The CLI runs this in a child process, so a user module that exits, raises or
    crashes at import is an input error, not the CLI's death."""
    import json
    import os

    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the module prints goes to stderr
    try:
        cls = import_adapter(argv[0])
        name, env = adapter_name(cls, argv[0]), getattr(cls, "env", {})
        check_metadata(argv[0], name, env)
        family, group = getattr(cls, "device_family", None), getattr(cls, "worker_group", None)
        message = {"name": name, "env": env, "family": family if family in ("torch", "jax") else None,
                   "group": group if isinstance(group, str) else None}
    except UsageError as exc:
        message = {"error": str(exc)}
    proto.write(json.dumps(message) + "\n")
    proto.flush()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(describe_main(sys.argv[1:]))
