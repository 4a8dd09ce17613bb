"""The executors on the real frameworks: Ray gives the local runner's records, and the adapters of
one framework share a worker process (the harness itself, on numpy adapters: tests/harness/test_ray.py,
tests/harness/test_shared_workers.py)."""
import json

import pytest

from tests.harness import processes
from tests.harness.test_shared_workers import _run

pytestmark = pytest.mark.frameworks


def _records(out):
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["adapter"], r["case"], r["check"]): {k: v for k, v in r.items() if k not in ("seconds", "message",
                                                                                          "diagnosis")}
            for r in rows if r.get("record") == "result"}


def test_ray_gives_the_records_of_the_local_runner_on_the_smoke_suite(tmp_path):
    pytest.importorskip("ray")  # the [ray] extra; `make test` installs it
    adapters = ("--adapters", "numpy-reference,torch,flax-nnx,keras-jax")
    runs = {}
    for executor in ("local", "ray"):
        run = processes.cli(tmp_path, "run", "--suite", "smoke", *adapters, "--executor", executor,
                            "--out", str(tmp_path / executor))
        assert run.proc.returncode in (0, 1), run.stderr
        run.assert_clean()
        runs[executor] = _records(tmp_path / executor)
    assert runs["ray"] == runs["local"]
    assert {k[0] for k in runs["ray"]} == {"numpy-reference", "torch", "flax-nnx", "keras-jax"}


def test_torch_adapters_import_torch_once(cli, tmp_path):
    starts, results = _run(cli, tmp_path / "torch", "--adapters", "torch,torch-functional,hf-llama",
                           "--case", "f32/4x32/*")
    assert starts == 1
    assert {k[0] for k in results} == {"torch", "torch-functional", "hf-llama"}
    assert not [r for r in results.values() if r["status"] == "error"]
