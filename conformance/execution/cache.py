"""`--cache-dir`: one folder of persistent compilation caches for a run's workers (issue 13).

The frameworks' compilation caches (which ones: adapters/_environment.py, CACHE_ENV, e.g. JAX's
and torch Inductor's) and torch-onnx's exported models live there, so a second run of a suite
skips the compilations the first one paid for.  The project's own entries (torch-onnx's exports)
are keyed by everything that decides them and verified on every read (entries.py); a case that
meets an artifact of a framework's cache that fails to load is run once more without that cache
(`rerun_without_bad_artifacts`).  A cache hit returns the executable the cold compilation
produced, so results do not change (tests/harness/test_cache.py compares the records of a cold
and a warm run; tests/frameworks/test_cache_poisoning.py those of poisoned caches and --no-cache).
The default is a user cache folder that `make` targets and runs share; `--no-cache` turns it off.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable

from conformance.adapters._environment import CACHE_ENV, CACHE_LOAD_ERRORS
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


def _failing_cache(records: list[dict]) -> tuple[str, str, object] | None:
    """(variable, message, off) of the first cache of this worker's environment that an `error`
    record says failed to load an artifact (adapters/_environment.py, CACHE_LOAD_ERRORS)."""
    if not os.environ.get(ENV):  # --no-cache: no cache to blame
        return None
    for variable, (patterns, off) in CACHE_LOAD_ERRORS.items():
        folder = os.environ.get(variable)
        if not folder:
            continue
        found = [re.compile(p.replace("{folder}", re.escape(folder.rstrip("/")))) for p in patterns]
        for r in records:
            message = str(r.get("message") or "")
            if r.get("status") == "error" and any(f.search(message) for f in found):
                return variable, message, off
    return None


def rerun_without_bad_artifacts(evaluate: Callable[[], list[dict]], what: str) -> list[dict]:
    """The records of `evaluate()`; where one is an error that a framework's cache declares as one
    of its artifacts failing to load, those of `evaluate()` run once more with that cache off (one
    warning line on stderr, the task's log), since a run with --no-cache would record those."""
    records = evaluate()
    failing = _failing_cache(records)
    if failing is None:
        return records
    variable, message, off = failing
    print(f"warning: {what}: an artifact of the cache in ${variable} failed to load ({message[:160]}); "
          f"the case is run again without that cache (deleting {os.environ.get(variable)} ends these reruns)",
          file=sys.stderr, flush=True)
    rerun = None
    try:
        with off():
            rerun = evaluate()
    except Exception as exc:  # noqa: BLE001: turning the cache off (or on again) failed
        print(f"warning: {what}: running it without ${variable} failed ({type(exc).__name__}: {exc})",
              file=sys.stderr, flush=True)
    return records if rerun is None else rerun
