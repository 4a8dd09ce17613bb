"""The order the runner starts its tasks in: longest first, so the run does not end waiting on
one long task started last (on two cores, torch-onnx's cold exports alone take a minute).

A task's cost is estimated from the seconds per case its adapter took in the previous run that
used the same cache folder (`timings.json` there: a cold run's exports and compilations, a warm
run's cache hits).  The tasks of one worker group run one after another, so that the worker a
thread holds serves the next (adapter_refs.share_key).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

FILE = "timings.json"


def load(cache_dir: Path | None) -> dict[str, float]:
    """{adapter name: seconds per case} of the previous run; {} without one, or if unreadable."""
    if cache_dir is None:
        return {}
    try:
        data = json.loads((cache_dir / FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and v >= 0}


def order(tasks: list, history: dict[str, float], key) -> list:
    """Longest first, a worker group's tasks together (so one worker serves them in turn): groups
    by their summed estimated cost, tasks within a group by theirs.  A task without history
    counts as the longest of all, in its given order (built-ins are listed slowest first)."""
    longest = max([history.get(t.adapter.name, 0.0) * len(t.case_ids) for t in tasks] + [0.0])

    def cost(t) -> float:
        name = t.adapter.name
        return history[name] * len(t.case_ids) if name in history else longest + 1.0

    groups: dict = {}
    for t in tasks:
        groups.setdefault(key(t.adapter), []).append(t)
    ranked = sorted(groups.values(), key=lambda ts: -sum(map(cost, ts)))  # stable: given order on ties
    return [t for ts in ranked for t in sorted(ts, key=lambda t: -cost(t))]


def save(cache_dir: Path | None, seconds: dict[str, float], cases: dict[str, int]) -> None:
    """Merge this run's seconds per case into the history (written whole, then renamed)."""
    if cache_dir is None or not seconds:
        return
    history = load(cache_dir)
    history.update({name: s / cases[name] for name, s in seconds.items() if cases.get(name)})
    partial = cache_dir / f"{FILE}.{os.getpid()}.partial"
    try:
        partial.write_text(json.dumps(history, indent=1, sort_keys=True))
        os.replace(partial, cache_dir / FILE)
    except OSError:
        pass  # a cache that cannot be written only costs the next run its order
