"""The fuzzer: reproducible for a seed, finds and shrinks a planted bug, replays with `run`."""
import json
import re


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
    # The shrunk case must be exactly that, with every other dimension at its simplest.
    p = cli("fuzz", "--adapter", "tests.planted.adapters:Correct", "--seed", "1", "--budget", "5", "--out", str(tmp_path))
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
