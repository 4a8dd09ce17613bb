"""The Ray executor (issue 13): `run --executor ray` on a local Ray instance that each run starts
and stops gives the local runner's records, with the same cost for a killed or hung worker."""
import json
import signal

import pytest

from conformance.numerics.dtypes import PRECISIONS
from tests.harness.processes import HOSTILE, Run, cli, results, usage_error, wait_for_results

pytest.importorskip("ray")  # the [ray] extra; `make test` installs it
pytestmark = pytest.mark.ray
PLANTED = "tests.planted.adapters:"


def test_a_worker_killed_under_ray_costs_exactly_its_case(tmp_path):
    runs = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        run = cli(tmp_path, "run", "--suite", "smoke", "--adapter", PLANTED + "KilledOnHalf",
                  "--adapters", "numpy-reference", "--executor", executor, "--jobs", "1", "--out", str(out))
        assert run.proc.returncode == 1, run.stderr
        run.assert_clean()
        runs[executor] = results(out)
    _assert_exactly_the_float16_cases_error(runs["ray"], "worker crashed (killed by SIGKILL) on this case")
    strip = lambda rs: sorted((r["adapter"], r["case"], r["check"], r["status"]) for r in rs)  # noqa: E731
    assert strip(runs["ray"]) == strip(runs["local"])


def test_a_ray_actor_killed_mid_run_costs_exactly_its_case(tmp_path):
    """The actor itself dies (as on a lost node), so its last messages may be lost with it: the
    cases after the last one that arrived run again on a careful actor, and only the case that
    kills it is charged."""
    out = tmp_path / "out"
    run = cli(tmp_path, "run", "--suite", "smoke", "--adapter", PLANTED + "KillsItsRayActorOnHalf",
              "--executor", "ray", "--jobs", "1", "--out", str(out))
    assert run.proc.returncode == 1, run.stderr
    run.assert_clean()
    _assert_exactly_the_float16_cases_error(results(out), "the Ray actor died")


def _assert_exactly_the_float16_cases_error(records, says):
    killed = {r["case"] for r in records if r["status"] == "error"}
    half = {r["case"] for r in records if PRECISIONS[r["dtype"]].compute.name == "float16"}
    assert killed and killed == half  # each killed case, and no other
    assert all(says in r["message"] for r in records if r["status"] == "error")
    assert all(r["status"] == "pass" for r in records if r["case"] not in half)


def test_a_hung_case_under_ray_times_out_and_the_run_goes_on(tmp_path):
    out = tmp_path / "out"
    run = cli(tmp_path, "run", "--suite", "smoke", "--case", "*/4x32/*", "--adapter", PLANTED + "HangOnBfloat16",
              "--executor", "ray", "--timeout", "3", "--jobs", "1", "--out", str(out))
    assert run.proc.returncode == 1, run.stderr
    run.assert_clean()
    rs = results(out)
    timed_out = {r["case"] for r in rs if r["status"] == "error"}
    assert timed_out == {r["case"] for r in rs if r["case"].split("/")[0] in ("bf16", "dbf16")}
    assert all("timed out after 3s" in r["message"] for r in rs if r["status"] == "error")
    assert {r["status"] for r in rs if r["case"] not in timed_out} == {"pass"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupt_then_resume_under_ray_gives_the_records_of_one_uninterrupted_run(tmp_path, sig):
    key = lambda r: (r["adapter"], r["case"], r["check"], r["status"], json.dumps(r["metrics"], sort_keys=True))  # noqa: E731
    smoke = ("run", "--suite", "smoke", "--adapter", HOSTILE + "Slow", "--executor", "ray")
    whole = cli(tmp_path, *smoke, "--out", str(tmp_path / "whole"))
    assert whole.proc.returncode == 0, whole.stderr
    out = tmp_path / "out"
    first = Run(tmp_path, *smoke, "--out", str(out), "--jobs", "1")
    wait_for_results(out / "results.partial.jsonl", 8)
    first.proc.send_signal(sig)
    first.wait(60)
    # Ray's own processes too: after a SIGKILL of the CLI, the local instance's agents notice that
    # its raylet is gone and exit by themselves (within ~40 s here).
    assert first.survivors(grace=90) == []
    resumed = cli(tmp_path, *smoke, "--out", str(out), "--resume")
    assert resumed.proc.returncode == 0, resumed.stderr
    assert "resuming:" in resumed.stderr and ", 0 to go" not in resumed.stderr
    assert sorted(map(key, results(out))) == sorted(map(key, results(tmp_path / "whole")))
    resumed.assert_clean()


@pytest.mark.parametrize("args, says", [
    (["--ray-address", "127.0.0.1:9"], "--ray-address needs --executor ray"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:9"], "nothing answers there"),
    (["--executor", "ray", "--device", "auto"], "--device is not supported"),
])
def test_bad_ray_options_are_one_line_and_exit_2(tmp_path, args, says):
    out = tmp_path / "out"
    usage_error(cli(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", *args, "--out", str(out)),
                says)
    assert not out.exists()
