"""`conformance matrix` end to end, offline, on tinykernel's releases (tests/planted/wheels.py):
one run folder per version set, matrix.md/.html/.json (the page in headless Chromium, as
test_html_report.py does), an interrupted matrix continued with --resume; and the rendering
(reports/matrix.py) as a pure function of results."""
import json
import signal
import subprocess
import time

import pytest

from tests.planted.wheels import ADAPTER, CASE, Index

OTHER_CASE = "f32/2x8x8/ax-1/eps1e-06/normal/rand/s0"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return Index(tmp_path_factory.mktemp("tinykernel-matrix"))


def _matrix(index, out, versions, *extra):
    return ["matrix", "--vary", f"tinykernel={versions}", "--adapter", ADAPTER, "--adapters", "numpy-reference",
            "--case", CASE, "--case", OTHER_CASE, *index.args(), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def two_versions(index):
    out = index.folder / "matrix"
    p = index.cli(*_matrix(index, out, "0.3,0.1"))  # given newest first: run oldest first
    return p, out


def test_matrix_writes_a_run_per_version_set_and_the_three_files(two_versions):
    p, out = two_versions
    assert p.returncode == 1, p.stdout + p.stderr  # the newest set, 0.3, has the bug
    assert sorted(x.name for x in out.iterdir() if x.is_dir()) == ["logs", "tinykernel-0.1", "tinykernel-0.3"]
    for label in ("tinykernel-0.1", "tinykernel-0.3"):
        assert (out / label / "results.jsonl").is_file() and (out / label / "report.md").is_file()
    data = json.loads((out / "matrix.json").read_text())
    assert [s["label"] for s in data["sets"]] == ["tinykernel-0.1", "tinykernel-0.3"]
    assert [s["status"] for s in data["sets"]] == ["finished", "finished"]
    rows = {f["id"]: f for f in data["findings"]}
    cells = rows["forward/eps-outside-sqrt"]["cells"]
    assert cells[0] == {"state": "absent"} and cells[1]["state"] == "present" and cells[1]["results"] >= 1
    (t,) = data["transitions"]
    assert (t["from"], t["to"]) == ("tinykernel-0.1", "tinykernel-0.3")
    assert "forward/eps-outside-sqrt" in [f["id"] for f in t["new"]] and t["resolved"] == []
    assert data["imported"]["tinykernel"][0]["tinykernel"] == "0.1" and data["imported"]["tinykernel"][1]["tinykernel"] == "0.3"
    assert data["mismatches"] == []
    rates = data["pass_rates"]
    assert rates["numpy-reference"][0]["rate"] == 1.0 and rates["tinykernel"][1]["rate"] < rates["tinykernel"][0]["rate"]
    md = (out / "matrix.md").read_text()
    assert md.startswith("# Conformance matrix\n\n**newest tinykernel-0.3: FAIL")
    assert "| forward: epsilon is added outside the square root `forward/eps-outside-sqrt` | semantics | — |" in md
    assert "### tinykernel-0.1 → tinykernel-0.3" in md and "- new: **forward: epsilon" in md
    assert "newest tinykernel-0.3: FAIL" in p.stdout and "wrote " in p.stdout


def test_matrix_html_renders_in_a_browser(two_versions, tmp_path):
    from tests.harness.test_html_report import FLAGS, _chromium

    _, out = two_versions
    page = out / "matrix.html"
    text = page.read_text()
    assert "<link" not in text and "src=" not in text and "http" not in text.replace("http-equiv", "")  # self-contained
    p = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert 'data-ready="yes"' in p.stdout, "the page's own check found a section missing"
    for section in ("sets", "findings", "pass-rates", "transitions", "imported"):
        assert f'id="{section}"' in p.stdout
    assert not [line for line in p.stderr.splitlines() if "CONSOLE" in line]
    changing = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--dump-dom",
                               page.as_uri() + "#changing"], capture_output=True, text=True, timeout=120).stdout
    rows = changing.count('class="finding"')
    shown = rows - changing.count('class="finding" data-changing="no" hidden')
    assert rows >= 1 and 0 < shown <= rows


def test_an_interrupted_matrix_resumes(index):
    out = index.folder / "interrupted"
    proc = index.popen(*_matrix(index, out, "0.1,0.2,0.3"), TINYKERNEL_LOAD_DELAY="0.2=8")
    state = out / "matrix.state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if json.loads(state.read_text())["sets"].get("tinykernel-0.1", {}).get("status") == "finished":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("the first version set never finished")
    time.sleep(1.0)  # the second set's run has started (its worker will sleep in load())
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "INTERRUPTED" in stdout and "Traceback" not in stderr
    data = json.loads((out / "matrix.json").read_text())
    assert [s["status"] for s in data["sets"]][0] == "finished"
    assert all(s["status"] in ("interrupted", "not run") for s in data["sets"][1:]), data["sets"]
    first = (out / "tinykernel-0.1" / "results.jsonl").read_bytes()
    first_mtime = (out / "tinykernel-0.1" / "results.jsonl").stat().st_mtime_ns

    refused = index.cli(*_matrix(index, out, "0.1,0.2,0.3"))
    assert refused.returncode == 2 and "--resume" in refused.stderr, refused.stderr
    other = index.cli(*_matrix(index, out, "0.1,0.3"), "--resume")
    assert other.returncode == 2 and "was started with other --vary lists" in other.stderr, other.stderr

    p = index.cli(*_matrix(index, out, "0.1,0.2,0.3"), "--resume")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "resuming: 1 done, 2 to go" in p.stderr
    assert (out / "tinykernel-0.1" / "results.jsonl").read_bytes() == first
    assert (out / "tinykernel-0.1" / "results.jsonl").stat().st_mtime_ns == first_mtime  # not run again
    data = json.loads((out / "matrix.json").read_text())
    assert [s["status"] for s in data["sets"]] == ["finished"] * 3
    assert [t["to"] for t in data["transitions"]] == ["tinykernel-0.2", "tinykernel-0.3"]
    assert data["transitions"][1]["new"] == [] and data["transitions"][1]["resolved"] == []


