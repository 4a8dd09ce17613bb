"""Accepted deviations (`--accept FILE`): a kernel's own error beyond the suite's tolerance,
declared with its bound and reason, reported as such and never silent.

    [[accept]]
    adapter = "mykernel"          # glob over adapter names (required)
    check = "forward"             # glob over checks (required; must match some check)
    case = "bf16/*"               # glob over case ids (default: any)
    max_ulp = 8                   # bounds on the record's metrics `max_ulp` and/or `max_units`
    max_units = 64                #   (at least one; finite, >= 0)
    reason = "the fused kernel rounds the rsqrt to bfloat16"   (required)

The first entry that matches a result decides.  A `fail` whose only reason is its scored error
beyond the tolerance (not a NaN/Inf pattern, a dtype or a shape), judged by a metric the entry
bounds, with every bounded metric it has within its bound, becomes `accepted`: it is no failure
and no finding, and the reports list it with its reason and its real error.  Beyond the bound it
stays a `fail`, with `accept_exceeded` saying which entry's bound it exceeds.  The suite's
tolerances are never changed.  Entries that match no result are warned about after the run.
"""
from __future__ import annotations

import fnmatch
import math
import threading
from dataclasses import dataclass
from pathlib import Path

from conformance.checks.registry import ALL_CHECKS
from conformance.errors import UsageError
from conformance.inputs import read_toml
from conformance.numerics.compare import EXCEEDED, SCORED

BOUNDS = tuple(SCORED.values())  # max_ulp, max_units: the metrics a bound may name
_KEYS = ("adapter", "check", "case", "reason", *BOUNDS)
# What an accepted record carries, and a record beyond its bound (a re-judged one loses them: `report --accept`).
FIELDS = ("original_status", "accept_reason", "accept_bound", "accept_entry", "accept_exceeded")


@dataclass(frozen=True)
class Deviation:
    number: int  # its place in the file, from 1: how messages name it
    adapter: str
    check: str
    case: str
    bounds: tuple  # ((metric, bound), ...)
    reason: str

    def describe(self) -> str:
        bounds = " ".join(f"{m}={b:g}" for m, b in self.bounds)
        return f"#{self.number} adapter={self.adapter!r} check={self.check!r} case={self.case!r} {bounds}"

    def matches(self, r: dict) -> bool:
        return (fnmatch.fnmatchcase(r["adapter"], self.adapter) and fnmatch.fnmatchcase(r["check"], self.check)
                and fnmatch.fnmatchcase(r["case"], self.case))

    def judge(self, r: dict) -> str | None:
        """None where `r` is within this entry's bounds, else why not (one clause)."""
        metrics = r.get("metrics") or {}
        scored = SCORED[(r.get("tolerance") or {})["metric"]]
        bounds = dict(self.bounds)
        if scored not in bounds:
            return f"the {r['check']} check is judged by {scored}, which accept entry #{self.number} does not bound"
        beyond = [f"{m} {metrics[m]:.4g} > {b:g}" for m, b in self.bounds if m in metrics and metrics[m] > b]
        if beyond:
            return f"{', '.join(beyond)}: beyond the bound of accept entry #{self.number} ({self.reason})"
        return None


def tolerance_only(r: dict) -> bool:
    """Whether a record fails on its scored error alone (compare.score's reasons), so that a
    bound on that error can accept it."""
    metrics, tol = r.get("metrics") or {}, r.get("tolerance") or {}
    return (r["status"] == "fail" and tol.get("metric") in SCORED and SCORED[tol["metric"]] in metrics
            and not metrics.get("nonfinite_mismatch")
            and all(reason.startswith(EXCEEDED) for reason in r.get("message", "").split("; ")))


def unjudged(r: dict) -> dict:
    """A record as the suite scored it, without a previous acceptance."""
    if r["status"] == "accepted":
        return {k: v for k, v in r.items() if k not in FIELDS} | {"status": r.get("original_status", "fail")}
    return {k: v for k, v in r.items() if k != "accept_exceeded"} if "accept_exceeded" in r else r


class AcceptList:
    def __init__(self, entries: list[Deviation]):
        self.entries = entries
        self._used: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> "AcceptList":
        data = read_toml(path, "accept file")
        items = data.get("accept", [])
        if set(data) - {"accept"}:
            raise UsageError(f"accept file {path}: only [[accept]] tables are allowed, found {sorted(set(data) - {'accept'})}")
        if not isinstance(items, list):
            raise UsageError(f"accept file {path}: `accept` must be an array of tables: write [[accept]]")
        return cls([_entry(path, k, item) for k, item in enumerate(items, 1)])

    def apply(self, records: list[dict]) -> list[dict]:
        out = []
        for r in records:
            r = unjudged(r)
            for k, e in enumerate(self.entries):
                if e.matches(r):
                    with self._lock:
                        self._used.add(k)
                    if tolerance_only(r):
                        why = e.judge(r)
                        r = r | ({"accept_exceeded": why} if why else {
                            "status": "accepted", "original_status": "fail", "accept_reason": e.reason,
                            "accept_bound": dict(e.bounds), "accept_entry": e.describe()})
                    break
            out.append(r)
        return out

    def unused(self) -> list[Deviation]:
        return [e for k, e in enumerate(self.entries) if k not in self._used]


def _entry(path: Path, k: int, item) -> Deviation:
    where = f"accept file {path}, entry #{k}"
    if not isinstance(item, dict):
        raise UsageError(f"{where}: each entry is an [[accept]] table, got {item!r}")
    unknown = sorted(set(item) - set(_KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown keys {unknown} (known: {', '.join(_KEYS)})")
    missing = [key for key in ("adapter", "check", "reason") if key not in item]
    if missing:
        raise UsageError(f"{where}: needs `adapter`, `check` and `reason` (optional `case`); missing {missing}")
    for key in ("adapter", "check", "case", "reason"):
        if key in item and not isinstance(item[key], str):
            raise UsageError(f"{where}: `{key}` is a string, got {item[key]!r}")
    if not item["reason"].strip():
        raise UsageError(f"{where}: `reason` is empty; say why the deviation is accepted")
    if not any(fnmatch.fnmatchcase(c, item["check"]) for c in ALL_CHECKS):
        raise UsageError(f"{where}: `check` {item['check']!r} matches no check ({', '.join(ALL_CHECKS)})")
    bounds = tuple((m, item[m]) for m in BOUNDS if m in item)
    if not bounds:
        raise UsageError(f"{where}: needs a bound, `max_ulp` and/or `max_units` (the error accepted)")
    for m, b in bounds:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b < 0:
            raise UsageError(f"{where}: `{m}` must be a finite number >= 0, got {b!r}")
    return Deviation(k, item["adapter"], item["check"], item.get("case", "*"),
                     tuple((m, float(b)) for m, b in bounds), item["reason"])


@dataclass(frozen=True)
class InOrder:
    """The lists a run applies to each case's records as they are written, in order: accepted
    deviations before known discrepancies (a result within its accepted bound is `accepted`,
    never `xfail`)."""

    lists: tuple

    def apply(self, records: list[dict]) -> list[dict]:
        for known in self.lists:
            records = known.apply(records)
        return records
