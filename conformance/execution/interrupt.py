"""SIGINT, SIGTERM and SIGHUP during a run: stop at once, keep what finished, exit 128 + the signal.

The handler only records the signal and starts `stop` in a thread: killing
workers waits on processes, which a signal handler must not do while the main
thread may hold the same locks.
"""
from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill/CI cancel, a closed terminal


class StopOnSignal:
    def __init__(self, stop, pending: int | None = None):
        """`pending`: a signal caught before (while Ray started): the run stops as soon as it starts."""
        self.stop = stop
        self.signum: int | None = None
        self._pending = pending
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"\nconformance: {signal.Signals(signum).name}: stopping workers; writing the reports of what "
                  "finished", file=sys.stderr, flush=True)
            threading.Thread(target=self.stop, daemon=True).start()

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def __enter__(self) -> "StopOnSignal":
        for s in SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        if self._pending is not None and self.signum is None:
            self.signum = self._pending  # its line is printed already
            self.stop()
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
