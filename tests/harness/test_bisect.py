"""`conformance bisect` end to end, offline: tinykernel's releases as wheels in a local folder
(tests/planted/wheels.py: 0.2 puts epsilon outside the square root, 0.2.5 does not install, 0.3
keeps the bug), served with --pip-arg --no-index --pip-arg --find-links DIR, run through a user
adapter that imports tinykernel and reports its version (tests/planted/versioned.py)."""
import json

import pytest

from tests.planted.wheels import ADAPTER, CASE, BROKEN, FIRST_BAD, LAST_GOOD, Index


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return Index(tmp_path_factory.mktemp("tinykernel"))


@pytest.fixture(scope="module")
def bisected(index):
    out = index.folder / "bisect"
    p = index.cli("bisect", "--package", "tinykernel", "--adapter", ADAPTER, "--case", CASE, "--check", "forward",
                  *index.args(), "--out", str(out))
    return p, out


def test_bisect_names_the_release_that_introduced_the_bug(bisected):
    p, out = bisected
    assert p.returncode == 0, p.stdout + p.stderr
    line = p.stdout.splitlines()[0]
    assert line.startswith(f"tinykernel {FIRST_BAD} changes forward of {CASE} on tinykernel from pass to fail ("), line
    assert "epsilon" in line and f"; {LAST_GOOD} is the last with the old outcome" in line
    assert line.endswith(" s)") and "(4 versions tried in " in line
    data = json.loads((out / "bisect.json").read_text())
    assert (data["package"], data["first_changed"], data["last_same"], data["verdict"]) == (
        "tinykernel", FIRST_BAD, LAST_GOOD, "changed")
    tried = {t["version"]: t for t in data["tried"]}
    assert set(tried) == {"0.1", "0.2", "0.2.5", "0.3"}
    assert tried[BROKEN]["skipped"].startswith("does not install: ") and "tinykernel-missing-dependency" in tried[BROKEN]["skipped"]
    assert tried["0.1"]["outcome"] == [{"adapter": "tinykernel", "case": CASE, "check": "forward", "status": "pass",
                                        "finding": None}]
    assert [o["finding"] for o in tried["0.3"]["outcome"]] == ["forward/eps-outside-sqrt"]
    for v in ("0.1", "0.2", "0.3"):  # the version each worker really imported
        assert tried[v]["imported"]["tinykernel"]["tinykernel"] == v
    md = (out / "bisect.md").read_text()
    assert line in md and f"| {BROKEN} | skipped: does not install" in md


def test_bisect_a_finding_of_a_run_that_does_not_change_in_the_range(index, bisected):
    _, out = bisected
    run = out / "runs" / "tinykernel-0.3"
    again = index.folder / "bisect-finding"
    p = index.cli("bisect", "--package", "tinykernel", "--finding", "forward/eps-outside-sqrt", "--from", str(run),
                  "--versions", "0.2..0.3", *index.args(), "--out", str(again))
    assert p.returncode == 1, p.stdout + p.stderr
    line = p.stdout.splitlines()[0]
    assert line.startswith("tinykernel: finding forward/eps-outside-sqrt (forward of ") and "gives the same outcome" in line, line
    data = json.loads((again / "bisect.json").read_text())
    assert data["verdict"] == "same" and data["first_changed"] is None
    assert [t["version"] for t in data["tried"]] == ["0.2", "0.3"]  # the ends agree: nothing between is tried


@pytest.mark.parametrize("args, says", [
    (["--versions", "0.1-0.3"], "must be FIRST..LAST"),
    (["--versions", "0.1..0.9"], "tinykernel 0.9 is not a stable release the package index has"),
    (["--good", "0.1"], "--good and --bad go together"),
    (["--versions", "0.3..0.1"], "0.3 comes after 0.1"),
])
def test_bad_ranges_are_input_errors(index, tmp_path, args, says):
    p = index.cli("bisect", "--package", "tinykernel", "--adapter", ADAPTER, "--case", CASE, *args, *index.args(),
                  "--out", str(tmp_path / "out"))
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("conformance: error: ") and says in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_package_and_unknown_finding_are_input_errors(index, bisected, tmp_path):
    p = index.cli("bisect", "--package", "no-such-kernel-pkg", "--adapter", ADAPTER, "--case", CASE, *index.args(),
                  "--out", str(tmp_path / "a"))
    assert p.returncode == 2 and "no-such-kernel-pkg" in p.stderr, p.stdout + p.stderr
    _, out = bisected
    p = index.cli("bisect", "--package", "tinykernel", "--finding", "forward/no-such-finding", "--from",
                  str(out / "runs" / "tinykernel-0.3"), *index.args(), "--out", str(tmp_path / "b"))
    assert p.returncode == 2 and "is not a finding of" in p.stderr and "forward/eps-outside-sqrt" in p.stderr, p.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
