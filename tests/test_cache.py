"""--cache-dir (issue 13): a warm run gives the records of a cold one."""
import json

import pytest


def _records(out):
    drop = ("seconds",)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return sorted((json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True)
                   for r in rows if r.get("record") == "result"))


@pytest.mark.frameworks
def test_a_warm_run_gives_the_records_of_a_cold_one(cli, tmp_path):
    cache = tmp_path / "cache"
    runs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        p = cli("run", "--suite", "smoke", "--adapters", "flax-nnx,equinox,torch-onnx", "--cache-dir", str(cache),
                "--out", str(out))
        assert p.returncode in (0, 1), p.stderr
        runs.append(_records(out))
        if k == 0:
            assert any((cache / "jax").iterdir()) and any((cache / "torch-onnx").iterdir())  # filled cold
    assert runs[0] == runs[1]


def test_an_unwritable_cache_folder_is_one_line_and_exit_2(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    p = cli("run", "--suite", "smoke", "--adapters", "numpy-reference", "--cache-dir", str(blocker / "sub"),
            "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--cache-dir" in p.stderr
    assert not (tmp_path / "o").exists()
