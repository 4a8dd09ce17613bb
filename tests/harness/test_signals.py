"""Signals (issue 9): a signal stops a run at once and keeps what finished; a killed CLI takes its
workers and their helpers along; an interrupted run resumes to the records of an uninterrupted one;
time the CLI spends stopped is not a case's.
"""
from __future__ import annotations

import json
import signal
import time

import pytest

from tests.harness.processes import HOSTILE, Run, cli, results, usage_error, wait_for_results


# -- signals --------------------------------------------------------------------------------
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_stops_a_hung_run_at_once_and_keeps_what_finished(tmp_path, sig, code):
    out = tmp_path / "out"
    run = Run(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "SpawnsThenHangs", "--out", str(out),
              "--jobs", "1", "--timeout", "300")
    wait_for_results(out / "results.partial.jsonl", 4)
    time.sleep(1.0)  # the bfloat16 case hangs by now, with a helper started in a new session
    sent = time.monotonic()
    run.proc.send_signal(sig)
    assert run.wait(60) == code, run.stderr
    assert time.monotonic() - sent < 10  # seconds, not the 300 s case timeout
    kept = results(out)
    assert len({r["case"] for r in kept}) >= 4 and all(r["status"] == "pass" for r in kept)
    assert "INTERRUPTED after" in (out / "report.md").read_text()
    assert "INTERRUPTED after" in run.stdout
    assert not (out / "results.partial.jsonl").exists()
    assert not list((out / "logs").glob(".cases-*"))  # the runner's temporary folders
    run.assert_clean()


def test_workers_and_their_helpers_die_with_a_killed_cli(tmp_path):
    out = tmp_path / "out"
    run = Run(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "SpawnsThenHangs", "--out", str(out),
              "--jobs", "1", "--timeout", "300")
    wait_for_results(out / "results.partial.jsonl", 4)
    time.sleep(1.0)
    run.proc.kill()
    run.wait(30)
    assert run.survivors() == []
    assert len({r["case"] for r in results(out, "results.partial.jsonl")}) >= 4  # kept for --resume


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupt_then_resume_gives_the_records_of_one_uninterrupted_run(tmp_path, sig):
    def key(r):
        return (r["adapter"], r["case"], r["check"], r["status"], json.dumps(r["metrics"], sort_keys=True))

    whole = cli(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "Slow", "--out", str(tmp_path / "whole"))
    assert whole.proc.returncode == 0
    out = tmp_path / "out"
    first = Run(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "Slow", "--out", str(out), "--jobs", "1")
    wait_for_results(out / "results.partial.jsonl", 8)
    first.proc.send_signal(sig)
    first.wait(60)
    assert first.survivors() == []
    again = cli(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "Slow", "--out", str(out))
    usage_error(again, "already holds a run")  # without --resume or --overwrite nothing is touched
    resumed = cli(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "Slow", "--out", str(out), "--resume")
    assert resumed.proc.returncode == 0, resumed.stderr
    assert "resuming:" in resumed.stderr and ", 0 to go" not in resumed.stderr
    assert sorted(map(key, results(out))) == sorted(map(key, results(tmp_path / "whole")))
    assert "PASS" in (out / "report.md").read_text()
    resumed.assert_clean()


def test_a_resume_stopped_before_its_first_result_keeps_what_it_carried_over(tmp_path):
    out = tmp_path / "out"
    smoke = ["run", "--suite", "smoke", "--adapter", HOSTILE + "SpawnsThenHangs", "--out", str(out), "--jobs", "1"]
    assert cli(tmp_path, *smoke, "--timeout", "2").proc.returncode == 1  # a finished (older) run
    killed = Run(tmp_path, *smoke, "--overwrite", "--timeout", "300")
    wait_for_results(out / "results.partial.jsonl", 4)
    killed.proc.kill()
    killed.wait(30)
    carried = {r["case"] for r in results(out, "results.partial.jsonl")}
    resumed = Run(tmp_path, *smoke, "--resume", "--timeout", "300")
    time.sleep(4)  # it hangs on the first case it runs
    resumed.proc.send_signal(signal.SIGINT)
    assert resumed.wait(60) == 130
    assert {r["case"] for r in results(out)} == carried  # the killed run's records, not the older run's
    assert "INTERRUPTED after" in (out / "report.md").read_text()
    resumed.assert_clean()


def test_time_the_cli_spends_stopped_is_not_counted_against_a_case(tmp_path):
    out = tmp_path / "out"
    run = Run(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "Slow", "--out", str(out), "--jobs", "1",
              "--timeout", "3")
    wait_for_results(out / "results.partial.jsonl", 3)
    run.proc.send_signal(signal.SIGSTOP)
    time.sleep(5)
    run.proc.send_signal(signal.SIGCONT)
    assert run.wait(120) == 0, run.stdout + run.stderr
    assert all(r["status"] == "pass" for r in results(out))
    run.assert_clean()
