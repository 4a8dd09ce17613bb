import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The installed `conformance` command, as a user runs it (tests/ importable for planted adapters)."""
    # Not this repository's own CI job summary: a run appends to $GITHUB_STEP_SUMMARY (tests/harness/test_summary.py).
    env = {**{k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT,
    )


def run_cases(out: Path, cases, *args: str, expect: tuple[int, ...] = (0, 1)) -> dict:
    """`conformance run ARGS --case C ...` into `out`; its result records by (adapter, case, check)."""
    import json

    p = run_cli("run", "--out", str(out), *args, *(a for case in cases for a in ("--case", case)))
    assert p.returncode in expect, p.stdout + p.stderr
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["adapter"], r["case"], r["check"]): r for r in lines if r.get("record") == "result"}


@pytest.fixture
def cli():
    return run_cli