@pytest.mark.parametrize("vary, says", [
    ("tinykernel", "must be PACKAGE=VERSION"),
    ("tinykernel=0.1,0.1", "lists a version twice"),
    ("tinykernel=0.1,0.9", "the package index has no 0.9"),
])
def test_bad_vary_is_an_input_error(index, tmp_path, vary, says):
    p = index.cli("matrix", "--vary", vary, "--adapter", ADAPTER, "--case", CASE, *index.args(), "--out", str(tmp_path / "m"))
    assert p.returncode == 2 and says in p.stderr, p.stdout + p.stderr
    assert not (tmp_path / "m").exists()


# -- the rendering, from results alone ---------------------------------------------------------

def _results(findings_by_adapter: dict, versions: dict):
    from conformance.reports.results import Results

    records = []
    for adapter, failing in findings_by_adapter.items():
        records.append({"record": "result", "adapter": adapter, "case": "f32/4/ax-1/eps1e-06/normal/rand/s0",
                        "check": "grad_x", "status": "pass", "shape": [4]})
        for n, fid in enumerate(failing):
            records.append({"record": "result", "adapter": adapter, "case": f"f32/{4 + n}/ax-1/eps1e-06/normal/rand/s0",
                            "check": "forward", "status": "fail", "shape": [4 + n], "finding": fid,
                            "diagnosis": {"id": fid.split("/")[1], "class": "semantics", "detail": ""}})
    return Results(records, {a: {"adapter": a, "versions": v} for a, v in versions.items()})


def test_matrix_data_states_and_transitions():
    from conformance.reports.matrix import matrix, newest_failed, render_html, render_markdown

    sets = [
        {"label": "keras-3.0.0", "requested": {"keras": "3.0.0"}, "status": "finished",
         "results": _results({"keras-jax": ["forward/eps-outside-sqrt"]}, {"keras-jax": {"keras": "3.0.0"}})},
        {"label": "keras-3.1.0", "requested": {"keras": "3.1.0"}, "status": "failed", "reason": "does not install",
         "results": None},
        {"label": "keras-3.2.0", "requested": {"keras": "3.2.0"}, "status": "finished",
         "results": _results({"keras-jax": ["forward/eps-outside-sqrt", "forward/eps-outside-sqrt", "forward/mean-subtracted"]},
                             {"keras-jax": {"keras": "3.1.9"}})},
    ]
    data = matrix(sets)
    rows = {f["id"]: [c["state"] for c in f["cells"]] for f in data["findings"]}
    assert rows == {"forward/eps-outside-sqrt": ["present", "not run", "changed"],
                    "forward/mean-subtracted": ["absent", "not run", "present"]}
    (t,) = data["transitions"]  # the set that did not install is not a step
    assert (t["from"], t["to"]) == ("keras-3.0.0", "keras-3.2.0") and [f["id"] for f in t["new"]] == ["forward/mean-subtracted"]
    assert data["mismatches"] == [{"set": "keras-3.2.0", "adapter": "keras-jax", "package": "keras",
                                   "requested": "3.2.0", "imported": "3.1.9"}]
    assert data["pass_rates"]["keras-jax"][1] is None and data["pass_rates"]["keras-jax"][0]["rate"] == 0.5
    assert newest_failed(data)
    md = render_markdown(data)
    assert "failed: does not install" in md and "2 (changed)" in md and "imported keras 3.1.9, not the requested 3.2.0" in md
    page = render_html(data)
    assert page.startswith("<!doctype html>") and "td class='changed'" in page and "<script>" in page
    json.dumps(data)  # matrix.json


def test_the_diff_of_two_version_sets_reads_as_an_upgrade(index, two_versions, tmp_path):
    _, out = two_versions
    p = index.cli("diff", str(out / "tinykernel-0.1"), str(out / "tinykernel-0.3"), "--out", str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("**REGRESSED: ")
    assert lines[1] == "  version: tinykernel 0.1 -> 0.3 (tinykernel)"  # printed right after the verdict
    md = (tmp_path / "diff.md").read_text().splitlines()
    assert md[4:7] == ["## Version changes (1)", "", "- tinykernel 0.1 → 0.3 (tinykernel)"]  # first, after the verdict
    assert [x for x in md if x.startswith("## ")][0] == "## Version changes (1)"


def test_version_changes_are_grouped_by_package_change():
    from conformance.reports.diff import version_change_lines

    d = {"version_changes": [
        {"adapter": "keras-torch", "package": "keras", "baseline": "3.5.0", "current": "3.6.0"},
        {"adapter": "keras-jax", "package": "keras", "baseline": "3.5.0", "current": "3.6.0"},
        {"adapter": "keras-jax", "package": "ml-dtypes", "baseline": None, "current": "0.5.0"}]}
    assert version_change_lines(d) == ["keras 3.5.0 → 3.6.0 (keras-jax, keras-torch)", "ml-dtypes absent → 0.5.0 (keras-jax)"]
