"""The fuzzer: reproducible for a seed, finds and shrinks a planted bug, replays with `run`."""
import json
import os
import re
import subprocess
import sys

from tests.conftest import ROOT


def test_fuzz_finds_and_shrinks_a_planted_bug_reproducibly(cli, tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"fz{k}"
        p = cli("fuzz", "--adapter", "tests.planted.adapters:EpsOutsideSqrt", "--seed", "3", "--budget", "60", "--out", str(out))
        assert p.returncode == 1, p.stderr
        outs.append(((out / "fuzz.toml").read_text(), p.stdout.splitlines()[0]))
    assert outs[0] == outs[1]
    toml, stdout = outs[0]
    # Shrunk: every dimension at a simplest value except the epsilon that exposes the bug (which
    # plain dtype the shrinker settles on depends on the path it took).
    assert re.search(r'"(f16|bf16|f32|f64)/16/ax-1/eps', toml) and "/normal/ones/s0" in toml
    replay = cli("run", "--suite", str(tmp_path / "fz0" / "fuzz.toml"), "--adapter",
                 "tests.planted.adapters:EpsOutsideSqrt", "--out", str(tmp_path / "replay"))
    assert replay.returncode == 1
    lines = [json.loads(x) for x in (tmp_path / "replay" / "results.jsonl").read_text().splitlines()]
    assert any(r.get("status") == "fail" for r in lines)


def test_fuzz_of_the_numpy_kernel_finds_only_its_known_overflow(cli, tmp_path):
    # The planted "correct" kernel is the numpy reference: right on ordinary values, but
    # x**2 overflows for bfloat16/float32 inputs above sqrt(max) (a documented finding).
    # The shrunk case must be exactly that, with every other dimension at its simplest (the
    # budget counts the shrinking: 60 examples find it and shrink it that far).
    p = cli("fuzz", "--adapter", "tests.planted.adapters:Correct", "--seed", "1", "--budget", "60", "--out", str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    assert '"bf16/16/ax-1/eps0/huge/ones/s0"' in (tmp_path / "fuzz.toml").read_text()


def test_fuzz_time_budget_runs_rounds_until_spent(cli, tmp_path):
    p = cli("fuzz", "--adapter", "tests.planted.adapters:Correct", "--seed", "2", "--time", "3", "--out", str(tmp_path),
            timeout=120)
    assert p.returncode in (0, 1), p.stderr
    tried = int(p.stdout.split(": ", 1)[1].split(" examples")[0])
    assert tried >= 1


def test_fuzz_budget_and_time_together_is_a_usage_error(cli, tmp_path):
    p = cli("fuzz", "--adapters", "numpy-reference", "--budget", "5", "--time", "5", "--out", str(tmp_path))
    assert p.returncode == 2 and "not both" in p.stderr


COUNTING = """
import os

from tests.planted.adapters import EpsOutsideSqrt


class CountingEpsOutside(EpsOutsideSqrt):
    \"\"\"Epsilon outside the square root; writes a line for each case it is given (the pipeline
    asks supports() once per case; the offset form's layer, `offset` 1, is asked apart).\"\"\"

    name = "counting-eps-outside"

    def supports(self, spec):
        if not getattr(spec, "offset", 0.0):
            with open(os.environ["COUNT_FILE"], "a") as f:
                f.write(repr(spec.input_shape) + "\\n")
        return super().supports(spec)
"""


def test_fuzz_budget_counts_the_shrinking_too(tmp_path):
    # Seed 3 finds epsilon outside the square root early, and shrinking it takes more examples
    # than this budget (with --budget 60 too, every one is spent): the budget stops it, the
    # smallest failure found by then is reported, and the adapter itself saw exactly the
    # examples counted.
    (tmp_path / "counting_kernel.py").write_text(COUNTING)
    count = tmp_path / "count.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), "COUNT_FILE": str(count)}
    out = tmp_path / "fz"
    p = subprocess.run([sys.executable, "-m", "conformance.cli", "fuzz", "--adapter", "counting_kernel:CountingEpsOutside",
                        "--seed", "3", "--budget", "20", "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 1, p.stdout + p.stderr
    found = re.search(r"^counting-eps-outside: (\d+) examples; minimal failing case (\S+): ", p.stdout, re.M)
    assert found, p.stdout
    assert int(found[1]) == len(count.read_text().splitlines()) == 20
    assert "Flaky" not in p.stdout + p.stderr
    assert f'cases = ["{found[2]}"]' in (out / "fuzz.toml").read_text()
    failed = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {r["case"] for r in failed} == {found[2]} and any(r["status"] == "fail" for r in failed)
