"""Hostile adapters and hostile users (issue 9): the CLI as a process of its own, and what it leaves.

Every CLI here runs with a unique token in its environment and its own TMPDIR; all
processes of the run inherit both, so /proc tells which of them are still alive.  The tests
(tests/harness/test_signals.py, test_output_folders.py, test_hostile_adapters.py,
test_hostile_inputs.py, test_ray.py) each assert the exit code, the one-line message (no
traceback), the records kept, and that no process or temporary folder outlives the run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import ROOT

PLANTED = "tests.planted.adapters:"
HOSTILE = "tests.planted.hostile:"
TOKEN_VAR = "CONFORMANCE_TEST_TOKEN"


class Run:
    """One CLI process with its token and TMPDIR."""

    def __init__(self, tmp_path: Path, *args: str):
        self.token = uuid.uuid4().hex
        self.tmpdir = tmp_path / f"tmpdir-{self.token[:8]}"
        self.tmpdir.mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT), TOKEN_VAR: self.token, "TMPDIR": str(self.tmpdir)}
        self.start = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "conformance.cli", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     errors="replace")
        self.stdout = self.stderr = ""

    def wait(self, timeout: float = 300) -> int:
        self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        self.elapsed = time.monotonic() - self.start
        return self.proc.returncode

    def survivors(self, grace: float = 5.0) -> list[str]:
        """Command lines of live processes carrying this run's token, after up to `grace` seconds."""
        deadline = time.monotonic() + grace
        while True:
            found = []
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or int(entry) == os.getpid():
                    continue
                try:
                    if f"{TOKEN_VAR}={self.token}".encode() in Path(f"/proc/{entry}/environ").read_bytes():
                        state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
                        if state != "Z":
                            found.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode())
                except OSError:
                    continue
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def assert_clean(self) -> None:
        """No traceback, no process and no temporary file left behind."""
        assert "Traceback" not in self.stderr, self.stderr
        assert self.survivors() == []
        assert list(self.tmpdir.iterdir()) == []


def cli(tmp_path: Path, *args: str, timeout: float = 300) -> Run:
    run = Run(tmp_path, *args)
    run.wait(timeout)
    return run


def usage_error(run: Run, says: str) -> None:
    """Exit 2 and one error line on stderr, its last, saying `says` (a run that started has
    printed its "running ..." line before)."""
    assert run.proc.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert [x for x in lines if x.startswith("conformance: error: ")] == lines[-1:], run.stderr
    assert len(lines) == 1 or lines[0].startswith("running "), run.stderr
    assert says in lines[-1], lines[-1]
    run.assert_clean()


def results(out: Path, name: str = "results.jsonl") -> list[dict]:
    return [r for r in map(json.loads, (out / name).read_text().splitlines()) if r.get("record") == "result"]


def wait_for_results(path: Path, cases: int, timeout: float = 60) -> None:
    """Until `path` holds records of at least `cases` distinct cases."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]
            if len({r["case"] for r in lines if r.get("record") == "result"}) >= cases:
                return
        time.sleep(0.05)
    raise AssertionError(f"{path} never held {cases} cases")
