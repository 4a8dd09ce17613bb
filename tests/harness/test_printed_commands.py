"""The commands the suite prints for a user's adapter work as printed: pasted into a shell in
another folder, with a PATH that does not hold the suite's venv (conformance/execution/invocation.py).

The user's kernel lives in a folder of its own, outside the project: a class found from the
folder the run starts in, and a plain numpy function found through PYTHONPATH from yet another."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.execution.invocation import conformance_command
from conformance.reports.results import rerun_command, repro_command

CASE = "f32/4x32/ax-1/eps1e-05/tiny/rand/s0"  # epsilon outside the square root fails it
KERNEL = '''
import numpy as np

from conformance.adapters.numpy_reference import NumpyReference


class EpsOutside(NumpyReference):
    """1 / (sqrt(mean(x^2)) + eps)."""

    name = "my-eps-outside"

    def _rrms(self, layer, xc):
        return 1.0 / (np.sqrt(np.mean(xc * xc, axis=layer.axes, keepdims=True)) + layer.epsilon)


def eps_outside(x, weight, eps):
    ct = np.float64 if x.dtype == np.float64 else np.float32
    xc = np.asarray(x).astype(ct)
    axes = tuple(range(x.ndim - weight.ndim, x.ndim))
    with np.errstate(all="ignore"):
        r = 1 / (np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True)) + ct(eps))
        return (xc * r * weight.astype(ct)).astype(x.dtype)
'''
VENV_BIN = Path(sys.executable).parent


def _env(**extra) -> dict:
    """This environment without PYTHONPATH and without the venv's bin on PATH."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != VENV_BIN.resolve()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return env | {"PATH": os.pathsep.join(path) or "/usr/bin:/bin"} | extra


def _conformance() -> list[str]:
    """The suite's command as a user starts it: the venv's script by its path."""
    script = VENV_BIN / "conformance"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "conformance.cli"]


def _call(argv, cwd, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=_env(**extra), capture_output=True, text=True, timeout=300)


