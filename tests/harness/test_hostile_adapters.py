"""Hostile adapters (issue 9): crashes, hangs and slow adapters under the fuzzer, processes an adapter
starts, bad metadata and modules, and faults of the adapter that must cost only their own check.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.processes import HOSTILE, PLANTED, cli, results, usage_error


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


# The checks that score `call` on a built layer: the plain forward, and the offset form's forward
# (numpy-reference's build_offset, which these adapters inherit, builds a layer `call` runs).
CALLS = ("forward", "offset_forward")


def _statuses(out: Path) -> dict:
    return {(r["case"], r["check"]): (r["status"], r["message"]) for r in results(out)}


@pytest.mark.parametrize("adapter, broken, says", [
    ("ObjectOutput", lambda c, k: k in CALLS and _half(c), "the adapter returned"),
    ("TensorRequiringGrad", lambda c, k: k in (*CALLS, "invalid_config") and c.split("/")[0] in ("f32", "invalid"),
     "numpy cannot convert"),
    ("SupportsRaises", lambda c, k: c.startswith("f16/"), "supports raised RuntimeError: supports exploded"),
    ("ConfigNone", lambda c, k: k in ("config_roundtrip", "save_load") or "/epsdefault/" in c, "config() returned NoneType"),
    ("ConfigArrays", lambda c, k: k in ("config_roundtrip", "save_load") or "/epsdefault/" in c, "not JSON-safe"),
    ("ArrayRaisesSystemExit", lambda c, k: k in CALLS and _f16(c), "numpy cannot convert (SystemExit"),
    ("ConfigRaisesKeyboardInterrupt", lambda c, k: k in ("config_roundtrip", "save_load") or "/epsdefault/" in c,
     "config raised KeyboardInterrupt"),
    ("ExitInCall", lambda c, k: k in CALLS and _f16(c), "call raised SystemExit"),
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
