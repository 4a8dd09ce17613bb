"""The device families of the adapters: what the engine needs to place an adapter on an
accelerator (conformance/execution/devices.py reads this; it names no framework itself).

An adapter's `device_family` is a key of FAMILIES; adapters of no family run on the CPU only.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    accelerator: str  # the family's own name for its accelerator: torch's "cuda", JAX's "gpu"
    # A child process's Python source that prints the accelerator's name, or nothing when the
    # family sees none.
    probe: str
    # Variables left out of the probe's environment (an adapter's CPU default would hide the device).
    probe_unset: tuple[str, ...] = ()
    # What the environment of a worker placed on the accelerator gains (a worker learns its
    # device from the engine's own variable as well).
    accelerator_env: dict[str, str] = field(default_factory=dict)


FAMILIES: dict[str, Family] = {
    "torch": Family("cuda", "import torch\nif torch.cuda.is_available(): print(torch.cuda.get_device_name(0))"),
    "jax": Family("gpu", "import jax\nd = [x for x in jax.devices() if x.platform == 'gpu']\nif d: print(d[0].device_kind)",
                  probe_unset=("JAX_PLATFORMS",), accelerator_env={"JAX_PLATFORMS": "cuda"}),
}
