"""A poisoned torch-onnx export cache gives the records of a run with --no-cache: a user's subclass
that exports another epsilon shares the default cache folder with the built-in, both ways; entries
truncated, emptied (a power loss after an un-fsynced rename), overwritten with garbage, replaced by
a directory, a FIFO or a symbolic link out of the folder.  Each poisoned entry is one warning line
in the worker's log, and is repaired.  (torch Inductor's cache: test_inductor_cache_poisoning.py;
the store itself, in-process: tests/harness/test_cache_entries.py.)"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conformance.adapters import torch_onnx as builtin
from conformance.adapters.torch_nn import torch_module
from conformance.execution import entries
from tests.conftest import ROOT

pytestmark = pytest.mark.frameworks

OTHER_EPSILON = 0.011


def other_epsilon_module(input_shape, axes, eps, param_dtype, dtype_args):
    """The built-in's module, with another epsilon than the case asks for."""
    return torch_module(input_shape, axes, OTHER_EPSILON, param_dtype, dtype_args)


class OtherEpsilonOnnx(builtin.TorchOnnx):
    """A user's variant of torch-onnx: its cases' parameters are the built-in's, its export is not."""

    name = "torch-onnx-eps"

    def load(self):
        builtin.torch_module = other_epsilon_module  # what _export builds, in this worker of its own
        return super().load()


SUBCLASS = f"{__name__}:OtherEpsilonOnnx"

# One poisoning per entry: the cases' exports differ in dtype or shape, which tells their entries apart.
POISONED = {
    "truncated": "f32/4x32/ax-1/eps1e-06/zeros/rand/s0",
    "empty": "f64/16/ax-1/eps1e-06/spike/signed/s0",
    "garbage": "f16/2x4096/ax-1/eps1e-06/normal/rand/s0",
    "directory": "f32/2x4x8/ax-1,-2/eps0/subnormal/signed/s0",
    "fifo": "f16/2x4x8/ax-2,-1/eps1e-06/tiny/signed/s0",
    "symlink-out": "f64/4x32/ax-1/eps1e-05/tiny/ones/s0",
}
BUILTIN_FIRST = list(POISONED.values())[:2]  # the subclass runs them after the built-in exported them
SUBCLASS_FIRST = ["f32/2x4096/ax-1/eps1e-06/normal/rand/s0", "f16/4x32/ax-1/eps1e-06/zeros/rand/s0"]
ONNX_TYPES = {"f32": 1, "f16": 10, "f64": 11}


def _start(tmp_path, out, cases, *args):
    """`conformance run` on these cases, started."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    argv = [sys.executable, "-m", "conformance.cli", "run", "--suite", "standard", "--jobs", "1",
            "--timeout", "30", "--out", str(out), *args, *(a for c in cases for a in ("--case", c))]
    return out, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)


def _finish(started):
    """Its records by (adapter, case, check), timings left out, and its workers' logs."""
    out, p = started
    output = p.communicate(timeout=600)[0]
    assert p.returncode in (0, 1), output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    records = {(r["adapter"], r["case"], r["check"]): {k: v for k, v in r.items() if k != "seconds"}
               for r in rows if r.get("record") == "result"}
    return records, "".join(f.read_text(errors="replace") for f in sorted((out / "logs").glob("*.log")))


def _run(tmp_path, out, cases, *args):
    return _finish(_start(tmp_path, out, cases, *args))


def _of(records, adapter, cases):
    return {k: v for k, v in records.items() if k[0] == adapter and k[1] in cases}


def _signature(path):
    """(ONNX element type, shape) of an export's input, whatever the entry's format."""
    import onnx

    data = path.read_bytes()
    if data.startswith(entries.MAGIC):
        data = data.partition(b"\n")[2]
    tensor = onnx.load_model_from_string(data).graph.input[0].type.tensor_type
    return tensor.elem_type, tuple(d.dim_value for d in tensor.shape.dim)


def _case_signature(case):
    dtype, shape = case.split("/")[:2]
    return ONNX_TYPES[dtype], tuple(int(n) for n in shape.split("x"))


