"""Version environments against the real index (PyPI): `run --with`, overlays built, reused,
built concurrently and interrupted, `--python`, and a difference between Keras releases that the
suite reports (docs/versions.md).  The overlays are shared by the tests of this module."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.adapters.numpy_reference import NumpyReference
from conformance.execution import overlays
from conformance.execution.procs import descendants
from tests.conftest import ROOT, run_cases, run_cli
from tests.engine.test_overlays import _fake as fake_overlay

MULTI_AXIS = "f32/2x4x8/ax-1,-2/eps1e-06/normal/rand/s0"  # keras < 3.14: "The shape of the target variable ..."
F64 = "f64/4x32/ax-1/eps1e-06/normal/rand/s0"  # keras >= 3.12 computes float64 in float32
OLD, NEW = "3.11.0", "3.14.0"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _build(cache: Path, version: str) -> subprocess.Popen:
    """A process that builds (or reuses) the overlay keras==version and prints its folder."""
    code = ("import sys\nfrom pathlib import Path\nfrom conformance.errors import UsageError\n"
            "from conformance.execution import overlays as o\n"
            "try:\n"
            f"    print(o.overlay((o.Requirement.parse('keras=={version}'),), Path({str(cache)!r})))\n"
            "except UsageError as e:\n"
            "    print('error:', e)\n    sys.exit(2)\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _folders(cache: Path) -> list[str]:
    top = overlays.root(cache)
    return sorted(p.name for p in top.iterdir() if p.is_dir()) if top.is_dir() else []


def _venv_packages() -> list:
    p = subprocess.run([sys.executable, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def test_a_concurrent_build_of_one_overlay_ends_with_one(cache):
    before = _folders(cache)
    first, second = _build(cache, OLD), _build(cache, OLD)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    (a, _), (b, _) = outs
    assert a.strip() == b.strip()
    folder = Path(a.strip())
    assert _folders(cache) == sorted([*before, folder.name])  # one overlay, no leftover of a build
    assert sum("waiting for another build" in err for _, err in outs) == 1  # the other one waited for it
    marker = overlays.read_marker(folder)
    assert marker["installed"]["keras"] == OLD and marker["requirements"] == [f"keras=={OLD}"]
    start = time.monotonic()
    assert overlays.overlay((overlays.Requirement("keras", OLD),), cache) == folder
    assert time.monotonic() - start < 1.0  # reused


def test_an_interrupted_build_leaves_no_overlay(tmp_path):
    build = _build(tmp_path, "3.10.0")
    deadline, pip = time.monotonic() + 120, None
    while pip is None and time.monotonic() < deadline and build.poll() is None:
        for pid in descendants(build.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"pip" in cmdline and b"install" in cmdline:
                pip = pid
        time.sleep(0.02)
    assert pip is not None, "pip never started"
    os.kill(pip, signal.SIGKILL)
    out, err = build.communicate(timeout=120)
    assert build.returncode == 2 and "pip was stopped (killed by SIGKILL)" in out, out + err
    assert _folders(tmp_path) == []  # no overlay, and no half one
    assert [p.name for p in overlays.root(tmp_path).iterdir()] == [p.name for p in overlays.root(tmp_path).glob("*.lock")]


@pytest.mark.frameworks
def test_run_with_older_keras_reports_its_versions_and_the_change(cache, tmp_path):
    packages = _venv_packages()
    runs = {}
    for version in (OLD, NEW):
        out = tmp_path / version
        records = run_cases(out, [MULTI_AXIS, F64], "--adapters", "keras-torch", "--with", f"keras=={version}",
                            "--cache-dir", str(cache))
        adapter = next(json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()
                       if json.loads(line).get("record") == "adapter")
        assert adapter["versions"]["keras"] == version  # what the worker imported: the overlay's
        runs[version] = records
    old, new = runs[OLD], runs[NEW]
    assert old["keras-torch", MULTI_AXIS, "forward"]["status"] == "error"
    assert "The shape of the target variable" in old["keras-torch", MULTI_AXIS, "forward"]["message"]
    assert new["keras-torch", MULTI_AXIS, "forward"]["status"] == "pass"
    assert old["keras-torch", F64, "forward"]["status"] == "pass"
    assert new["keras-torch", F64, "forward"]["status"] == "fail"
    assert "lower-precision" in json.dumps(new["keras-torch", F64, "forward"])
    p = run_cli("diff", str(tmp_path / OLD), str(tmp_path / NEW), "--out", str(tmp_path / "diff"))
    assert p.returncode == 1, p.stdout + p.stderr
    diff = json.loads((tmp_path / "diff" / "diff.json").read_text())
    assert {"adapter": "keras-torch", "package": "keras", "baseline": OLD, "current": NEW} in diff["version_changes"]
    assert ("keras-torch", F64, "forward") in {(r["adapter"], r["case"], r["check"]) for r in diff["regressions"]}
    assert ("keras-torch", MULTI_AXIS, "forward") in {(r["adapter"], r["case"], r["check"]) for r in diff["improvements"]}
    assert "forward/lower-precision" in {f["id"] for f in diff["new_findings"]}
    assert _venv_packages() == packages  # the project's environment is as it was


class WhichPython(NumpyReference):
    """The numpy reference, saying which interpreter and which Keras its worker has."""

    name = "which-python"
    env = {"KERAS_BACKEND": "numpy"}

    def load(self):
        import keras

        return {**super().load(), "keras": keras.__version__, "executable": sys.executable}


def test_python_runs_the_workers_with_another_interpreter(cache, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("kept")
    p = run_cli("run", "--python", python, "--adapters", "numpy-reference", "--case", F64, "--out", str(out))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "import conformance" in p.stderr and (out / "keep.txt").read_text() == "kept"
    # The project's packages for the new interpreter, as a user's own environment would have them.
    site = next((venv / "lib").glob("python3*/site-packages"))
    base_site = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
    (site / "base.pth").write_text(f"import site; site.addsitedir({str(base_site)!r})\n")
    run = tmp_path / "run"
    run_cases(run, [F64], "--python", python, "--adapter", "tests.frameworks.test_versions:WhichPython",
              "--with", f"keras=={NEW}", "--cache-dir", str(cache), expect=(0,))
    adapter = next(json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()
                   if json.loads(line).get("record") == "adapter")
    assert adapter["versions"]["executable"] == python and adapter["versions"]["keras"] == NEW


@pytest.mark.parametrize("args, says", [
    (["--with", "keras==9.9.9"], "keras==9.9.9 is not on the package index"),
    (["--with", "rmsnorm-conformance-no-such-dist==1.0"], "rmsnorm-conformance-no-such-dist"),
    (["--with", "keras==3.9.0", "--pip-arg", "--isolated", "--pip-arg", "--index-url", "--pip-arg",
      "http://127.0.0.1:9/simple", "--pip-arg", "--retries", "--pip-arg", "1"], "could not be reached"),
    (["--with", "torch==2.5.0"], "torch cannot vary from PyPI"),
    (["--with", "keras>=3"], "give PKG==VERSION"),
    (["--pip-arg", "--pre"], "give --with PKG==VERSION too"),
    (["--with", "keras==3.9.0", "--executor", "ray"], "not supported with --executor ray"),
    (["--python", "/no/such/python"], "no such executable"),
])
def test_bad_version_input_is_one_line_and_loses_nothing(cache, tmp_path, args, says):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("kept")
    p = run_cli("run", "--adapters", "keras-numpy", "--case", F64, "--out", str(out), "--cache-dir", str(cache), *args)
    assert p.returncode == 2, p.stdout + p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("conformance: error:")]
    assert len(errors) == 1 and says in errors[0], p.stderr
    assert sorted(os.listdir(out)) == ["keep.txt"] and (out / "keep.txt").read_text() == "kept"


def test_cache_prune_command(tmp_path):
    top = overlays.root(tmp_path)
    fake_overlay(top, "a" * 16, 4000, time.time() - 10)
    fake_overlay(top, "b" * 16, 4000, time.time())
    p = run_cli("cache", "prune", "--max-size", "5K", "--cache-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "removed 1 overlay folder(s)" in p.stdout and (top / ("b" * 16)).exists()
    p = run_cli("cache", "prune", "--max-size", "5Q", "--cache-dir", str(tmp_path))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    p = run_cli("cache", "prune", "--cache-dir", str(tmp_path / "none"))
    assert p.returncode == 0 and "no overlays" in p.stdout
