"""Benchmark (`make bench`): harness overhead per adapter, and the standard suite's cold wall time.

For each built-in adapter, in one process with its environment: a warm-up pass
over the standard suite's cases (compilation caches filled), then the same calls
through the harness (`evaluate`: materialize, build, call, grad, oracle, scoring,
JSON) and in a bare loop (materialize, build, call, grad).  Printed: cases per
second for both and harness / bare.  Then the whole standard suite through the
CLI with the default --jobs, cold (an empty compilation cache, imports included), warm (the
same cache again), warm with a worker process per adapter (what shared workers save), and a sweep
(SWEEP: a sample of the exhaustive suite, cold); the same warm, cold and sweep runs on a local Ray
instance (cases per second against the local runner); each adapter's worker time; an estimate from
the sweep of the exhaustive suite's cost on one machine and on N; and `conformance list` without
and with --check; an overlay of an older Keras (`run --with`) built cold and reused, and its size
and a `conformance bisect` over 15 Keras releases, cold and cached
(`python -m conformance.integrations.bench --versions`: that section alone); and the kernels suite's
harness ÷ bare and peak memory per case for numpy-reference and torch (`--kernels` alone).
Not a test: it prints.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from conformance.adapters import ALL


def _bench_one(ref: str) -> dict:
    from conformance.execution.loading import adapter_name, import_adapter
    from conformance.cases.case import Case, layer_spec, materialize
    from conformance.cases.suites import standard
    from conformance.checks.configuration import _in_tempdir
    from conformance.checks.pipeline import evaluate
    from conformance.checks.registry import checks_for

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


KERNEL_BENCH = ("numpy-reference", "torch")  # the adapters the kernels suite's overhead target names
# The peak memory target is judged on cases whose own arrays are at least this large: below it the
# process's fixed allocations (a framework's workspace, a compiled program) outweigh the case.
LARGE_MIB = 64
# Each case runs this many times, the fastest harness run and the fastest bare work counted (as the
# standard suite's benchmark does): this machine's first touch of fresh memory alone varies by
# seconds on the largest cases, a cost of the virtual machine, not of either loop.
KERNEL_RUNS = 2


def _peak_reset() -> None:
    """Start a new peak of this process's resident memory (Linux: VmHWM, reset by clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_mib() -> float:
    with open("/proc/self/status") as f:
        line = next(t for t in f if t.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _bare_peak(adapter, case) -> float:
    """The peak memory of the bare loop on a case (materialize, build, call, grad and, on a property
    case, jvp and hvp along a tangent; the adapter's own temporaries included), in bytes above the
    baseline: what the harness's peak is measured against."""
    import numpy as np

    from conformance.cases.case import layer_spec, materialize
    from conformance.checks import properties

    _peak_reset()
    base = _peak_mib()
    fresh = materialize(case)
    layer = adapter.build(layer_spec(case, fresh))
    adapter.call(layer, fresh.x)
    if callable(getattr(adapter, "grad", None)):
        adapter.grad(layer, fresh.x, fresh.dy)
    if properties.applies(case):
        v = np.ones(case.shape, case.precision.compute.np_dtype)
        for name, args in (("jvp", (fresh.x, v)), ("hvp", (fresh.x, fresh.dy, v))):
            if callable(getattr(adapter, name, None)):
                try:
                    getattr(adapter, name)(layer, *args)
                except NotImplementedError:
                    pass
    return (_peak_mib() - base) * 2**20


def _kernels_one(ref: str) -> dict:
    """The kernels suite through the harness, one case at a time: its wall time against the bare
    work it contains (materializing the case and the time inside the adapter's own methods, timed
    around every call the checks make), and each case's peak memory against its own arrays."""
    from conformance.adapter import OPTIONAL, REQUIRED
    from conformance.cases.case import Case, layer_spec, materialize
    from conformance.cases.suites import kernels
    from conformance.checks import properties
    from conformance.checks.pipeline import evaluate
    from conformance.execution.loading import adapter_name, import_adapter

    cls = import_adapter(ref)
    adapter = cls()
    adapter.name = adapter_name(cls, ref)
    adapter.load()
    inside = [0.0]

    def timed(method):
        def run(*args, **kw):
            start = time.perf_counter()
            try:
                return method(*args, **kw)
            finally:
                inside[0] += time.perf_counter() - start
        return run

    for name in (*REQUIRED, *OPTIONAL):
        if name not in ("load", "supports") and callable(getattr(adapter, name, None)):
            setattr(adapter, name, timed(getattr(adapter, name)))
    rows, harness, bare = [], 0.0, 0.0
    for case in kernels():
        if not isinstance(case, Case):
            continue
        start = time.perf_counter()
        arrays = materialize(case)
        made = time.perf_counter() - start
        if adapter.supports(layer_spec(case, arrays)):
            continue
        own = sum(a.nbytes for a in (arrays.x, arrays.dy)) * 2  # inputs, and outputs of their size
        if properties.applies(case) and case.rows:  # batch invariance hands over its largest launch too
            sizes, _ = properties.launch_sizes(case.shape[0])
            own *= max(1, max(sizes) / case.shape[0])
        del arrays
        walls, insides, peak = [], [], 0.0
        for _ in range(KERNEL_RUNS):
            _peak_reset()
            base = _peak_mib()
            inside[0] = 0.0
            start = time.perf_counter()
            json.dumps(evaluate(adapter, case))
            walls.append(time.perf_counter() - start)
            insides.append(inside[0])
            peak = max(peak, (_peak_mib() - base) * 2**20)
        wall, inner = min(walls), min(insides)
        harness, bare = harness + wall, bare + made + inner
        bare_peak = _bare_peak(adapter, case) if own >= LARGE_MIB * 2**20 else None  # after: the harness as timed
        rows.append({"case": case.id, "wall": wall, "bare": made + inner, "peak_mib": peak / 2**20,
                     "own_mib": own / 2**20, "peak_over_own": peak / own,
                     "bare_peak_over_own": None if bare_peak is None else bare_peak / own})
    large = [r for r in rows if r["own_mib"] >= LARGE_MIB] or rows
    return {"adapter": adapter.name, "cases": len(rows), "harness": harness, "bare": bare, "ratio": harness / bare,
            "rows": rows, "worst_peak": max(large, key=lambda r: r["peak_over_own"]),
            "largest_peak": max(rows, key=lambda r: r["peak_mib"])}


def _kernels() -> int:
    """`--kernels`: the kernels suite's harness ÷ bare and peak memory, per adapter of KERNEL_BENCH."""
    from conformance.execution.adapter_refs import resolve, worker_env

    print(f"kernels suite, one case at a time, each {KERNEL_RUNS} times (the fastest of each counted): harness ÷ "
          "bare (materialize + the adapter's own calls); peak "
          "memory above the process's baseline ÷ the case's input and output bytes (its largest launch's, for a "
          f"property case), the worst of the cases of at least {LARGE_MIB} MiB")
    for ref in KERNEL_BENCH:
        (a,) = resolve([ref])
        p = subprocess.run([sys.executable, "-m", "conformance.integrations.bench", "--kernels-one", ref],
                           capture_output=True, text=True, env=worker_env(a))
        if p.returncode:
            print(f"{ref:18s} failed: {p.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        w, top = r["worst_peak"], r["largest_peak"]
        bare_w = "" if w["bare_peak_over_own"] is None else f", the bare loop's {w['bare_peak_over_own']:.1f}x"
        print(f"{r['adapter']:18s} {r['cases']:3d} cases  harness {r['harness']:7.1f} s  bare {r['bare']:7.1f} s  "
              f"ratio {r['ratio']:5.2f}\n{'':18s} peak: worst {w['peak_over_own']:.1f}x of {w['own_mib']:.0f} MiB "
              f"({w['case']}{bare_w}); largest {top['peak_mib']:.0f} MiB, {top['peak_over_own']:.1f}x ({top['case']})")
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(_bench_one(sys.argv[2])))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--kernels-one":
        print(json.dumps(_kernels_one(sys.argv[2])))
        return 0
    if sys.argv[1:] == ["--versions"]:  # only the versions section
        return _versions()
    if sys.argv[1:] == ["--kernels"]:  # only the kernels section
        return _kernels()
    from conformance.execution.adapter_refs import resolve, worker_env

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"{'adapter':18s} {'cases':>5s} {'harness/s':>10s} {'bare/s':>10s} {'ratio':>6s}")
    for ref in ALL:
        (a,) = resolve([ref])
        env = worker_env(a)
        p = subprocess.run([sys.executable, "-m", "conformance.integrations.bench", "--one", ref], capture_output=True, text=True, env=env)
        if p.returncode:
            print(f"{ref:18s} failed: {p.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"{r['adapter']:18s} {r['cases']:5d} {r['harness_cps']:10.1f} {r['bare_cps']:10.1f} {r['ratio']:6.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        # Each Ray run right after its local twin (Ray's cold one on an empty cache of its own): a
        # shared machine's speed drifts over minutes, and the ratio should not measure that.
        ray = ray_cold = ray_sweep = None
        cold = _suite_run(tmp, "cold")  # an empty compilation cache (--cache-dir), then the same run on it
        if _has_ray():
            ray_cold = _suite_run(tmp, "ray-cold", "--executor", "ray", cache="ray-cache")
        warm = _suite_run(tmp, "warm")
        if _has_ray():
            ray = _suite_run(tmp, "ray", "--executor", "ray")
        isolated = _suite_run(tmp, "isolated", "--isolate-adapters")  # warm, a worker per adapter
        sweep = _suite_run(tmp, "sweep", cache="sweep-cache", suite=SWEEP)  # cold: its shapes are new
        if _has_ray():
            ray_sweep = _suite_run(tmp, "ray-sweep", "--executor", "ray", cache="ray-sweep-cache", suite=SWEEP)
    n = cold["results"]
    print(f"\nstandard suite, all {len(ALL)} built-in adapters ({n} adapter x case pairs), --jobs {os.cpu_count()}:")
    print(f"  cold (empty cache)        {cold['wall']:6.1f} s wall  (run {cold['run']:.1f} s)")
    print(f"  warm (second run)         {warm['wall']:6.1f} s wall  (run {warm['run']:.1f} s)")
    print(f"  warm, --isolate-adapters  {isolated['wall']:6.1f} s wall  (run {isolated['run']:.1f} s); shared workers save "
          f"{sum(isolated['adapters'].values()) - sum(warm['adapters'].values()):.1f} worker seconds "
          f"({isolated['workers']} worker processes -> {warm['workers']})")
    print(f"sweep: {' '.join(SWEEP[1:])} ({sweep['results']} adapter x case pairs, cold): "
          f"{sweep['wall']:.1f} s wall (run {sweep['run']:.1f} s)")
    if ray:
        for label, local, r in (("standard, warm", warm, ray), ("standard, cold", cold, ray_cold),
                                ("sweep, cold", sweep, ray_sweep)):
            k = local["results"]
            print(f"  --executor ray, {label:15s} {r['wall']:6.1f} s wall  (run {r['run']:.1f} s, the rest starting "
                  f"and stopping Ray)")
            print(f"    cases per second: local {k / local['run']:.1f}, ray {k / r['run']:.1f} (ray / local "
                  f"{local['run'] / r['run']:.2f}; with Ray's start and stop {local['wall'] / r['wall']:.2f})")
    else:
        print("  --executor ray: not measured (pip install 'rmsnorm-conformance[ray]')")
    print(f"{'adapter':18s} {'cold/s':>7s} {'warm/s':>7s} {'isolated/s':>10s}  (worker seconds, summed over its parts)")
    for name in sorted(cold["adapters"], key=lambda n: -cold["adapters"][n]):
        print(f"{name:18s} {cold['adapters'][name]:7.1f} {warm['adapters'].get(name, float('nan')):7.1f} "
              f"{isolated['adapters'].get(name, float('nan')):10.1f}")
    _exhaustive_estimate(sweep, warm)
    for args in (["list"], ["list", "--check"]):
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True)
        print(f"conformance {' '.join(args)}: {time.monotonic() - start:.1f} s")
    status = _versions()
    return _kernels() or status


VERSIONS_KERAS = "3.9.0"  # an older release than the pinned one (pure Python; its requirements are the base's)


def _versions() -> int:
    """`run --with`: an overlay of an older Keras built cold (an empty cache folder; mostly pip and the
    download; target <= 15 s) and reused (< 1 s), and its size on disk (docs/versions.md)."""
    from pathlib import Path

    from conformance.errors import UsageError
    from conformance.execution import overlays

    reqs = (overlays.Requirement("keras", VERSIONS_KERAS),)
    print(f"\nversions (run --with keras=={VERSIONS_KERAS}):")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            start = time.monotonic()
            folder = overlays.overlay(reqs, Path(tmp))
            cold = time.monotonic() - start
            start = time.monotonic()
            overlays.overlay(reqs, Path(tmp))
            reused = time.monotonic() - start
        except UsageError as exc:
            print(f"  not measured: {exc}")
            return 0
        size, what = overlays.size_of(folder), overlays.describe(folder)
    print(f"  overlay built cold        {cold:6.2f} s  (target <= 15 s){'' if cold <= 15 else '  OVER TARGET'}")
    print(f"  overlay reused            {reused:6.2f} s  (target < 1 s){'' if reused < 1 else '  OVER TARGET'}")
    print(f"  overlay on disk           {size / 2**20:6.1f} MiB ({what})")
    return _bisection()


# `conformance bisect` over 15 Keras releases (3.2.0 .. 3.9.2; keras.layers.RMSNormalization arrived in
# 3.9.0), one case on one adapter: cold (an empty cache: every overlay built) and cached.
BISECT = ("--package", "keras", "--adapters", "keras-torch", "--case", "f32/4x32/ax-1/eps1e-06/normal/rand/s0",
          "--check", "forward", "--versions", "3.2.0..3.9.2")


def _bisection() -> int:
    print(f"\nbisect ({' '.join(BISECT)}):")
    with tempfile.TemporaryDirectory() as tmp:
        for label, target in (("cold", 180), ("cached", 60)):
            start = time.monotonic()
            p = subprocess.run([sys.executable, "-m", "conformance.cli", "bisect", *BISECT, "--cache-dir",
                                os.path.join(tmp, "cache"), "--out", os.path.join(tmp, label)], capture_output=True, text=True)
            wall = time.monotonic() - start
            if p.returncode not in (0, 1):
                print(f"  {label}: not measured: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
                return 0
            print(f"  {label:6s} {wall:6.1f} s  (target <= {target} s){'' if wall <= target else '  OVER TARGET'}")
        print(f"  {p.stdout.splitlines()[0]}")
    return 0


# A sample of the exhaustive suite (136 of its 36,608 cases): what a sweep's cases cost, cold,
# for the Ray comparison and the exhaustive estimate.  About a minute on a 2-core machine.
SWEEP = ("--suite", "exhaustive", "--shard", "1/256")


def _has_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _exhaustive_estimate(sweep: dict, warm: dict) -> None:
    """What the exhaustive suite costs, from the sweep's seconds per case: a sample of the exhaustive
    suite's own cases, run cold as the whole suite would mostly be (its shapes are compiled once
    each); a machine like this one has os.cpu_count() cores, each running one task."""
    from conformance.cases.suites import SUITES

    cases = len(SUITES["exhaustive"]())
    per_case = {name: seconds / sweep["cases"] for name, seconds in sweep["adapters"].items()}
    total = sum(per_case.values()) * cases
    cores = os.cpu_count() or 1
    print(f"\nexhaustive suite ({cases} cases x {len(per_case)} adapters), estimated from the sweep's "
          f"seconds per case ({sum(per_case.values()):.3f} s per case for all adapters; the standard suite warm: "
          f"{sum(warm['adapters'].values()) / warm['cases']:.3f} s):")
    for machines in (1, 4, 16, 64):
        print(f"  {machines:3d} machine(s) of {cores} cores: {total / (cores * machines) / 3600:7.2f} h")


def _suite_run(tmp: str, label: str, *extra: str, cache: str = "cache", suite: tuple = ("--suite", "standard")) -> dict:
    """A suite (the standard one) through the CLI with the cache in `tmp`: wall time, the run's own time
    (its summary line; without starting Ray), worker processes, and each adapter's worker seconds
    as its progress lines print them."""
    import re

    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "conformance.cli", "run", *suite, "--adapters", "all",
                        "--cache-dir", os.path.join(tmp, cache), "--out", os.path.join(tmp, label), *extra],
                       capture_output=True, text=True)
    wall = time.monotonic() - start
    text = p.stdout + p.stderr  # progress lines: stderr
    per: dict[str, float] = {}
    for name, seconds in re.findall(r"^(\S+)\[\d+\]: .* in ([0-9.]+)s[;,]", text, re.M):
        per[name] = per.get(name, 0.0) + float(seconds)
    run = re.search(r"fail or error \(([0-9.]+)s\)", text)
    workers = re.search(r"^(\d+) (?:worker process|Ray actor)", text, re.M)
    cases = re.search(r"^running (\d+) cases x (\d+) adapter", text, re.M)
    if not (run and workers and cases):
        raise SystemExit(f"the {label} run did not finish: {text.strip().splitlines()[-3:]}")
    return {"wall": wall, "run": float(run[1]), "adapters": per, "workers": int(workers[1]), "cases": int(cases[1]),
            "results": int(cases[1]) * int(cases[2])}


if __name__ == "__main__":
    sys.exit(main())
