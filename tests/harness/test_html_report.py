"""report.html in headless Chromium: the sections render, no console errors, a screenshot is saved.

Chromium comes from Debian's `chromium` package (.ci/run installs it).  The
screenshot is kept in out/screenshots/report.png for people to look at.
"""
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--window-size=1400,2000"]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Chromium is missing: apt-get install chromium (.ci/run does)"
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("html")
    run_cli("run", "--suite", "smoke", "--adapters", "numpy-reference", "--adapter",
            "tests.planted.adapters:SloppyRsqrt", "--out", str(out))
    return out / "report.html"


def _browse(page: Path, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp / 'profile'}", *mode, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def test_report_renders_every_section_without_console_errors(report, tmp_path):
    p = _browse(report, tmp_path, "--dump-dom")
    dom = p.stdout
    assert 'data-ready="yes"' in dom, "the page's own check found a section missing"
    for section in ("findings", "heatmap-forward", "heatmap-gradients", "agreement", "defaults", "failures", "versions"):
        assert f'id="{section}"' in dom
    assert "planted-sloppy-rsqrt" in dom and "numpy-reference" in dom
    console = [line for line in p.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console


def test_findings_table_filters_by_adapter_and_class(report, tmp_path):
    page = report.with_name("report.html")
    everything = _browse(page, tmp_path, "--dump-dom").stdout
    rows = everything.count('class="finding"')
    assert rows >= 2 and 'data-class="precision"' in everything  # the sloppy rsqrt's finding
    filtered = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--dump-dom",
                               page.as_uri() + "#class=precision"], capture_output=True, text=True, timeout=120).stdout
    shown = filtered.count('class="finding" data-adapters') - filtered.count("hidden=")
    assert 0 < shown < rows
    assert '<span id="findings-shown">' + str(shown) + "</span>" in filtered


def test_screenshot(report, tmp_path):
    shot = ROOT / "out" / "screenshots" / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    _browse(report, tmp_path, f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real page, not a blank one
