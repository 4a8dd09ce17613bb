"""Shared framework workers (issue 13): adapters of one worker group and environment run in one
worker process, with the same isolation per case as a worker of their own."""
import json
import re

import pytest

from conformance.numerics.dtypes import PRECISIONS

PLANTED = "tests.planted.adapters:"


def _run(cli, out, *args, timings: dict | None = None):
    """A smoke run with a cache folder of its own, holding the seconds per case of a "previous
    run" (`timings`), which decide the order the tasks start in (conformance/execution/schedule.py)."""
    cache = out.parent / f"{out.name}-cache"
    cache.mkdir()
    if timings:
        (cache / "timings.json").write_text(json.dumps(timings))
    p = cli("run", "--suite", "smoke", "--out", str(out), "--jobs", "1", "--cache-dir", str(cache), *args)
    assert p.returncode in (0, 1), p.stderr
    started = re.search(r"^(\d+) worker process\(es\) started for (\d+) adapter", p.stderr, re.M)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    results = {(r["adapter"], r["case"], r["check"]): {k: v for k, v in r.items() if k != "seconds"}
               for r in rows if r["record"] == "result"}
    return int(started[1]), results


def test_one_worker_serves_a_group_and_gives_the_records_of_isolated_workers(cli, tmp_path):
    adapters = ("--adapters", "numpy-reference", "--adapter", PLANTED + "Correct", "--adapter", PLANTED + "SloppyRsqrt",
                "--share-with-builtins")  # else the built-in has a worker of its own (tests/harness/test_worker_state.py)
    shared_starts, shared = _run(cli, tmp_path / "shared", *adapters)
    isolated_starts, isolated = _run(cli, tmp_path / "isolated", *adapters, "--isolate-adapters")
    assert (shared_starts, isolated_starts) == (1, 3)
    assert shared == isolated
    # Each adapter's output still goes to its own log.
    assert {p.name for p in (tmp_path / "shared" / "logs").glob("*.log")} == {
        "numpy-reference.0.log", "planted-correct.0.log", "planted-sloppy-rsqrt.0.log"}


@pytest.mark.parametrize("planted, name, costs", [
    ("CrashOnHalf", "planted-crash",
     lambda case, message: PRECISIONS[case["dtype"]].compute.name == "float16" and "crashed" in message),
    ("FailsToLoad", "planted-no-framework", lambda case, message: "framework_that_does_not_exist" in message),
])
def test_a_fault_in_a_shared_worker_costs_only_the_faulty_adapters_cases(cli, tmp_path, planted, name, costs):
    alone_starts, alone = _run(cli, tmp_path / "alone", "--adapters", "numpy-reference")
    # The faulty adapter first, so the worker it leaves behind (or its replacement) serves the reference.
    starts, both = _run(cli, tmp_path / "both", "--adapter", PLANTED + planted, "--adapters", "numpy-reference",
                        "--share-with-builtins", timings={name: 1.0, "numpy-reference": 0.001})
    reference = {k: v for k, v in both.items() if k[0] == "numpy-reference"}
    assert reference == alone  # the other adapter of the group lost nothing
    faulty = [r for k, r in both.items() if k[0] != "numpy-reference"]
    errors = [r for r in faulty if r["status"] == "error"]
    assert errors and all(costs(r, r["message"]) for r in errors)
    assert all(r["status"] == "pass" for r in faulty if r not in errors)
    crashed_cases = {r["case"] for r in errors}
    # A worker per crash (or one for the failed load), one after: the reference's.
    assert starts == (len(crashed_cases) + 1 if planted == "CrashOnHalf" else 2)


def test_the_schedule_starts_the_longest_group_first_and_keeps_a_groups_tasks_together(tmp_path):
    from conformance.execution import schedule
    from conformance.execution.adapter_refs import AdapterRef, share_key
    from conformance.execution.runner import _Task

    refs = {n: AdapterRef(n, n, {}, None, g) for n, g in
            [("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", None), ("new", "b")]}
    tasks = [_Task(refs[n], ["case"] * 10, 0) for n in refs]
    history = {"a1": 1.0, "a2": 2.0, "b1": 0.5, "c1": 2.5}  # per case; "new" has none: counted longest
    order = [t.adapter.name for t in schedule.order(tasks, history, share_key)]
    assert order == ["new", "b1", "a2", "a1", "c1"]  # b: 26 + 5, a: 20 + 10, c: 25
    schedule.save(tmp_path, {"a1": 4.0}, {"a1": 8})
    assert schedule.load(tmp_path) == {"a1": 0.5}
    (tmp_path / schedule.FILE).write_text("[not a dict")
    assert schedule.load(tmp_path) == {}  # a broken history only costs the order
