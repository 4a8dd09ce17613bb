"""Benchmark (`make bench`): harness overhead per adapter, and the standard suite's cold wall time.

For each built-in adapter, in one process with its environment: a warm-up pass
over the standard suite's cases (compilation caches filled), then the same calls
through the harness (`evaluate`: materialize, build, call, grad, oracle, scoring,
JSON) and in a bare loop (materialize, build, call, grad).  Printed: cases per
second for both and harness / bare.  Then the whole standard suite through the
CLI with the default --jobs, cold (an empty compilation cache, imports included) and warm
(the same cache again), with each adapter's worker time; and `conformance list` without and
with --check.  Not a test: it prints.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from conformance.adapters import ALL


def _bench_one(ref: str) -> dict:
    from conformance.adapter import adapter_name, import_adapter
    from conformance.cases.case import Case, layer_spec, materialize
    from conformance.cases.suites import standard
    from conformance.evaluate import _in_tempdir, checks_for, evaluate

    cls = import_adapter(ref)
    adapter = cls()
    adapter.name = adapter_name(cls, ref)
    adapter.load()
    cases = [c for c in standard() if isinstance(c, Case) and not adapter.supports(layer_spec(c, materialize(c)))]

    def attempt(fn, *args):
        try:
            return fn(*args)
        except Exception:  # the same failures happen in the harness, which records them
            return None

    def bare():
        """The framework calls evaluate() makes, in the same order, without oracle, scoring or records."""
        for c in cases:
            a = materialize(c)
            layer = attempt(adapter.build, layer_spec(c, a))
            if layer is None:
                continue
            attempt(adapter.config, layer)
            attempt(adapter.call, layer, a.x)
            attempt(adapter.grad, layer, a.x, a.dy)
            if "structure" in checks_for(c):
                attempt(adapter.parameters, layer)
                for other in (attempt(adapter.rebuild, layer), attempt(_in_tempdir, adapter.save_load, layer)):
                    if other is not None:
                        attempt(adapter.call, other, a.x)
                        attempt(adapter.parameters, other)
                        attempt(adapter.config, other)

    def harness():
        for c in cases:
            json.dumps(evaluate(adapter, c))

    bare()  # warm-up: compilation caches
    timings = {}
    for name, fn in (("harness", harness), ("bare", bare), ("harness2", harness), ("bare2", bare)):
        start = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - start
    h = min(timings["harness"], timings["harness2"])
    b = min(timings["bare"], timings["bare2"])
    return {"adapter": adapter.name, "cases": len(cases), "harness_cps": len(cases) / h, "bare_cps": len(cases) / b, "ratio": h / b}


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(_bench_one(sys.argv[2])))
        return 0
    from conformance.adapter_refs import resolve, worker_env

    print(f"{'adapter':18s} {'cases':>5s} {'harness/s':>10s} {'bare/s':>10s} {'ratio':>6s}")
    for ref in ALL:
        (a,) = resolve([ref])
        env = worker_env(a)
        p = subprocess.run([sys.executable, "-m", "conformance.bench", "--one", ref], capture_output=True, text=True, env=env)
        if p.returncode:
            print(f"{ref:18s} failed: {p.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"{r['adapter']:18s} {r['cases']:5d} {r['harness_cps']:10.1f} {r['bare_cps']:10.1f} {r['ratio']:6.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        cold = _suite_run(tmp, "cold")  # an empty compilation cache (--cache-dir), then the same run on it
        warm = _suite_run(tmp, "warm")
    print(f"\nstandard suite, all {len(ALL)} built-in adapters, --jobs {os.cpu_count()}: "
          f"cold {cold['wall']:.1f} s, warm {warm['wall']:.1f} s wall")
    print(f"{'adapter':18s} {'cold/s':>7s} {'warm/s':>7s}  (worker seconds, summed over its parts)")
    for name in sorted(cold["adapters"], key=lambda n: -cold["adapters"][n]):
        print(f"{name:18s} {cold['adapters'][name]:7.1f} {warm['adapters'].get(name, float('nan')):7.1f}")
    for args in (["list"], ["list", "--check"]):
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True)
        print(f"conformance {' '.join(args)}: {time.monotonic() - start:.1f} s")
    return 0


def _suite_run(tmp: str, label: str) -> dict:
    """The standard suite through the CLI with the cache in `tmp`: wall time, and each adapter's
    worker seconds as its progress lines print them."""
    import re

    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--suite", "standard", "--adapters", "all",
                        "--cache-dir", os.path.join(tmp, "cache"), "--out", os.path.join(tmp, label)],
                       capture_output=True, text=True)
    wall = time.monotonic() - start
    per: dict[str, float] = {}
    for name, seconds in re.findall(r"^(\S+)\[\d+\]: .* in ([0-9.]+)s;", p.stdout + p.stderr, re.M):  # progress: stderr
        per[name] = per.get(name, 0.0) + float(seconds)
    return {"wall": wall, "adapters": per}


if __name__ == "__main__":
    sys.exit(main())
