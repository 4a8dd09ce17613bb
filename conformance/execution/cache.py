"""`--cache-dir`: one folder of persistent compilation caches for a run's workers (issue 13).

The frameworks' compilation caches (which ones: adapters/_environment.py, CACHE_ENV, e.g. JAX's
and torch Inductor's) and torch-onnx's exported models live there, so a second run of a suite
skips the compilations the first one paid for.  A cache hit returns the executable the cold compilation produced, so results do
not change (tests/test_cache.py compares the records of a cold and a warm run).  The default is
a user cache folder that `make` targets and runs share; `--no-cache` turns it off.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from conformance.adapters._environment import CACHE_ENV
from conformance.errors import UsageError

ENV = "CONFORMANCE_CACHE_DIR"  # adapters that keep their own artefacts there (torch-onnx's exports)


def default_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rmsnorm-conformance"


def prepare(folder: Path) -> Path:
    """The folder, created and checked writable; UsageError (one line) otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"--cache-dir {folder}: cannot write there ({exc.strerror or exc}); "
                         "give another folder or --no-cache") from None
    return folder.resolve()


def worker_env(folder: Path | None) -> dict[str, str]:
    """What a worker's environment gains for the cache (nothing without one)."""
    if folder is None:
        return {}
    return {ENV: str(folder), **{name: value.replace("{folder}", str(folder)) for name, value in CACHE_ENV.items()}}
