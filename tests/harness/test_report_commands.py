"""The report commands (diff, merge, report) and the run options that shape results (--shard,
--xfail), on real runs of planted adapters.  Rendering from records in-process: tests/engine/test_reports.py."""
import json

PLANTED = "tests.planted.adapters:"


def test_planted_regression_is_named(cli, tmp_path):
    # Baseline: the correct kernel.  Current: the same adapter name made worse.
    cli("run", "--suite", "smoke", "--adapter", PLANTED + "Correct", "--out", str(tmp_path / "base"))
    cli("run", "--suite", "smoke", "--adapter", PLANTED + "CorrectButSloppy", "--out", str(tmp_path / "cur"))
    p = cli("diff", str(tmp_path / "base"), str(tmp_path / "cur"))
    assert p.returncode == 1
    d = json.loads((tmp_path / "cur" / "diff.json").read_text())
    assert d["regressions"] and all(r["adapter"] == "planted-correct" for r in d["regressions"])
    assert "regression: planted-correct f32/" in p.stdout
    # A run against itself is clean (in-process: tests/engine/test_reports.py).
    p = cli("diff", str(tmp_path / "base"), str(tmp_path / "base"), "--out", str(tmp_path / "same"))
    assert p.returncode == 0 and "CLEAN" in p.stdout, p.stdout + p.stderr
    # The other direction is an improvement, not a regression.
    p = cli("diff", str(tmp_path / "cur"), str(tmp_path / "base"), "--out", str(tmp_path / "rev"))
    assert p.returncode == 0
    assert json.loads((tmp_path / "rev" / "diff.json").read_text())["improvements"]


def test_diff_of_unreadable_input_exits_2(cli, tmp_path):
    p = cli("diff", str(tmp_path / "nope"), str(tmp_path / "nope2"))
    assert p.returncode == 2 and "cannot read results file" in p.stderr


def test_defaults_table_shows_each_adapters_epsilon(cli, tmp_path):
    out = tmp_path / "d"
    cli("run", "--suite", "smoke", "--adapter", PLANTED + "Correct", "--out", str(out))
    d = json.loads((out / "report.json").read_text())["defaults"]
    assert d["epsilon"]["planted-correct"]["float32"] == 1e-6
    assert d["output_dtype"]["planted-correct"]["float16"] == "float16"
    assert "## Defaults (observed)" in (out / "report.md").read_text()


def _keyed(path):
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return {(r["adapter"], r["case"], r["check"]): (r["status"], r["metrics"]) for r in lines if r["record"] == "result"}


def test_merged_shards_equal_a_single_run(cli, tmp_path):
    args = ["--suite", "smoke", "--adapters", "numpy-reference", "--adapter", PLANTED + "SloppyRsqrt"]
    cli("run", *args, "--out", str(tmp_path / "whole"))
    sizes = []
    for k in (1, 2, 3):
        cli("run", *args, "--shard", f"{k}/3", "--out", str(tmp_path / f"s{k}"))
        sizes.append(len(_keyed(tmp_path / f"s{k}" / "results.jsonl")))
    assert all(sizes) and sum(sizes) == len(_keyed(tmp_path / "whole" / "results.jsonl"))
    p = cli("merge", *(str(tmp_path / f"s{k}") for k in (1, 2, 3)), "--out", str(tmp_path / "merged"))
    assert p.returncode == 1  # the sloppy adapter fails, in the merge as in the whole run
    assert _keyed(tmp_path / "merged" / "results.jsonl") == _keyed(tmp_path / "whole" / "results.jsonl")
    assert (tmp_path / "merged" / "report.md").read_text().split("\n", 4)[:3] == \
        (tmp_path / "whole" / "report.md").read_text().split("\n", 4)[:3]


def test_xfail_turns_known_failures_into_xfail(cli, tmp_path):
    xf = tmp_path / "known.toml"
    xf.write_text(
        '[[xfail]]\ncase = "f32/*"\nadapter = "planted-*"\nreason = "approximate rsqrt"\n'
        '[[xfail]]\ncase = "f16/*"\ncheck = "forward"\nreason = "listed but passes"\n'
        '[[xfail]]\ncase = "nothing/*"\nreason = "stale entry"\n'
    )
    out = tmp_path / "x"
    p = cli("run", "--suite", "smoke", "--adapter", PLANTED + "SloppyRsqrt", "--xfail", str(xf), "--out", str(out))
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    statuses = {r["status"] for r in lines if r["record"] == "result"}
    assert {"xfail", "xpass"} <= statuses
    assert all(r["xfail_reason"] for r in lines if r.get("status") in ("xfail", "xpass"))
    assert "matched no result: case='nothing/*'" in p.stderr
    # float64 failures are not listed: the run still fails
    assert p.returncode == 1


def test_bad_shard_and_xfail_file_exit_2(cli, tmp_path):
    assert cli("run", "--adapters", "numpy-reference", "--shard", "3/2").returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[[xfail]]\ncase = "x"\n')
    p = cli("run", "--adapters", "numpy-reference", "--xfail", str(bad))
    assert p.returncode == 2 and "needs `case` or `finding` (or both) and `reason`" in p.stderr
