"""Wheels of `tinykernel` (tests/planted/versioned.py), written with zipfile inside a test: no
build backend, no network.  Version by version:

- 0.1: correct, x / sqrt(mean(x²) + eps);
- 0.2: the bug, epsilon outside the square root, x / (sqrt(mean(x²)) + eps);
- 0.2.5: requires a distribution that no index has, so it does not install;
- 0.3: keeps the bug.

`build(folder)` writes them into `folder` (a --find-links index) and returns their versions;
`Index` is that folder with the CLI run against it (tests/harness/test_bisect.py, test_matrix.py).
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SOURCE = '''"""tinykernel {version}: RMS normalization in numpy (a test fixture of rmsnorm-conformance)."""
import numpy as np

__version__ = "{version}"
EPS_OUTSIDE_SQRT = {bug}


def rms_norm(x, axes, eps):
    ms = np.mean(x * x, axis=tuple(axes), keepdims=True)
    if EPS_OUTSIDE_SQRT:
        return x / (np.sqrt(ms) + eps)
    return x / np.sqrt(ms + eps)
'''

RELEASES = {"0.1": {"bug": False}, "0.2": {"bug": True}, "0.2.5": {"bug": True, "requires": "tinykernel-missing-dependency>=1"},
            "0.3": {"bug": True}}
FIRST_BAD, LAST_GOOD, BROKEN = "0.2", "0.1", "0.2.5"


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel(folder: Path, version: str, bug: bool, requires: str | None = None) -> Path:
    dist = f"tinykernel-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: tinykernel\nVersion: {version}\n" + (f"Requires-Dist: {requires}\n" if requires else "")
    files = {
        "tinykernel/__init__.py": SOURCE.format(version=version, bug=bug).encode(),
        f"{dist}/METADATA": meta.encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: rmsnorm-conformance-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},{_digest(data)},{len(data)}\n" for name, data in files.items()) + f"{dist}/RECORD,,\n"
    path = Path(folder) / f"tinykernel-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{dist}/RECORD", record)
    return path


def build(folder: Path, releases: dict | None = None) -> list[str]:
    Path(folder).mkdir(parents=True, exist_ok=True)
    releases = RELEASES if releases is None else releases
    for version, spec in releases.items():
        wheel(folder, version, **spec)
    return list(releases)


def pip_args(folder: Path) -> list[str]:
    """The options that make pip use only `folder`."""
    return ["--pip-arg=--no-index", f"--pip-arg=--find-links={folder}"]


ADAPTER = "tests.planted.versioned:TinyKernel"
CASE = "f32/4x32/ax-1/eps1e-05/tiny/rand/s0"  # where epsilon outside the square root shows (planted EpsOutsideSqrt's)


class Index:
    """tinykernel 0.1, 0.2, 0.2.5 (does not install) and 0.3 in `folder`/wheels; overlays in `folder`/cache."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.wheels = folder / "wheels"
        self.cache = folder / "cache"
        self.versions = build(self.wheels)
        self.path = [str(ROOT)]

    def args(self) -> list[str]:
        return [*pip_args(self.wheels), "--cache-dir", str(self.cache)]

    def env(self, **extra: str) -> dict:
        return {**os.environ, "PYTHONPATH": os.pathsep.join(self.path), **extra}

    def cli(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True,
                              env=self.env(**env), timeout=timeout, cwd=ROOT)

    def popen(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "conformance.cli", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(**env), cwd=ROOT)
