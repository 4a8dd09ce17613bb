"""The process state the frameworks' numerics depend on, read by a serving worker (worker.py) after
each adapter's load() and each case, and the changes between two readings.

A worker shared by several adapters hands its process from one to the next; an adapter that
changes process-wide state (turns flush-to-zero on, another default dtype, x64 off, a thread left
running) would change the verdicts of the adapters after it.  What is read:

- the floating-point control state of the thread cases run in, by numeric probes (portable, and
  what the numerics see): whether a float32 subnormal input survives a multiply by one
  (denormals-are-zero), whether a product that should be subnormal is flushed (flush-to-zero),
  and the rounding mode from 1 ± 2^-25 and 1 + 1.5·2^-24 in float32;
- numpy's error state (np.geterr);
- Python threads running that the worker did not start (by identity; the worker's own, alive
  when the watch began, the suite's numerics pool, started by the first kernel-sized case
  (numerics/threads.py), and the libraries' known to be harmless, adapters/_state.py
  BENIGN_THREADS, excluded);
- each framework's global numerics state (adapters/_state.py, keyed by module name), read only
  for a framework already imported: this module imports none.

A framework imported between two readings has nothing earlier to compare with; its entries with
a fixed default (adapters/_state.py FRESH) are compared with that default.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from conformance.adapters._state import BENIGN_THREADS, FRESH, PROBES
from conformance.numerics.threads import pool_threads

THREADS = "threads"


def _float_control() -> dict[str, str]:
    f = np.float32
    # A subnormal input (2^-129, from its bits: no conversion that flush-to-zero could flush) times
    # 2^30 is normal unless the input is read as zero; two normal inputs whose product is subnormal
    # (read by its bits, since with denormals-are-zero a comparison would read it as zero).
    daz = (np.array([1 << 20], np.uint32).view(f) * f(2.0 ** 30))[0] == 0
    ftz = (np.array([1e-30], f) * f(1e-10)).view(np.uint32)[0] == 0
    up, down = (np.array([1.0, -1.0], f) + np.array([2.0 ** -25, -(2.0 ** -25)], f)).tolist()
    (mid,) = (np.array([1.0], f) + np.array([1.5 * 2.0 ** -24], f)).tolist()
    if up > 1.0:
        rounding = "upward"
    elif down < -1.0:
        rounding = "downward"
    elif mid == 1.0:
        rounding = "toward zero"
    else:
        rounding = "to nearest"
    return {"denormals-are-zero": "on" if daz else "off", "flush-to-zero": "on" if ftz else "off",
            "rounding mode": rounding}


def _thread_text(t: threading.Thread) -> str:
    return f"{t.name!r} ({'daemon' if t.daemon else 'not daemon'})"


class Watch:
    """Readings of this process's state; `check()` returns the changes since the last one."""

    def __init__(self):
        self.own = {id(t) for t in threading.enumerate()}  # the worker's own threads, and the main one
        self.last = self.read()

    def read(self) -> dict:
        with np.errstate(all="ignore"):  # the probes underflow: no warning or error, whatever the adapter set
            state: dict = _float_control()
        state.update({f"numpy error state ({k})": v for k, v in sorted(np.geterr().items())})
        suite = self.own | pool_threads()
        state[THREADS] = {id(t): _thread_text(t) for t in threading.enumerate()
                          if id(t) not in suite and (type(t).__module__, type(t).__qualname__) not in BENIGN_THREADS}
        state["imported"] = {name for name in PROBES if name in sys.modules}
        for name in sorted(state["imported"]):
            try:
                read = PROBES[name](sys.modules[name])
            except Exception as exc:  # a half-initialized module, a renamed function: read as its error
                read = {f"{name} state": f"unreadable ({type(exc).__name__}: {exc})"[:200]}
            state.update(read)
        return state

    def check(self) -> list[dict]:
        try:
            now = self.read()
        except Exception as exc:  # what broke the reading is a change too
            return [{"state": "process state", "before": "readable",
                     "after": f"unreadable ({type(exc).__name__}: {exc})"[:200]}]
        found = changes(self.last, now)
        self.last = now
        return found


def changes(before: dict, after: dict) -> list[dict]:
    """What differs between two readings, as {"state", "before", "after"} texts."""
    out = []
    fresh: dict = {}
    for name in sorted(after["imported"] - before["imported"]):
        try:
            fresh.update(FRESH.get(name, dict)())
        except Exception:
            pass
    for key, value in after.items():
        if key in ("imported", THREADS):
            continue
        if key in before:
            old = before[key]
        elif key in fresh:
            old = fresh[key]
        else:
            continue
        if old != value:
            out.append({"state": key, "before": str(old), "after": str(value)})
    for ident, text in after[THREADS].items():
        if ident not in before[THREADS]:
            out.append({"state": f"thread {text}", "before": "not running", "after": "left running"})
    return out


def describe(change: dict) -> str:
    """One change as a line: "flush-to-zero off -> on", "thread 'spin' (daemon) left running"."""
    what, before, after = (str(change.get(k, "?")) for k in ("state", "before", "after"))
    return f"{what} {after}" if before == "not running" else f"{what} {before} -> {after}"
