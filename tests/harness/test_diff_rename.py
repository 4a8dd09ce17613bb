"""`conformance diff --rename OLD=NEW`: a run of one adapter name compared with a run of another;
the console lists every regression up to REGRESSIONS_PRINTED, then says how many more diff.md has."""
import json

import pytest

from conformance.commands.diff import REGRESSIONS_PRINTED

PLANTED = "tests.planted.adapters:"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("rename")
    # Baseline: two correct kernels.  Current: a sloppy kernel under the first one's name
    # (planted-correct) and another under a new name (planted-sloppy-rsqrt).
    for name, adapters in (("base", ("Correct", "tests.planted.correct:Regrouped")),
                           ("cur", ("CorrectButSloppy", "SloppyRsqrt"))):
        refs = [a if ":" in a else PLANTED + a for a in adapters]
        p = run_cli("run", "--suite", "smoke", *(x for r in refs for x in ("--adapter", r)), "--out", str(root / name))
        assert p.returncode in (0, 1), p.stdout + p.stderr
    return root


def test_rename_compares_the_named_adapters_and_every_regression_is_in_diff_md(cli, runs, tmp_path):
    out = tmp_path / "d"
    p = cli("diff", str(runs / "base"), str(runs / "cur"), "--rename", "correct-regrouped=planted-sloppy-rsqrt",
            "--out", str(out))
    assert p.returncode == 1, p.stdout + p.stderr
    d = json.loads((out / "diff.json").read_text())
    by = {a: [r for r in d["regressions"] if r["adapter"] == a] for a in ("planted-correct", "planted-sloppy-rsqrt")}
    assert by["planted-correct"] and by["planted-sloppy-rsqrt"]  # the renamed one is compared too
    assert len(d["regressions"]) > REGRESSIONS_PRINTED
    printed = [line for line in p.stdout.splitlines() if line.startswith("  regression: ")]
    assert len(printed) == REGRESSIONS_PRINTED
    more = len(d["regressions"]) - REGRESSIONS_PRINTED
    assert f"  ... {more} more in {out / 'diff.md'}" in p.stdout.splitlines()
    md = (out / "diff.md").read_text()
    assert sum(line.startswith("- **planted-") for line in md.split("## Regressions")[1].split("## Improvements")[0]
               .splitlines()) == len(d["regressions"])
    # The renamed adapter's findings are new ones of its new name, not a resolved/new pair of two names.
    assert not [f for f in d["resolved_findings"] if "correct-regrouped" in f["id"]]


def test_without_rename_another_name_is_missing_and_renames_combine(cli, runs, tmp_path):
    out = tmp_path / "d"
    p = cli("diff", str(runs / "base"), str(runs / "cur"), "--out", str(out))
    d = json.loads((out / "diff.json").read_text())
    assert p.returncode == 1 and {r["adapter"] for r in d["regressions"]} == {"planted-correct", "correct-regrouped"}
    missing = [r for r in d["regressions"] if r["adapter"] == "correct-regrouped"]
    assert missing and all(r["current"] == "missing" for r in missing)
    only = tmp_path / "only"
    p = cli("diff", str(runs / "base" / "results.jsonl"), str(runs / "cur"), "--out", str(only),
            "--rename", "correct-regrouped=planted-sloppy-rsqrt", "--rename", "planted-correct=planted-correct")
    d = json.loads((only / "diff.json").read_text())
    assert p.returncode == 1 and not [r for r in d["regressions"] if r["current"] == "missing"]


@pytest.mark.parametrize("rename, says", [
    ("correct-regrouped", "must be OLD=NEW"),
    ("=planted-sloppy-rsqrt", "must be OLD=NEW"),
    ("nosuch=planted-sloppy-rsqrt", "the baseline has no adapter 'nosuch' (it has correct-regrouped, planted-correct)"),
    ("correct-regrouped=nosuch", "the current results have no adapter 'nosuch'"),
    ("correct-regrouped=planted-correct", "planted-correct would be two of the baseline's adapters at once"),
])
def test_a_bad_rename_is_one_line_and_exit_2(cli, runs, tmp_path, rename, says):
    p = cli("diff", str(runs / "base"), str(runs / "cur"), "--rename", rename, "--out", str(tmp_path / "d"))
    assert p.returncode == 2 and says in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "d").exists()
