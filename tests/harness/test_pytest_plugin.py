"""The pytest plugin, as a kernel project would run it: a separate pytest process."""
import subprocess
import sys
from xml.etree import ElementTree as ET

from conformance.cases.suites import smoke
from conformance.adapter import provides
from conformance.checks.registry import BY_NAME, checks_for
from examples.my_kernel import MyRMSNorm
from tests.conftest import ROOT

N_RESULTS = sum(len(checks_for(c)) for c in smoke())  # one item per (case, check)
N_ITEMS = N_RESULTS + 1  # and the adapter's `coverage` item


def _pytest(tmp_path, *args):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *args],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)


def test_one_item_per_case_and_check_with_k_selection_and_junit(tmp_path):
    junit = tmp_path / "junit.xml"
    p = _pytest(tmp_path, "--conformance-adapter", "tests.planted.adapters:SloppyRsqrt", "-k", "f32 and forward and not offset",
                f"--junitxml={junit}", "-q")
    assert p.returncode == 1, p.stdout[-2000:]
    deselected = N_ITEMS - 12
    assert f"11 failed, 1 passed, {deselected} deselected" in p.stdout
    # node id `adapter::case::check`: junit's classname ends with the case, its name is the check
    cases = [(c.get("classname"), c.get("name")) for c in ET.parse(junit).getroot().iter("testcase")]
    assert any(k.endswith("f32/4x32/ax-1/eps1e-06/normal/rand/s0") and n == "forward" for k, n in cases), cases
    assert "conformance run --adapter tests.planted.adapters:SloppyRsqrt --case" in p.stdout  # the rerun line
    assert "\nrerun: " in p.stdout


def test_correct_adapter_passes_under_pytest(tmp_path):
    p = _pytest(tmp_path, "--conformance-adapter", "tests.planted.adapters:Correct", "-q")
    assert p.returncode == 0, p.stdout[-2000:]
    assert f"{N_ITEMS} passed" in p.stdout


def test_the_header_counts_the_collected_items(tmp_path):
    p = _pytest(tmp_path, "--conformance-adapter", "tests.planted.adapters:Correct")
    assert f"collected {N_ITEMS} items" in p.stdout


def test_the_readme_example_adapter_passes_under_pytest(tmp_path):
    p = _pytest(tmp_path, "--conformance-adapter", "examples.my_kernel:MyRMSNorm", "-q")
    assert p.returncode == 0, p.stdout[-2000:]
    counts = p.stdout.strip().splitlines()[-1]  # e.g. "124 passed, 15 skipped in 1.2s"
    passed = int(counts.split(" passed")[0].split()[-1])
    skipped = int(counts.split(" skipped")[0].split()[-1]) if "skipped" in counts else 0
    # The example declines non-trailing axes and has none of the fused forms: those items are skips.
    provided = sum(1 for c in smoke() for k in checks_for(c)
                   if BY_NAME[k].needs is None or provides(MyRMSNorm, BY_NAME[k].needs))
    assert passed + skipped == N_ITEMS and "failed" not in counts and 0 < passed <= provided, counts
