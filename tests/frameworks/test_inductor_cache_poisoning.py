"""torch Inductor's cache (torch-compile) with its artifacts truncated gives the records of a run
with --no-cache: Inductor links and imports what it finds there unchecked (a CppCompileError, a
failed import), and a case that meets such an artifact is run once more without that cache
(conformance/execution/cache.py, adapters/_environment.py CACHE_LOAD_ERRORS), with one warning
line in the worker's log.  (The torch-onnx exports: test_cache_poisoning.py.)"""
import os

import pytest

from tests.frameworks.test_cache_poisoning import _finish, _start

pytestmark = pytest.mark.frameworks

CASE = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"


def test_truncated_inductor_artifacts_give_the_records_of_a_run_without_cache(tmp_path):
    run = ("--suite", "modes", "--adapters", "torch-compile", "--timeout", "300")  # later options win
    cache = tmp_path / "cache"
    baseline = _start(tmp_path, tmp_path / "nocache", [CASE], *run, "--no-cache")
    _finish(_start(tmp_path, tmp_path / "cold", [CASE], *run, "--cache-dir", str(cache)))
    nocache, _ = _finish(baseline)
    truncated = 0
    for folder, _, files in os.walk(cache / "inductor"):
        for name in files:
            if name.endswith((".so", ".py")):  # the compiled kernels and the graphs' wrappers
                path = os.path.join(folder, name)
                os.truncate(path, os.path.getsize(path) // 2)
                truncated += 1
    assert truncated >= 2
    poisoned, logs = _finish(_start(tmp_path, tmp_path / "poisoned", [CASE], *run, "--cache-dir", str(cache)))
    assert len(nocache) >= 8 and poisoned == nocache
    warnings = [line for line in logs.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "$TORCHINDUCTOR_CACHE_DIR failed to load" in warnings[0], logs[-3000:]
