"""Hostile inputs (issue 9): results files reports do not understand, FIFOs, conflicting merges, and
bad arguments, suites and xfail files: each one line on stderr and exit 2, nothing written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.harness.processes import cli, usage_error


# -- reports validate their input -------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("good")
    run = cli(tmp, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--out", str(tmp / "out"))
    assert run.proc.returncode == 0
    return (tmp / "out" / "results.jsonl").read_text().splitlines(keepends=True)


def _edit(lines: list[str], k: int, **changes) -> list[str]:
    out = list(lines)
    out[k] = json.dumps({**json.loads(out[k]), **changes}) + "\n"
    return out


@pytest.mark.parametrize("mangle, says", [
    (lambda ls: _edit(ls, 5, status="passed"), "line 6 is not a valid record: unknown status 'passed'"),
    (lambda ls: _edit(ls, 5, status=3), "field 'status' is int, expected str"),
    (lambda ls: _edit(ls, 5, metrics="big"), "field 'metrics' is str, expected dict"),
    (lambda ls: ls + ls[2:], "repeats the result of line"),
    (lambda ls: ls[:-1] + [ls[-1][:40]], "is truncated (a run killed mid-write?)"),
    (lambda ls: ls[:3] + ["\xff not utf-8\n"] + ls[3:], "line 4 is not UTF-8"),
    (lambda ls: [], "holds no results"),
    (lambda ls: _edit(ls, 5, check="nope"), "unknown check 'nope'"),
    (lambda ls: _edit(ls, 5, case="../../etc"), "field 'case' is not a case id"),
    (lambda ls: _edit(ls, 0, expected=10**30), "`expected` is not `cases` times the number of `adapters`"),
    (lambda ls: _edit(ls, 5, metrics={"max_ulp": "0.1"}), "in 'metrics': field 'max_ulp' is str"),
    (lambda ls: _edit(ls, 5, metrics={"out_dtype": 5}), "in 'metrics': field 'out_dtype' is int"),
])
def test_report_refuses_input_it_does_not_understand_and_writes_nothing(tmp_path, good_run, mangle, says):
    path = tmp_path / "results.jsonl"
    data = "".join(mangle(good_run))
    path.write_bytes(data.encode("utf-8").replace("\xff".encode(), b"\xff"))
    usage_error(cli(tmp_path, "report", str(path)), says)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["results.jsonl"]


@pytest.mark.parametrize("command", [["report", "{r}"], ["merge", "{r}", "--out", "{tmp}/m"], ["diff", "{r}", "{r}"]])
def test_a_fifo_is_not_read_as_results(tmp_path, command):
    os.mkfifo(tmp_path / "results.jsonl")
    run = cli(tmp_path, *[a.format(r=tmp_path / "results.jsonl", tmp=tmp_path) for a in command], timeout=60)
    usage_error(run, "is not a regular file")


def test_salvage_keeps_the_complete_lines_of_a_truncated_file(tmp_path, good_run):
    path = tmp_path / "results.jsonl"
    path.write_text("".join(good_run[:-1]) + good_run[-1][:40])
    run = cli(tmp_path, "report", str(path), "--salvage")
    assert run.proc.returncode == 1  # an incomplete run is never a pass
    assert "INTERRUPTED after" in run.stdout


def test_merge_refuses_conflicts_and_its_own_input_and_keeps_versions_per_part(tmp_path, good_run):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(good_run))
    b.write_text("".join(_edit(good_run, 5, status="fail", message="planted")))
    usage_error(cli(tmp_path, "merge", str(a), str(b), "--out", str(tmp_path / "m")), "disagree on")
    assert cli(tmp_path, "merge", str(a), str(b), "--out", str(tmp_path / "m"), "--prefer", "first").proc.returncode == 0
    usage_error(cli(tmp_path, "merge", str(a), str(tmp_path / "m"), "--out", str(tmp_path / "m")), "would replace the input")
    meta = json.loads(good_run[1])
    b.write_text("".join(_edit(good_run, 1, versions={**meta["versions"], "numpy": "0.0.1"})))
    run = cli(tmp_path, "merge", str(a), str(b), "--out", str(tmp_path / "v"))
    assert run.proc.returncode == 0, run.stderr
    assert f"numpy DIFFERS: {meta['versions']['numpy']} ({a}); 0.0.1 ({b})" in (tmp_path / "v" / "report.md").read_text()
    usage_error(cli(tmp_path, "merge", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "e")), "cannot read")


def test_diff_with_nothing_to_compare_is_an_input_error(tmp_path, good_run):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "cur.jsonl").write_text("".join(good_run))
    usage_error(cli(tmp_path, "diff", str(tmp_path / "empty.jsonl"), str(tmp_path / "cur.jsonl")), "hold no results")


# -- bad input: one line, exit 2 ------------------------------------------------------------------
def _file(name: str, content: bytes):
    def make(tmp: Path) -> str:
        (tmp / name).write_bytes(content)
        return str(tmp / name)
    return make


NUMPY = ["--adapters", "numpy-reference"]


@pytest.mark.parametrize("argv, says", [
    (["run", "--suite", _file("s.toml", b"cases = ['\xff']")], "is not UTF-8 text"),
    (["run", "--suite", _file("s.toml", b"a = " + b"[" * 5000 + b"]" * 5000)], "cannot be read: RecursionError"),
    (["run", "--suite", _file("s.toml", b"cases = []\nx = " + b"9" * 5000)], "Exceeds the limit"),
    (["run", "--suite", "/dev/zero"], "is not a regular file"),
    (["run", "--xfail", _file("x.toml", b"xfail = [1, 2]")], "each entry is a [[xfail]] table"),
    (["run", "--xfail", _file("x.toml", b"\xfe\xff")], "is not UTF-8 text"),
    (["run", "--timeout", "-1"], "'-1' must be a finite number > 0"),
    (["run", "--timeout", "inf"], "'inf' must be a finite number > 0"),
    (["run", "--timeout", "nan"], "'nan' must be a finite number > 0"),
    (["run", "--timeout", "0"], "'0' must be a finite number > 0"),
    (["fuzz", "--budget", "0"], "'0' must be an integer from 1"),
    (["fuzz", "--budget", "-5"], "'-5' must be an integer from 1"),
    (["fuzz", "--time", "0"], "'0' must be a finite number > 0"),
    (["run", "--adapters", ","], "names no adapter"),
    (["run", "--adapters", ""], "names no adapter"),
    (["run", "--case", "f32/-4x32/ax-1/eps1e-06/normal/rand/s0"], "must be non-negative integers"),
    (["run", "--case", "f32/4x32/ax-1/eps1e-06/normal/rand/s-1"], "seed -1 must be an integer from 0"),
    (["run", "--case", "f32/" + "x".join(["1"] * 70) + "/ax-1/eps1e-06/normal/rand/s0"], "beyond the suite's limits"),
    (["run", "--case", "f32/４x３２/ax-1/eps1e-06/normal/rand/s0"], "write 'f32/4x32/ax-1/eps1e-06/normal/rand/s0'"),
    (["run", "--case", "f32/4x32/ax-1/eps1e-6/normal/rand/s0"], "write 'f32/4x32/ax-1/eps1e-06/normal/rand/s0'"),
    (["run", "--case", "f32/4x32/ax-1/eps1e-06/normal/rand/s1_000"], "write 'f32/4x32/ax-1/eps1e-06/normal/rand/s1000'"),
    (["run", "--suite", _file("g.toml", b"[[grid]]\nlayouts = [{shape = [8.9], axis = [-1]}]")], "must be a list of integers"),
    (["run", "--suite", _file("g.toml", b"[[grid]]\nlayouts = [{shape = [true], axis = [-1]}]")], "must be a list of integers"),
    (["run", "--suite", _file("g.toml", b"[[grid]]\nseeds = [\"3\"]")], "`seeds` holds '3'"),
    (["run", "--suite", _file("g.toml", b"[[grid]]\nepsilons = [true]")], "`epsilons` holds True"),
    (["run", "--case", "f32/0x100000000000000/ax1/eps1e-06/normal/rand/s0"], "beyond the suite's limits"),
    (["run", "--shard", "5/99999999999999"], "selects none of the suite's cases"),
    (["run", "--shard", "\u0661/\u0662"], "must be K/N"),
    (["run", "--xfail", _file("x.toml", b'[[xfail]]\ncase = "*"\ncheck = "nosuch"\nreason = "r"')], "matches no check"),
    (["run", "--xfail", _file("x.toml", b'[[xfail]]\ncase = "*"\nreason = " "')], "`reason` is empty"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, says):
    argv = [a(tmp_path) if callable(a) else a for a in argv]
    extra = NUMPY if argv[0] in ("run", "fuzz") and "--adapters" not in argv else []
    out = tmp_path / "out"
    usage_error(cli(tmp_path, *argv, *extra, "--out", str(out)), says)
    assert not out.exists()
