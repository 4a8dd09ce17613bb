"""Where along an ordered list of versions an outcome changes: the search of `conformance bisect`.

`bisect(versions, outcome)` judges the first and the last version, then halves the range between
the last version known to give the first version's outcome and the first known to give another,
until they are neighbours.  `outcome(version)` returns any value compared with `==` (the command
uses the status and finding id of each chosen result), or raises `Skip(reason)` for a version it
cannot judge (it does not install, its framework lacks the layer): a skipped version is stepped
over, and where every version between the two neighbours was skipped, the change lies somewhere
among them and the result says which.  Pure: no pip, no processes; the command supplies `outcome`.

The search assumes one change, as every bisection does; it reports what the versions it tried
show.  Where they show the outcome changing more than once (a third outcome appeared, so
A -> B -> C), `changes` lists each change between consecutive judged versions and `verdict` is
"multiple": no single change point is named.  Where the two ends agree, the verdict is "same",
without trying the versions between (a change and its reversal inside the range are not seen).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field


class Skip(Exception):
    """Raised by `outcome(version)`: this version cannot be judged, and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Trial:
    """One version tried: its outcome, or why it was skipped; in the order tried (`order`)."""

    version: str
    index: int  # its place in the list of versions
    order: int  # 0 for the first version tried
    outcome: object = None
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def judged(self) -> bool:
        return self.skipped is None


@dataclass(frozen=True)
class Change:
    """The outcome differs between two consecutive judged versions."""

    last_same: str  # the last version with the old outcome
    first_changed: str  # the first with the new one
    before: object
    after: object
    skipped: tuple[str, ...] = ()  # versions between the two that were tried and skipped
    untried: tuple[str, ...] = ()  # versions between the two that were not tried


@dataclass(frozen=True)
class Bisection:
    versions: tuple[str, ...]
    tried: tuple[Trial, ...]  # in the order tried
    changes: tuple[Change, ...] = field(default=())  # in version order

    @property
    def judged(self) -> list[Trial]:
        return sorted((t for t in self.tried if t.judged), key=lambda t: t.index)

    @property
    def verdict(self) -> str:
        """"changed" (one change point), "multiple", "same", or "untestable" (fewer than two versions judged)."""
        if len(self.judged) < 2:
            return "untestable"
        return {0: "same", 1: "changed"}.get(len(self.changes), "multiple")

    @property
    def change(self) -> Change | None:
        """The one change point, when the versions tried show exactly one."""
        return self.changes[0] if self.verdict == "changed" else None

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.tried)

    def in_version_order(self) -> list[Trial]:
        return sorted(self.tried, key=lambda t: t.index)


def bisect(versions, outcome, clock=time.monotonic) -> Bisection:
    """The change point of `outcome` along `versions` (oldest first); see the module's docstring."""
    versions = tuple(versions)
    tried: list[Trial] = []
    results: dict[int, object] = {}
    skipped: set[int] = set()

    def judge(i: int) -> bool:
        start = clock()
        try:
            value, reason = outcome(versions[i]), None
        except Skip as exc:
            value, reason = None, exc.reason or "skipped"
        tried.append(Trial(versions[i], i, len(tried), value, reason, clock() - start))
        if reason is None:
            results[i] = value
            return True
        skipped.add(i)
        return False

    lo = next((i for i in range(len(versions)) if judge(i)), None)
    hi = None if lo is None else next((i for i in range(len(versions) - 1, lo, -1) if judge(i)), None)
    if lo is None or hi is None:
        return Bisection(versions, tuple(tried))
    if results[lo] != results[hi]:
        old = results[lo]
        while True:
            between = [i for i in range(lo + 1, hi) if i not in skipped]
            if not between:
                break
            middle = (lo + hi) / 2
            mid = min(between, key=lambda i: (abs(i - middle), -i))  # a tie: the newer
            if not judge(mid):
                continue
            if results[mid] == old:
                lo = mid
            else:
                hi = mid
    return Bisection(versions, tuple(tried), _changes(versions, results, skipped))


def _changes(versions: tuple, results: dict, skipped: set) -> tuple[Change, ...]:
    order = sorted(results)
    out = []
    for a, b in zip(order, order[1:]):
        if results[a] != results[b]:
            inside = range(a + 1, b)
            out.append(Change(versions[a], versions[b], results[a], results[b],
                              tuple(versions[i] for i in inside if i in skipped),
                              tuple(versions[i] for i in inside if i not in skipped)))
    return tuple(out)
