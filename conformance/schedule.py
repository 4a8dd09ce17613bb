"""The order the runner starts its tasks in: longest first, so the run does not end waiting on
one long task started last (on two cores, torch-onnx's cold exports alone take a minute).

A task's cost is estimated from the seconds per case its adapter took in the previous run that
used the same cache folder (`timings.json` there: a cold run's exports and compilations, a warm
run's cache hits); an adapter without history keeps its place in the given order (built-ins
are listed slowest first), after those with one.
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


def order(tasks: list, history: dict[str, float]) -> list:
    """The tasks longest first by history; tasks without history after, in their given order."""
    known = [t for t in tasks if t.adapter.name in history]
    known.sort(key=lambda t: -history[t.adapter.name] * len(t.case_ids))
    return known + [t for t in tasks if t.adapter.name not in history]


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
