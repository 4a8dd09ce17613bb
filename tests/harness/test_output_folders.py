"""Output folders (issue 9): one run at a time per folder, previous results kept until a run has its
own, nothing written beside results a report does not describe, folders and paths of odd shapes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness.processes import HOSTILE, Run, cli, usage_error, wait_for_results


# -- output folders -----------------------------------------------------------------------------
def test_a_second_run_into_a_busy_folder_names_the_holder(tmp_path):
    out = tmp_path / "out"
    first = Run(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "HangsAlways", "--out", str(out),
                "--timeout", "300")
    wait_for_results(out / "results.partial.jsonl", 0)
    time.sleep(1.0)
    second = cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(out), "--overwrite")
    usage_error(second, f"is in use by another run (pid {first.proc.pid}")
    first.proc.send_signal(signal.SIGINT)
    assert first.wait(60) == 130
    first.assert_clean()


def test_overwrite_keeps_the_previous_results_until_it_has_its_own(tmp_path):
    out = tmp_path / "out"
    assert cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(out)).proc.returncode == 0
    before = (out / "results.jsonl").read_bytes()
    (out / "logs" / "old.log").write_text("from an earlier run")
    run = Run(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "HangsAlways", "--out", str(out),
              "--overwrite", "--timeout", "300")
    wait_for_results(out / "results.partial.jsonl", 0)
    time.sleep(1.0)
    assert not (out / "report.md").exists()  # stale reports go at the start: none describes other results
    assert not (out / "logs" / "old.log").exists()  # logs are the new run's only
    run.proc.kill()
    run.wait(30)
    assert (out / "results.jsonl").read_bytes() == before
    again = cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(out))
    usage_error(again, "an unfinished run: --resume continues it")
    assert run.survivors() == []


def test_an_overwrite_stopped_before_any_result_keeps_the_previous_run(tmp_path):
    out = tmp_path / "out"
    assert cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(out)).proc.returncode == 0
    before = (out / "results.jsonl").read_bytes()
    run = Run(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "HangsAlways", "--out", str(out),
              "--overwrite", "--timeout", "300")
    wait_for_results(out / "results.partial.jsonl", 0)
    time.sleep(1.0)
    run.proc.send_signal(signal.SIGINT)
    assert run.wait(60) == 130
    assert "the previous run in" in run.stderr and "is kept" in run.stderr
    assert (out / "results.jsonl").read_bytes() == before
    count = sum(1 for line in before.splitlines() if b'"record": "result"' in line)
    assert f"{count} of {count} results pass" in (out / "report.md").read_text()  # its reports again, not the stopped run's
    run.assert_clean()


@pytest.fixture
def finished(tmp_path):
    """A folder holding a finished smoke run of the numpy reference."""
    out = tmp_path / "finished"
    assert cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(out)).proc.returncode == 0
    return out


def _unchanged(folder: Path):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("argv, says", [
    (["fuzz", "--adapters", "numpy-reference", "--budget", "2", "--out", "{out}"], "already holds a run"),
    (["merge", "{other}", "--out", "{out}"], "already holds a run"),
    (["report", "{other}", "--out", "{out}"], "holds other results (results.jsonl)"),
    (["report", "{out}/results.partial.jsonl", "--salvage"], "holds other results (results.jsonl)"),
])
def test_commands_never_put_files_beside_results_they_do_not_describe(tmp_path, finished, argv, says):
    other = tmp_path / "other"
    assert cli(tmp_path, "run", "--suite", "smoke", "--case", "f32/*", "--adapters", "numpy-reference",
               "--out", str(other)).proc.returncode == 0
    (finished / "results.partial.jsonl").write_text((other / "results.jsonl").read_text())
    before = _unchanged(finished)
    usage_error(cli(tmp_path, *[a.format(out=finished, other=other) for a in argv]), says)
    assert _unchanged(finished) == before


@pytest.mark.parametrize("argv", [["report", "{base}"], ["diff", "{base}", "{base}"]])
def test_report_and_diff_respect_a_running_runs_lock(tmp_path, finished, argv):
    out = tmp_path / "out"
    first = Run(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "HangsAlways", "--out", str(out),
                "--timeout", "300")
    wait_for_results(out / "results.partial.jsonl", 0)
    usage_error(cli(tmp_path, *[a.format(base=finished) for a in argv], "--out", str(out)), "is in use by another run")
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait(60) == 143


def test_odd_bytes_in_a_path_are_written_as_given(tmp_path):
    out = os.fsdecode(bytes(tmp_path) + b"/out\xff\xfe")
    run = cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", out)
    assert run.proc.returncode == 0, run.stderr
    assert (Path(out) / "report.md").exists()
    run.assert_clean()


def test_a_folder_holding_other_files_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    usage_error(cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(out)),
                "is not empty (notes.txt)")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("make, says", [
    (lambda out: (out / "logs").write_text("a file"), "logs exists and is not a folder"),
    (lambda out: (out / "results.jsonl").mkdir(), "results.jsonl exists and is not a file"),
    (lambda out: (out / "report.html").mkdir(), "report.html exists and is not a file"),
])
def test_an_output_folder_of_the_wrong_shape_is_an_input_error(tmp_path, make, says):
    out = tmp_path / "out"
    out.mkdir()
    make(out)
    usage_error(cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(out),
                    "--overwrite"), says)


def test_a_full_disk_is_one_line_and_keeps_what_was_written(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI and the project's machines are root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(disk)], check=True)
    try:
        run = cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(disk / "out"))
        usage_error(run, "No space left on device")
        kept = (disk / "out" / "results.partial.jsonl").read_text().splitlines()
        assert len(kept) > 10 and all(json.loads(line) for line in kept[:-1])
    finally:
        subprocess.run(["umount", str(disk)], check=True)
