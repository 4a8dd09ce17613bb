"""Shared workers that notice poisoned state: a user's adapter that changes the process state its
worker's numerics depend on (the rounding mode, numpy's error state, a thread left running) has the
change marked on its records and in the reports, and the next adapter gets a new worker, so a
built-in's records are those of a run without it; without `--share-with-builtins` a built-in never
shares a worker with a user's adapter at all.  On numpy adapters (the real frameworks' state:
tests/frameworks/test_worker_state.py)."""
import json
import re

import pytest

from conformance.reports.results import change_text

STATE = "tests.planted.state:"
CASES = ("f32/4x32/ax-1/eps1e-06/normal/rand/s0", "f32/4x32/ax-1/eps1e-05/tiny/rand/s0",
         "f16/4x32/ax-1/eps1e-06/normal/rand/s0")


def run(cli, out, *args, first: str | None = None, cases=CASES, suite: str = "smoke"):
    """A run on `cases` with one job, the adapter `first` started first (a timings.json that says it
    is the slowest); its worker count, result records (less their seconds), adapter records, stderr."""
    cache = out.parent / f"{out.name}-cache"
    cache.mkdir()
    if first:
        (cache / "timings.json").write_text(json.dumps({first: 10.0, "numpy-reference": 0.001, "torch": 0.001,
                                                         "flax-nnx": 0.001}))  # an adapter without one would go first
    p = cli("run", "--suite", suite, "--out", str(out), "--jobs", "1", "--cache-dir", str(cache), *args,
            *(a for c in cases for a in ("--case", c)))
    assert p.returncode in (0, 1), p.stderr
    starts = int(re.search(r"^(\d+) worker process\(es\) started", p.stderr, re.M)[1])
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    results = {(r["adapter"], r["case"], r["check"]): {k: v for k, v in r.items() if k != "seconds"}
               for r in rows if r["record"] == "result"}
    adapters = {r["adapter"]: r for r in rows if r["record"] == "adapter"}
    return starts, results, adapters, p.stderr


def of(results: dict, adapter: str) -> dict:
    return {k: v for k, v in results.items() if k[0] == adapter}


def without_machine(record: dict) -> dict:
    """An adapter record less what differs between any two runs (the machine, the cache folder)."""
    return {k: v for k, v in record.items() if k not in ("machine", "env")}


@pytest.mark.parametrize("planted, name, says", [
    ("RoundsUpward", "planted-rounds-upward", "rounding mode to nearest -> upward"),
    ("RaisesOnFloatErrors", "planted-numpy-raises", "numpy error state (over) warn -> raise"),
    ("LeavesDaemonThread", "planted-daemon-thread", "thread 'planted-killer' (daemon) left running"),
    ("LeavesThread", "planted-thread", "thread 'planted-killer' (not daemon) left running"),
])
def test_a_user_adapter_that_poisons_a_shared_worker_is_caught_and_the_builtin_keeps_its_records(
        cli, tmp_path, planted, name, says):
    _, alone, alone_adapters, _ = run(cli, tmp_path / "alone", "--adapters", "numpy-reference")
    starts, both, adapters, stderr = run(cli, tmp_path / "both", "--adapter", STATE + planted, "--adapters",
                                         "numpy-reference", "--share-with-builtins", first=name)
    # The built-in ran after the poisoner, in a new worker, as if alone.
    assert of(both, "numpy-reference") == alone
    assert without_machine(adapters["numpy-reference"]) == without_machine(alone_adapters["numpy-reference"])
    assert starts == 2  # the poisoner's worker, and the one restarted for the built-in
    # The change is the poisoner's, on the records of the case it happened in (its first), and nowhere else.
    marked = {k[1] for k, r in both.items() if r.get("state_changes")}
    assert len(marked) == 1 and {k[0] for k, r in both.items() if r.get("state_changes")} == {name}
    changes = next(r["state_changes"] for r in both.values() if r.get("state_changes"))
    assert says in [change_text(c) for c in changes]
    line = (f"{STATE}{planted} ({name}) changed: " + "; ".join(change_text(c) for c in changes)
            + f" (in case {marked.pop()}); the worker was restarted for the next task")
    assert f"\n- {line}\n" in (tmp_path / "both" / "report.md").read_text()
    assert [row["text"] for row in json.loads((tmp_path / "both" / "report.json").read_text())["state_changes"]] == [line]
    assert f"{name}[0]: changed the worker's process state: " in stderr and says in stderr


def test_a_change_in_load_is_marked_on_the_adapter_record(cli, tmp_path):
    starts, both, adapters, _ = run(cli, tmp_path / "o", "--adapter", STATE + "RaisesInLoad", "--adapters",
                                    "numpy-reference", "--share-with-builtins", first="planted-raises-in-load",
                                    cases=CASES[:1])
    changes = adapters["planted-raises-in-load"]["state_changes"]
    assert {"state": "numpy error state (under)", "before": "ignore", "after": "raise"} in changes
    assert "state_changes" not in adapters["numpy-reference"]
    assert not [r for r in both.values() if r.get("state_changes")] and starts == 2
    assert "changed: numpy error state (divide) warn -> raise" in (tmp_path / "o" / "report.md").read_text()
    assert "(in load()); the worker was restarted" in (tmp_path / "o" / "report.md").read_text()


