import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The installed `conformance` command, as a user runs it (tests/ importable for planted adapters)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT,
    )


@pytest.fixture
def cli():
    return run_cli