def _poison(path, mode, outside):
    if mode == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    elif mode == "empty":
        os.truncate(path, 0)
    elif mode == "garbage":
        path.write_bytes(os.urandom(path.stat().st_size))
    else:
        path.unlink()
        if mode == "directory":
            path.mkdir()
            (path / "model.onnx").write_bytes(outside.read_bytes())
        elif mode == "fifo":
            os.mkfifo(path)
        elif mode == "symlink-out":
            path.symlink_to(outside)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("poison")
    default = tmp / "xdg" / "rmsnorm-conformance"  # the default cache folder of these runs
    every = [*POISONED.values(), *SUBCLASS_FIRST]
    baseline = _start(tmp, tmp / "nocache", every, "--adapters", "torch-onnx", "--adapter", SUBCLASS,
                      "--isolate-adapters", "--no-cache")  # meanwhile, the runs with a cache
    _run(tmp, tmp / "builtin", list(POISONED.values()), "--adapters", "torch-onnx")  # fills the default cache
    poisoned = tmp / "poisoned-cache"
    shutil.copytree(default, poisoned, symlinks=True)
    folder = poisoned / "torch-onnx"
    by_signature = {_signature(p): p for p in folder.iterdir()}
    outside = tmp / "outside.onnx"  # another case's model, outside the folder
    shutil.copy(by_signature[_case_signature(POISONED["truncated"])], outside)
    paths = {}
    for mode, case in POISONED.items():
        paths[mode] = by_signature[_case_signature(case)]
        _poison(paths[mode], mode, outside)
    before = outside.read_bytes()
    repairing = _start(tmp, tmp / "repaired", list(POISONED.values()), "--adapters", "torch-onnx",
                       "--cache-dir", str(poisoned))  # meanwhile, the subclass on the default cache
    subclass, _ = _run(tmp, tmp / "subclass", BUILTIN_FIRST + SUBCLASS_FIRST, "--adapter", SUBCLASS)
    after, _ = _run(tmp, tmp / "after", SUBCLASS_FIRST, "--adapters", "torch-onnx")
    repaired, logs = _finish(repairing)
    nocache, _ = _finish(baseline)
    return {"nocache": nocache, "subclass": subclass, "after": after, "repaired": repaired, "logs": logs,
            "paths": paths, "outside": (outside, before)}


def test_a_user_subclass_never_gets_the_builtins_exports(runs):
    got = _of(runs["subclass"], "torch-onnx-eps", BUILTIN_FIRST)
    assert len(got) >= 10 and got == _of(runs["nocache"], "torch-onnx-eps", BUILTIN_FIRST)
    assert any(r.get("finding") == "parameters/effective-epsilon" for r in got.values())  # its own finding


def test_the_builtin_never_gets_a_user_subclass_exports(runs):
    got = _of(runs["after"], "torch-onnx", SUBCLASS_FIRST)
    assert len(got) >= 12 and got == _of(runs["nocache"], "torch-onnx", SUBCLASS_FIRST)
    assert all(r["status"] in ("pass", "unsupported") for r in got.values())


@pytest.mark.parametrize("mode", list(POISONED))
def test_a_poisoned_export_entry_gives_the_records_of_a_run_without_cache(runs, mode):
    case = POISONED[mode]
    got = _of(runs["repaired"], "torch-onnx", [case])
    assert len(got) >= 5 and got == _of(runs["nocache"], "torch-onnx", [case])
    path = runs["paths"][mode]
    warnings = [line for line in runs["logs"].splitlines() if line.startswith(f"warning: cache entry {path} ")]
    assert len(warnings) == 1, runs["logs"][-3000:]
    assert path.is_file() and not path.is_symlink()  # exported again and kept, whole
    assert entries.Entries(path.parent).get(path.name.removesuffix(entries.SUFFIX)) is not None
    outside, before = runs["outside"]
    assert outside.read_bytes() == before  # a link's target is never touched