def test_without_the_option_a_builtin_never_shares_a_worker_with_a_user_adapter(cli, tmp_path):
    adapters = ("--adapters", "numpy-reference", "--adapter", "tests.planted.adapters:Correct",
                "--adapter", "tests.planted.adapters:SloppyRsqrt")
    apart, apart_results, _, _ = run(cli, tmp_path / "apart", *adapters)
    shared, shared_results, _, _ = run(cli, tmp_path / "shared", *adapters, "--share-with-builtins")
    assert (apart, shared) == (2, 1)  # the two user adapters share one worker, the built-in has its own
    assert apart_results == shared_results
    assert not [r for r in shared_results.values() if r.get("state_changes")]  # nobody changed anything


def test_share_keys_keep_builtins_apart_unless_asked():
    from conformance.execution.adapter_refs import AdapterRef, resolve, share_key

    builtin, = resolve(["numpy-reference"])
    user = AdapterRef("tests.planted.adapters:Correct", "planted-correct", {}, None, "numpy")
    assert builtin.builtin and not user.builtin
    assert share_key(builtin) != share_key(user)
    assert share_key(builtin, with_builtins=True) == share_key(user, with_builtins=True)


def test_the_state_probes_read_the_floating_point_control_state():
    """In this process: the probes see a rounding mode set through libm, and a change reads as one."""
    import ctypes
    import ctypes.util

    from conformance.execution import state
    from tests.planted.state import FE_UPWARD

    if FE_UPWARD is None:
        pytest.skip("no rounding-mode constant for this machine")
    watch = state.Watch()
    assert watch.last["rounding mode"] == "to nearest" and watch.last["flush-to-zero"] == "off"
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.fesetround(FE_UPWARD)
    try:
        found = watch.check()
    finally:
        libm.fesetround(0)  # FE_TONEAREST on every machine the constant above knows
    assert found == [{"state": "rounding mode", "before": "to nearest", "after": "upward"}]
    assert watch.check() == [{"state": "rounding mode", "before": "upward", "after": "to nearest"}]


def test_a_framework_imported_between_two_readings_is_compared_with_its_fresh_defaults():
    """Nothing earlier to compare with: a load() that imports torch and changes its default dtype
    is still caught, against what a fresh import gives (adapters/_state.py FRESH); a value with no
    fixed default (the thread count) is not compared."""
    from conformance.execution.state import THREADS, changes

    before = {"imported": set(), THREADS: {}, "flush-to-zero": "off"}
    after = {"imported": {"torch"}, THREADS: {}, "flush-to-zero": "off", "torch default dtype": "torch.float64",
             "torch threads": "7"}
    assert changes(before, after) == [{"state": "torch default dtype", "before": "torch.float32", "after": "torch.float64"}]
    assert changes(before, after | {"torch default dtype": "torch.float32"}) == []


def test_a_malformed_state_change_is_a_bad_line(tmp_path):
    from conformance.errors import UsageError
    from conformance.reports.results import load_results

    record = {"record": "result", "case": CASES[0], "adapter": "a", "check": "forward", "status": "pass"}
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(record | {"state_changes": [{"state": "flush-to-zero", "before": "off", "after": "on"}]})
                    + "\n")
    assert load_results(path).records[0]["state_changes"][0]["after"] == "on"
    path.write_text(json.dumps(record | {"state_changes": [{"state": "flush-to-zero", "after": 1}]}) + "\n")
    with pytest.raises(UsageError, match="line 1 .*state_changes"):
        load_results(path)


@pytest.mark.skipif(__import__("platform").machine() != "x86_64" or __import__("sys").platform != "linux",
                    reason="sets MXCSR through glibc's x86-64 fenv_t")
@pytest.mark.parametrize("bits, ftz, daz", [(0x8000, "on", "off"), (0x0040, "off", "on"), (0x8040, "on", "on")])
def test_flush_to_zero_and_denormals_are_zero_are_read_apart(bits, ftz, daz):
    """MXCSR's FTZ (0x8000) and DAZ (0x40) bits, each alone: the probes tell them apart."""
    import ctypes
    import ctypes.util
    import struct

    from conformance.execution.state import _float_control

    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    saved = ctypes.create_string_buffer(32)  # glibc's x86-64 fenv_t: 32 bytes, MXCSR at offset 28
    libm.fegetenv(saved)
    raw = bytearray(saved.raw)
    struct.pack_into("<I", raw, 28, struct.unpack_from("<I", raw, 28)[0] | bits)
    libm.fesetenv(ctypes.create_string_buffer(bytes(raw), 32))
    try:
        got = _float_control()
    finally:
        libm.fesetenv(saved)
    assert (got["flush-to-zero"], got["denormals-are-zero"]) == (ftz, daz)
    assert _float_control()["flush-to-zero"] == "off"


def test_the_suites_own_numerics_threads_are_no_change_of_the_adapter(cli, tmp_path):
    """A kernel-sized case scores its blocks on the suite's thread pool (numerics/threads.py), which
    stays alive for the next case: the suite's threads, not a thread the adapter left running, so
    nothing is marked and the worker is not restarted."""
    big, small = "f32/300x4096/ax-1/eps0/normal/rand/s0", "mf16/255x7x128/ax-1/eps1e-06/subnormal/near_zero/s0"
    starts, results, _, _ = run(cli, tmp_path / "out", "--adapters", "numpy-reference", cases=(big, small),
                                suite="kernels")
    assert {case for _, case, _ in results} == {big, small}
    assert not [r for r in results.values() if r.get("state_changes")]
    assert starts == 1 and "changed:" not in (tmp_path / "out" / "report.md").read_text()
