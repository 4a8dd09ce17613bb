"""Hostile adapters and hostile users: every attack of issue 9, each asserting the exit code,
the one-line message (no traceback), the records kept, and that no process or temporary
folder outlives the run.

Every CLI here runs with a unique token in its environment and its own TMPDIR; all
processes of the run inherit both, so /proc tells which of them are still alive.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

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


# -- fuzz -------------------------------------------------------------------------------------
@pytest.mark.parametrize("adapter, extra, says", [
    (PLANTED + "CrashOnHalf", [], "worker crashed on this case (exit code 7)"),
    (HOSTILE + "HangsAlways", ["--timeout", "2"], "case timed out after 2s"),
    (PLANTED + "FailsToLoad", [], "could not be fuzzed: adapter failed to load"),
])
def test_fuzz_reports_crashes_hangs_and_unloadable_adapters_as_failures(tmp_path, adapter, extra, says):
    run = cli(tmp_path, "fuzz", "--adapter", adapter, "--seed", "0", "--budget", "50", "--out", str(tmp_path / "f"), *extra)
    assert run.proc.returncode == 1, (run.stdout, run.stderr)
    assert says in run.stdout
    assert "no failure" not in run.stdout
    run.assert_clean()


def test_fuzz_time_bounds_the_wall_time_through_a_hang(tmp_path):
    run = cli(tmp_path, "fuzz", "--adapter", HOSTILE + "HangsAlways", "--time", "2", "--out", str(tmp_path / "f"))
    assert run.proc.returncode == 1, run.stderr  # a case that never finished is no verdict, never "no failure"
    assert "stopped without a verdict: --time ran out while case f16/" in run.stdout
    assert run.elapsed < 30  # 2 s + 2 s for the example in flight + imports, not the 120 s case timeout
    run.assert_clean()


def test_fuzz_with_no_time_for_one_example_has_no_verdict(tmp_path):
    # 1 ns: with 1 µs the next clock reading could still fall before the deadline (a race the test lost
    # under load), and an example the worker had already begun was then counted.
    run = cli(tmp_path, "fuzz", "--adapter", HOSTILE + "SlowExact", "--time", "0.000000001", "--out", str(tmp_path / "f"))
    assert run.proc.returncode == 1, run.stdout
    assert "before the first example" in run.stdout and "no failure" not in run.stdout
    run.assert_clean()


def test_fuzz_time_stops_a_slow_adapter_between_examples(tmp_path):
    run = cli(tmp_path, "fuzz", "--adapter", HOSTILE + "SlowExact", "--time", "2", "--out", str(tmp_path / "f"))
    assert run.proc.returncode == 0, (run.stdout, run.stderr)
    assert "no failure (time spent)" in run.stdout
    assert run.elapsed < 20  # 2 s, the example in flight, imports
    run.assert_clean()


# -- processes an adapter starts ---------------------------------------------------------------
def test_a_forked_child_holding_the_protocol_pipe_costs_nothing(tmp_path):
    out = tmp_path / "out"
    run = cli(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + "ForksHoldingPipe", "--out", str(out), "--jobs", "1")
    assert run.proc.returncode == 0, run.stderr
    assert all(r["status"] == "pass" for r in results(out)) and (out / "report.html").exists()
    run.assert_clean()


@pytest.mark.parametrize("adapter, code", [("SpawnsHelpers", 0), ("SpawnsThenHangs", 1)])
def test_helpers_an_adapter_starts_do_not_outlive_the_run(tmp_path, adapter, code):
    out = tmp_path / "out"
    run = cli(tmp_path, "run", "--suite", "smoke", "--case", "*/4x32/*", "--adapter", HOSTILE + adapter, "--out", str(out),
              "--timeout", "3")
    assert run.proc.returncode == code, run.stderr
    errors = [r for r in results(out) if r["status"] == "error"]
    assert all(r["dtype"] in ("bfloat16", "default_bfloat16") and "timed out" in r["message"] for r in errors)
    assert bool(errors) == bool(code)
    run.assert_clean()


# -- adapter metadata and user modules ----------------------------------------------------------
@pytest.mark.parametrize("ref, says", [
    (HOSTILE + "SlashName", "has the name '../../escaped'"),
    (HOSTILE + "IntName", "has the name 42"),
    (HOSTILE + "EnvNotDict", "`env` is a list"),
    (HOSTILE + "EnvIntValue", "environment variable A = 1 is not a string"),
    (HOSTILE + "EnvEqualsInName", "environment variable name 'A=B' is not valid"),
    (HOSTILE + "EnvNulInName", "environment variable name 'A\\x00B' is not valid"),
    (HOSTILE + "NamedLikeBuiltin", "is named 'torch', like a built-in adapter"),
    ("tests.planted.imports.exits:X", "ended the process (exit code 0)"),
    ("tests.planted.imports.segfaults:X", "ended the process (killed by SIGSEGV)"),
    ("tests.planted.imports.raises:X", "cannot import module 'tests.planted.imports.raises'"),
])
def test_bad_adapter_metadata_and_modules_are_input_errors_before_anything_is_written(tmp_path, ref, says):
    out = tmp_path / "out"
    usage_error(cli(tmp_path, "run", "--suite", "smoke", "--adapter", ref, "--out", str(out)), says)
    assert not out.exists()


def test_two_adapters_with_one_name_are_refused(tmp_path):
    run = cli(tmp_path, "run", "--suite", "smoke", "--adapter", PLANTED + "Correct", "--adapter", HOSTILE + "Twin",
              "--out", str(tmp_path / "out"))
    usage_error(run, "are both named 'planted-correct'")


# -- harness faults ------------------------------------------------------------------------------
def _f16(case_id: str) -> bool:
    """float16 input: the f16 cases and the default-precision df16 ones."""
    return case_id.split("/")[0] in ("f16", "df16")


def _half(case_id: str) -> bool:
    return case_id.split("/")[0] in ("f16", "bf16", "df16", "dbf16")


def _statuses(out: Path) -> dict:
    return {(r["case"], r["check"]): (r["status"], r["message"]) for r in results(out)}


@pytest.mark.parametrize("adapter, broken, says", [
    ("ObjectOutput", lambda c, k: k == "forward" and _half(c), "the adapter returned"),
    ("TensorRequiringGrad", lambda c, k: k in ("forward", "invalid_config") and c.split("/")[0] in ("f32", "invalid"),
     "numpy cannot convert"),
    ("SupportsRaises", lambda c, k: c.startswith("f16/"), "supports raised RuntimeError: supports exploded"),
    ("ConfigNone", lambda c, k: k in ("config_roundtrip", "save_load") or "/epsdefault/" in c, "config() returned NoneType"),
    ("ConfigArrays", lambda c, k: k in ("config_roundtrip", "save_load") or "/epsdefault/" in c, "not JSON-safe"),
    ("ArrayRaisesSystemExit", lambda c, k: k == "forward" and _f16(c), "numpy cannot convert (SystemExit"),
    ("ConfigRaisesKeyboardInterrupt", lambda c, k: k in ("config_roundtrip", "save_load") or "/epsdefault/" in c,
     "config raised KeyboardInterrupt"),
    ("ExitInCall", lambda c, k: k == "forward" and _f16(c), "call raised SystemExit"),
    ("ConfigDictRaises", lambda c, k: k in ("config_roundtrip", "save_load") or "/epsdefault/" in c,
     "not JSON-safe: RuntimeError"),
])
def test_harness_faults_cost_only_their_own_check(tmp_path, adapter, broken, says):
    out = tmp_path / "out"
    run = cli(tmp_path, "run", "--suite", "smoke", "--adapter", HOSTILE + adapter, "--out", str(out))
    assert run.proc.returncode == 1, run.stderr
    statuses = _statuses(out)
    bad = {k: v for k, v in statuses.items() if v[0] in ("fail", "error")}
    assert bad and all(broken(*k) for k in bad), sorted(k for k in bad if not broken(*k))[:5]
    assert all(says in msg for _, msg in bad.values()), [m for _, m in bad.values() if says not in m][:3]
    assert all(v[0] in ("pass", "unsupported") for k, v in statuses.items() if not broken(*k) and not k[0].startswith("invalid/"))
    assert not any("worker crashed" in m for _, m in statuses.values())
    run.assert_clean()


# -- reports validate their input -------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("good")
    run = cli(tmp, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(tmp / "out"))
    assert run.proc.returncode == 0
    return (tmp / "out" / "results.jsonl").read_text().splitlines(keepends=True)


def _edit(lines: list[str], k: int, **changes) -> list[str]:
    out = list(lines)
    out[k] = json.dumps({**json.loads(out[k]), **changes}) + "\n"
    return out


@pytest.mark.parametrize("mangle, says", [
    (lambda ls: _edit(ls, 5, status="passed"), "line 6 is not a valid record: unknown status 'passed'"),
    (lambda ls: _edit(ls, 5, status=3), "field 'status' is int, expected str"),
    (lambda ls: _edit(ls, 5, metrics="big"), "field 'metrics' is str, expected dict"),
    (lambda ls: ls + ls[2:], "repeats the result of line"),
    (lambda ls: ls[:-1] + [ls[-1][:40]], "is truncated (a run killed mid-write?)"),
    (lambda ls: ls[:3] + ["\xff not utf-8\n"] + ls[3:], "line 4 is not UTF-8"),
    (lambda ls: [], "holds no results"),
    (lambda ls: _edit(ls, 5, check="nope"), "unknown check 'nope'"),
    (lambda ls: _edit(ls, 5, case="../../etc"), "field 'case' is not a case id"),
    (lambda ls: _edit(ls, 0, expected=10**30), "`expected` is not `cases` times the number of `adapters`"),
    (lambda ls: _edit(ls, 5, metrics={"max_ulp": "0.1"}), "in 'metrics': field 'max_ulp' is str"),
    (lambda ls: _edit(ls, 5, metrics={"out_dtype": 5}), "in 'metrics': field 'out_dtype' is int"),
])
def test_report_refuses_input_it_does_not_understand_and_writes_nothing(tmp_path, good_run, mangle, says):
    path = tmp_path / "results.jsonl"
    data = "".join(mangle(good_run))
    path.write_bytes(data.encode("utf-8").replace("\xff".encode(), b"\xff"))
    usage_error(cli(tmp_path, "report", str(path)), says)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["results.jsonl"]


@pytest.mark.parametrize("command", [["report", "{r}"], ["merge", "{r}", "--out", "{tmp}/m"], ["diff", "{r}", "{r}"]])
def test_a_fifo_is_not_read_as_results(tmp_path, command):
    os.mkfifo(tmp_path / "results.jsonl")
    run = cli(tmp_path, *[a.format(r=tmp_path / "results.jsonl", tmp=tmp_path) for a in command], timeout=60)
    usage_error(run, "is not a regular file")


def test_salvage_keeps_the_complete_lines_of_a_truncated_file(tmp_path, good_run):
    path = tmp_path / "results.jsonl"
    path.write_text("".join(good_run[:-1]) + good_run[-1][:40])
    run = cli(tmp_path, "report", str(path), "--salvage")
    assert run.proc.returncode == 1  # an incomplete run is never a pass
    assert "INTERRUPTED after" in run.stdout


def test_merge_refuses_conflicts_and_its_own_input_and_keeps_versions_per_part(tmp_path, good_run):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(good_run))
    b.write_text("".join(_edit(good_run, 5, status="fail", message="planted")))
    usage_error(cli(tmp_path, "merge", str(a), str(b), "--out", str(tmp_path / "m")), "disagree on")
    assert cli(tmp_path, "merge", str(a), str(b), "--out", str(tmp_path / "m"), "--prefer", "first").proc.returncode == 0
    usage_error(cli(tmp_path, "merge", str(a), str(tmp_path / "m"), "--out", str(tmp_path / "m")), "would replace the input")
    meta = json.loads(good_run[1])
    b.write_text("".join(_edit(good_run, 1, versions={**meta["versions"], "numpy": "0.0.1"})))
    run = cli(tmp_path, "merge", str(a), str(b), "--out", str(tmp_path / "v"))
    assert run.proc.returncode == 0, run.stderr
    assert f"numpy DIFFERS: {meta['versions']['numpy']} ({a}); 0.0.1 ({b})" in (tmp_path / "v" / "report.md").read_text()
    usage_error(cli(tmp_path, "merge", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "e")), "cannot read")


def test_diff_with_nothing_to_compare_is_an_input_error(tmp_path, good_run):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "cur.jsonl").write_text("".join(good_run))
    usage_error(cli(tmp_path, "diff", str(tmp_path / "empty.jsonl"), str(tmp_path / "cur.jsonl")), "hold no results")


# -- bad input: one line, exit 2 ------------------------------------------------------------------
def _file(name: str, content: bytes):
    def make(tmp: Path) -> str:
        (tmp / name).write_bytes(content)
        return str(tmp / name)
    return make


NUMPY = ["--adapters", "numpy-reference"]


@pytest.mark.parametrize("argv, says", [
    (["run", "--suite", _file("s.toml", b"cases = ['\xff']")], "is not UTF-8 text"),
    (["run", "--suite", _file("s.toml", b"a = " + b"[" * 5000 + b"]" * 5000)], "cannot be read: RecursionError"),
    (["run", "--suite", _file("s.toml", b"cases = []\nx = " + b"9" * 5000)], "Exceeds the limit"),
    (["run", "--suite", "/dev/zero"], "is not a regular file"),
    (["run", "--xfail", _file("x.toml", b"xfail = [1, 2]")], "each entry is a [[xfail]] table"),
    (["run", "--xfail", _file("x.toml", b"\xfe\xff")], "is not UTF-8 text"),
    (["run", "--timeout", "-1"], "'-1' must be a finite number > 0"),
    (["run", "--timeout", "inf"], "'inf' must be a finite number > 0"),
    (["run", "--timeout", "nan"], "'nan' must be a finite number > 0"),
    (["run", "--timeout", "0"], "'0' must be a finite number > 0"),
    (["fuzz", "--budget", "0"], "'0' must be an integer from 1"),
    (["fuzz", "--budget", "-5"], "'-5' must be an integer from 1"),
    (["fuzz", "--time", "0"], "'0' must be a finite number > 0"),
    (["run", "--adapters", ","], "names no adapter"),
    (["run", "--adapters", ""], "names no adapter"),
    (["run", "--case", "f32/-4x32/ax-1/eps1e-06/normal/rand/s0"], "must be non-negative integers"),
    (["run", "--case", "f32/4x32/ax-1/eps1e-06/normal/rand/s-1"], "seed -1 must be an integer from 0"),
    (["run", "--case", "f32/" + "x".join(["1"] * 70) + "/ax-1/eps1e-06/normal/rand/s0"], "beyond the suite's limits"),
    (["run", "--case", "f32/４x３２/ax-1/eps1e-06/normal/rand/s0"], "write 'f32/4x32/ax-1/eps1e-06/normal/rand/s0'"),
    (["run", "--case", "f32/4x32/ax-1/eps1e-6/normal/rand/s0"], "write 'f32/4x32/ax-1/eps1e-06/normal/rand/s0'"),
    (["run", "--case", "f32/4x32/ax-1/eps1e-06/normal/rand/s1_000"], "write 'f32/4x32/ax-1/eps1e-06/normal/rand/s1000'"),
    (["run", "--suite", _file("g.toml", b"[[grid]]\nlayouts = [{shape = [8.9], axis = [-1]}]")], "must be a list of integers"),
    (["run", "--suite", _file("g.toml", b"[[grid]]\nlayouts = [{shape = [true], axis = [-1]}]")], "must be a list of integers"),
    (["run", "--suite", _file("g.toml", b"[[grid]]\nseeds = [\"3\"]")], "`seeds` holds '3'"),
    (["run", "--suite", _file("g.toml", b"[[grid]]\nepsilons = [true]")], "`epsilons` holds True"),
    (["run", "--case", "f32/0x100000000000000/ax1/eps1e-06/normal/rand/s0"], "beyond the suite's limits"),
    (["run", "--shard", "5/99999999999999"], "selects none of the suite's cases"),
    (["run", "--shard", "\u0661/\u0662"], "must be K/N"),
    (["run", "--xfail", _file("x.toml", b'[[xfail]]\ncase = "*"\ncheck = "nosuch"\nreason = "r"')], "matches no check"),
    (["run", "--xfail", _file("x.toml", b'[[xfail]]\ncase = "*"\nreason = " "')], "`reason` is empty"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, says):
    argv = [a(tmp_path) if callable(a) else a for a in argv]
    extra = NUMPY if argv[0] in ("run", "fuzz") and "--adapters" not in argv else []
    out = tmp_path / "out"
    usage_error(cli(tmp_path, *argv, *extra, "--out", str(out)), says)
    assert not out.exists()
