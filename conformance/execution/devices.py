"""`--device cpu|cuda|gpu|auto`: which device the adapters of a device family run on.

An adapter says which family it belongs to (`device_family`, a family of adapters/_devices.py:
its accelerator's name, how to ask whether it sees one, what a worker on it needs); the others
run on the CPU only.  `cuda` and `gpu` both mean the accelerator (each family has its own name
for it); `auto` takes it where the family sees one and the CPU elsewhere.  Before any worker
starts, a short child process asks each family whether it sees an accelerator, so an absent
device is one line and exit 2, not a run of errors.  The worker learns its device from
CONFORMANCE_DEVICE, and from the family's own variables as well.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from conformance.adapters._devices import FAMILIES
from conformance.errors import UsageError

CHOICES = ("cpu", "cuda", "gpu", "auto")
ENV = "CONFORMANCE_DEVICE"
ACCELERATOR = {name: family.accelerator for name, family in FAMILIES.items()}  # each family's name for it
PROBE_TIMEOUT_S = 120.0
# Prints the accelerator's name, or nothing when the family sees none.
PROBES = {name: family.probe for name, family in FAMILIES.items()}


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu" or the family's accelerator name ("cuda", "gpu")
    accelerator: str = ""  # the accelerator's own name, e.g. "NVIDIA H100 80GB HBM3"

    @property
    def label(self) -> str:
        return f"{self.device} ({self.accelerator})" if self.accelerator else self.device


CPU = Placement("cpu")


def probe(family: str) -> str:
    """The name of the accelerator the family sees, or '' (also when the probe fails)."""
    env = {k: v for k, v in os.environ.items() if k not in FAMILIES[family].probe_unset}
    try:
        p = subprocess.run([sys.executable, "-c", PROBES[family]], capture_output=True, text=True, env=env,
                           timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return p.stdout.strip().splitlines()[-1] if p.returncode == 0 and p.stdout.strip() else ""


def place(requested: str, adapters: dict[str, str | None]) -> dict[str, Placement]:
    """{adapter name: placement} for `--device requested`, given each adapter's family (None:
    CPU only); UsageError, one line, when an adapter cannot have the device asked for."""
    if requested == "cpu":
        return {name: CPU for name in adapters}
    seen: dict[str, str] = {}
    out = {}
    for name, family in adapters.items():
        if family not in ACCELERATOR:
            if requested != "auto":
                raise UsageError(f"--device {requested}: adapter {name!r} runs on the CPU only (only the adapters "
                                 f"of a device family, {' or '.join(FAMILIES)}, can use an accelerator)")
            out[name] = CPU
            continue
        if family not in seen:
            seen[family] = probe(family)
        if seen[family]:
            out[name] = Placement(ACCELERATOR[family], seen[family])
        elif requested == "auto":
            out[name] = CPU
        else:
            raise UsageError(f"--device {requested}: {family} sees no accelerator on this machine "
                             f"(use --device cpu, or auto to take one where there is one)")
    return out


def worker_env(placement: Placement, family: str | None) -> dict[str, str]:
    """What a worker's environment gains for its placement."""
    env = {ENV: placement.device}
    if placement.accelerator:
        env[ENV + "_NAME"] = placement.accelerator
        if family in FAMILIES:
            env.update(FAMILIES[family].accelerator_env)
    return env
