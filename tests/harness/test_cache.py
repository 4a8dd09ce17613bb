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


REGISTRY_CHECK = """
import contextlib, io, json, warnings
import torch
from conformance.adapters.torch_onnx import _reuse_torchlib_registry

def export(shape, dtype, table=None):
    module = torch.nn.RMSNorm(shape[-1:], eps=1e-5, dtype=dtype)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (torch.zeros(shape, dtype=dtype),), dynamo=True, opset_version=23,
                                    custom_translation_table=table)
    return program.model_proto

def rms_norm_as_identity(x, normalized_shape, weight=None, eps=None):  # must not outlive its export
    from onnxscript import opset23 as op
    return op.Identity(x)

cases = [((2, 8), torch.float32), ((3, 1, 16), torch.float16), ((4, 5), torch.bfloat16)]
fresh = [export(*c).SerializeToString() for c in cases]
_reuse_torchlib_registry()
_reuse_torchlib_registry()  # a second adapter in the same worker
custom = export((2, 8), torch.float32, {torch.ops.aten.rms_norm.default: rms_norm_as_identity})
reused = [export(*c).SerializeToString() for c in cases]
print(json.dumps({"same": [a == b for a, b in zip(fresh, reused)],
                  "custom_differs": custom.SerializeToString() != fresh[0]}))
"""


@pytest.mark.frameworks
def test_torch_onnx_reusing_the_exporters_registry_gives_the_same_models(tmp_path):
    """torch-onnx builds torch.onnx's torchlib registry once per worker (_reuse_torchlib_registry):
    the models must be byte for byte those of a fresh registry, and a custom translation table
    given to one export must not reach the next."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", REGISTRY_CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"same": [True, True, True], "custom_differs": True}