def _shell(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """A printed line pasted into bash in `cwd`."""
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def _results(folder: Path) -> list[dict]:
    lines = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
    return [r for r in lines if r.get("record", "result") == "result"]


@pytest.fixture
def kernels(tmp_path) -> Path:
    """A user's package `mykern.rms` in a folder of its own."""
    root = tmp_path / "kernels"
    (root / "mykern").mkdir(parents=True)
    (root / "mykern" / "__init__.py").write_text("")
    (root / "mykern" / "rms.py").write_text(KERNEL)
    return root


@pytest.mark.parametrize("kind", ["class", "function"])
def test_printed_rerun_repro_replay_and_pytest_lines_work_from_another_folder(tmp_path, kernels, kind):
    if kind == "class":  # found from the folder the run starts in
        ref, options, start, extra = "mykern.rms:EpsOutside", [], kernels, {}
    else:  # found through PYTHONPATH, from another folder
        ref, options, start, extra = "mykern.rms:eps_outside", ["--function", "numpy"], tmp_path / "start", {
            "PYTHONPATH": str(kernels)}
    start.mkdir(exist_ok=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    suite = tmp_path / "one.toml"
    suite.write_text(f'name = "one"\ncases = ["{CASE}"]\n')

    run = tmp_path / "run"
    p = _call([*_conformance(), "run", "--adapter", ref, *options, "--case", CASE, "--out", str(run)], start, **extra)
    assert p.returncode == 1, p.stdout + p.stderr
    md, report = (run / "report.md").read_text(), json.loads((run / "report.json").read_text())
    reruns = set(re.findall(r"rerun: `([^`]+)`", md)) | {f["rerun"] for f in report["failures"]}
    repros = set(re.findall(r"reproduce without the suite: `([^`]+)`", md))
    repros |= {d["repro"] for d in report["defects"] if d.get("repro")}
    assert len(reruns) == 1 and len(repros) == 1, (reruns, repros)  # one case: every line the same
    assert all(line.startswith(f"PYTHONPATH={kernels} ") for line in reruns | repros)

    (rerun,), (repro,) = reruns, repros
    for _ in range(2):  # twice: a rerun replaces its own previous rerun
        q = _shell(rerun, elsewhere)
        assert q.returncode == 1, rerun + "\n" + q.stdout + q.stderr
    rerun_records = _results(elsewhere / "out" / "rerun")
    assert {r["case"] for r in rerun_records} == {CASE} and any(r["status"] == "fail" for r in rerun_records)
    q = _shell(repro, elsewhere)
    assert q.returncode == 0, repro + "\n" + q.stdout + q.stderr
    script = elsewhere / "out" / "repro" / "repro.py"
    # The script imports the adapter from where it lives (or carries its code), run from here.
    s = subprocess.run([sys.executable, str(script)], cwd=elsewhere, env=_env(), capture_output=True, text=True,
                       timeout=300)
    assert s.returncode == 0 and "output sha256" in s.stdout, s.stdout + s.stderr

    # The fuzz replay line (fuzz takes the wrapped function's full reference; seed 4 finds epsilon
    # outside the square root, which fails a run, on both).
    full_ref = ref if kind == "class" else f"function:numpy:{ref}"
    fz = tmp_path / "fz"
    p = _call([*_conformance(), "fuzz", "--adapter", full_ref, "--seed", "4", "--budget", "10", "--out", str(fz)],
              start, **extra)
    assert p.returncode == 1, p.stdout + p.stderr
    (replay,) = [x.removeprefix("replay: ") for x in p.stdout.splitlines() if x.startswith("replay: ")]
    assert str(fz / "fuzz.toml") in shlex.split(replay)
    q = _shell(replay, elsewhere)
    assert q.returncode == 1, replay + "\n" + q.stdout + q.stderr
    assert any(r["status"] == "fail" for r in _results(elsewhere / "out" / "replay"))

    # The pytest plugin's failure messages carry the same line.
    fn = ["--conformance-function", "numpy"] if kind == "function" else []
    t = _call([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(start),
               "--conformance-adapter", ref, *fn, "--conformance-suite", str(suite),
               "--conformance-out", str(tmp_path / "pytest-run")], start, **extra)
    assert t.returncode == 1, t.stdout[-3000:]
    assert {x.removeprefix("rerun: ") for x in t.stdout.splitlines() if x.startswith("rerun: ")} == reruns


def test_the_conformance_printed_is_the_one_running_or_beside_the_interpreter(tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    script = bin_ / "conformance"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    python = bin_ / "python"
    # On PATH: bare; not on PATH: its full path; the one running before the one beside the interpreter.
    assert conformance_command(str(script), sys.executable, str(bin_)) == ("conformance", ())
    assert conformance_command(str(script), sys.executable, "/nowhere") == (str(script), ())
    assert conformance_command("pytest", str(python), "/nowhere") == (str(script), ())
    # Neither: the interpreter's `-m conformance.cli`, which works from any folder.
    command, path = conformance_command("pytest", str(tmp_path / "python"), "/nowhere")
    assert command == shlex.join([str(tmp_path / "python"), "-m", "conformance.cli"])
    p = _shell(f"{shlex.join([sys.executable, '-m', 'conformance.cli'])} list --help", tmp_path)
    assert p.returncode == 0, p.stderr


def test_results_from_before_the_fields_print_what_they_did():
    # No `conformance` in the run record, no `import_root` in the adapter's: the run's folder on
    # PYTHONPATH and bare `conformance`, as such files always printed.
    r, adapters, run = {"adapter": "mine", "case": CASE}, {"mine": {"ref": "mykern.rms:EpsOutside"}}, {"cwd": "/x y"}
    assert rerun_command(r, adapters, run) == (f"PYTHONPATH='/x y' conformance run --adapter mykern.rms:EpsOutside "
                                               f"--case {CASE} --out out/rerun --overwrite")
    assert repro_command(r, adapters, run).startswith("PYTHONPATH='/x y' conformance repro ")
    # Today's: the module's own folder, none for a built-in, and the executable the run recorded.
    run = {"cwd": "/x", "conformance": "/v/bin/conformance", "conformance_path": []}
    assert rerun_command(r, {"mine": {"ref": "mykern.rms:EpsOutside", "import_root": "/k"}}, run).startswith(
        "PYTHONPATH=/k /v/bin/conformance run --adapter mykern.rms:EpsOutside ")
    assert rerun_command({"adapter": "numpy-reference", "case": CASE},
                         {"numpy-reference": {"ref": "numpy-reference", "import_root": None}}, run).startswith(
        "/v/bin/conformance run --adapters numpy-reference ")
