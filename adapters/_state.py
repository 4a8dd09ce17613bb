"""The frameworks' process-wide numerics state, for the shared workers' check that an adapter left
the process as it found it (conformance/execution/state.py reads these generically, and never
imports a framework: a probe runs only for a module already in sys.modules).

PROBES: module name -> a function of the imported module giving {what: value as text}.
FRESH: module name -> what a fresh import in this worker's environment gives, for the entries
that have one default whatever the built-ins do (a change made by the load() that first imports
the framework has no earlier reading to compare with).  A probe that raises is read as its error's
text, so only a change of what it reads counts.
"""
from __future__ import annotations

import os


def _torch(torch) -> dict[str, str]:
    out = {
        "torch default dtype": str(torch.get_default_dtype()),
        "torch threads": str(torch.get_num_threads()),
        "torch float32 matmul precision": str(torch.get_float32_matmul_precision()),
    }
    if hasattr(torch, "get_default_device"):  # torch 2.3 and later
        out["torch default device"] = str(torch.get_default_device())
    return out


def _jax(jax) -> dict[str, str]:
    # Config values only: jax.devices() would initialize a backend (and its threads).
    config = jax.config
    return {
        "jax x64": "on" if config.jax_enable_x64 else "off",
        "jax default device": str(config.jax_default_device),
        "jax default matmul precision": str(config.jax_default_matmul_precision),
    }


def _jax_fresh() -> dict[str, str]:
    # jax reads JAX_ENABLE_X64 at import (its bool_env: 1/true/yes/on/t/y).
    x64 = os.environ.get("JAX_ENABLE_X64", "").strip().lower() in ("1", "true", "yes", "on", "t", "y")
    return {"jax x64": "on" if x64 else "off", "jax default device": "None"}


# Threads the frameworks' libraries start lazily that touch no numerics state, by the (module,
# class) of their Thread: not counted as "left running".  Each with the evidence.
BENIGN_THREADS = {
    # tqdm's progress-bar monitor: started (daemon) by the first tqdm bar of the process, which
    # torch-onnx's export (onnxscript's torch API, verbose) opens; it lives as long as the process,
    # wakes every 10 s and only lowers a bar's `miniters` (tqdm/_monitor.py). The standard suite saw
    # it after torch-onnx's first case, and nothing else.
    ("tqdm._monitor", "TMonitor"),
}

PROBES = {"torch": _torch, "jax": _jax}
FRESH = {"torch": lambda: {"torch default dtype": "torch.float32"}, "jax": _jax_fresh}
