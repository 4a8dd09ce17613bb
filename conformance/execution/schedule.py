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
import stat
import sys
from pathlib import Path

FILE = "timings.json"


MAX_BYTES = 1 << 20  # a few hundred adapters' timings are a few kB; more is not this file
MAX_SECONDS = 7 * 24 * 3600.0  # per case: anything larger is not a measurement


def load(cache_dir: Path | None, warn=lambda line: print(line, file=sys.stderr)) -> dict[str, float]:
    """{adapter name: seconds per case} of the previous run; {} without one.  An unusable file
    (not a regular file, too large, not JSON, numbers out of range) only costs the order: it is
    ignored with one warning line, and the run's end writes a good one in its place."""
    if cache_dir is None:
        return {}
    path = cache_dir / FILE
    try:
        data = _read(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        warn(f"warning: ignoring {path} ({exc}); the tasks run in their default order")
        return {}
    return data


def _read(path: Path) -> dict[str, float]:
    st = os.lstat(path)  # a link, a FIFO or /dev/zero is never opened
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if st.st_size > MAX_BYTES:
        raise ValueError(f"{st.st_size} bytes, more than {MAX_BYTES}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        text = f.read(MAX_BYTES + 1)
    data = json.loads(text, parse_constant=_no_constant, parse_int=float)  # huge integers: floats, or inf
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    bad = [k for k, v in data.items() if isinstance(v, bool) or not isinstance(v, float)
           or not 0.0 <= v <= MAX_SECONDS]
    if bad:
        raise ValueError(f"seconds per case out of range for {', '.join(map(repr, bad[:3]))}")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number of seconds")


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
    """Merge this run's seconds per case into the history, written durably under a temporary
    name and renamed; nothing is left behind where it cannot be written."""
    if cache_dir is None or not seconds:
        return
    history = load(cache_dir, warn=lambda line: None)  # load() at the run's start said it already
    history.update({name: s / cases[name] for name, s in seconds.items() if cases.get(name)})
    partial = cache_dir / f".{FILE}.{os.getpid()}.partial"
    try:
        with open(partial, "w") as f:
            f.write(json.dumps(history, indent=1, sort_keys=True))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, cache_dir / FILE)
    except OSError:
        pass  # a cache that cannot be written only costs the next run its order
    finally:
        partial.unlink(missing_ok=True)
