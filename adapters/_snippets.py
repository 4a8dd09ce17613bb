"""Source fragments shared by the adapters' `snippet(spec)` (for `conformance repro`).

A repro script defines `x`, `scale`, `dy`, `axis`, `axes`, `eps`, `input_shape`, `dtype`,
`compute_dtype` and `param_dtype` (see conformance/commands/repro.py); a snippet's `build` makes the
layer from them and its `call` sets `y_dtype`, `y_bytes` and `y64`.  The scripts need numpy
and the framework only, so nothing here may import this project.
"""
from __future__ import annotations

TORCH_IMPORTS = """
    import torch

    def to_torch(a):  # bfloat16 arrays travel as their 16 bits
        if a.dtype.name in ("bfloat16", "uint16"):
            return torch.from_numpy(np.ascontiguousarray(a).view(np.int16).copy()).view(torch.bfloat16)
        return torch.from_numpy(a.copy())
"""

TORCH_OUTPUT = """
    y_dtype = str(out.dtype).removeprefix("torch.")
    y_bytes = (out.view(torch.int16) if out.dtype == torch.bfloat16 else out).contiguous().numpy().tobytes()
    y64 = out.double().numpy()
"""

NUMPY_OUTPUT = """
    out = np.asarray(out)
    y_dtype, y_bytes, y64 = out.dtype.name, np.ascontiguousarray(out).tobytes(), out.astype(np.float64)
"""


def env_imports(env: dict, *lines: str) -> str:
    """Set the adapter's environment before the framework's import reads it."""
    return "\n".join([f"os.environ.update({dict(env)!r})", *lines])


def flax_preamble(spec) -> str:
    """`kwargs` and `ax` of a Flax RMSNorm as the Flax adapters pass them (no dtypes for the
    `default_` precisions: Flax's own)."""
    dtypes = "" if spec.no_dtype_args else \
        'kwargs |= {"dtype": jnp.dtype(compute_dtype), "param_dtype": jnp.dtype(param_dtype)}\n'
    return ('kwargs = {} if eps is None else {"epsilon": eps}\n' + dtypes +
            "ax = tuple(axis) if len(axis) != 1 else axis[0]\n")


def join(*parts: str) -> str:
    """Fragments as one block (each is dedented by repro.py as a whole, so strip them here)."""
    import textwrap

    return "\n".join(textwrap.dedent(p).strip("\n") for p in parts if p) + "\n"
