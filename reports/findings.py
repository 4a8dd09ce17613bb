"""Findings: the distinct discrepancies behind the non-passing records, and the verdict a CI gates on.

A finding is every fail or error with the same diagnosis in the same check family,
merged across adapters ("x² overflows the compute dtype" once, listing every
adapter it hits).  Crashes, configuration problems and unexplained results are
kept per adapter: one adapter's ValueError says nothing about another's.  The
finding id is a pure function of a record (`finding_id`), so the worker stamps
it on the record and a baseline's findings can be compared with a run's.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from conformance.checks.registry import finding_id, finding_prefix, finding_title
from conformance.diagnosis.diagnose import CLASSES

DEFAULT_FAIL_ON = frozenset(c for c in CLASSES if c != "range")  # range findings are shown, not gated
RESULTS_SHOWN = 5  # per finding in report.md; all of them are in report.json


@dataclass(frozen=True)
class Gate:
    """What fails a run: the classes of findings, and the least share of checks an adapter must run."""

    fail_on: frozenset = DEFAULT_FAIL_ON
    min_coverage: float = 0.0

    def describe(self) -> str:
        spared = [c for c in CLASSES if c not in self.fail_on]
        text = "fails on every class" if not spared else f"fails on every class but {', '.join(spared)}"
        return text + (f"; needs {self.min_coverage:.0%} coverage per adapter" if self.min_coverage else "")


def _elements(r: dict) -> int:
    return math.prod(r.get("shape") or [0]) if r.get("shape") else 0


def findings(records: list[dict], commands) -> list[dict]:
    """Findings of the fail/error records, most important first; `commands(record)` gives
    the rerun and repro commands of its smallest case."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["status"] in ("fail", "error") and r.get("diagnosis"):
            groups[finding_id(r)].append(r)
    out = []
    for fid, rs in groups.items():
        smallest = min(rs, key=lambda r: (_elements(r), r["case"], r["adapter"]))
        d = smallest["diagnosis"]
        family = finding_prefix(smallest["check"])
        adapters = sorted({r["adapter"] for r in rs})
        details = sorted({r["diagnosis"].get("detail", "") for r in rs})
        out.append({
            "id": fid, "class": d["class"], "title": finding_title(d, smallest["check"]), "family": family,
            "adapters": adapters, "results": len(rs),
            "per_adapter": {a: sum(r["adapter"] == a for r in rs) for a in adapters},
            "detail": d.get("detail", ""), "details": details[:10],
            "smallest": {"case": smallest["case"], "adapter": smallest["adapter"], "check": smallest["check"]},
            "evidence": d.get("evidence"), "message": smallest.get("message", ""),
            **dict(zip(("rerun", "repro"), commands(smallest))),
            "records": [{"case": r["case"], "adapter": r["adapter"], "check": r["check"], "status": r["status"]}
                        for r in sorted(rs, key=lambda r: (r["adapter"], _elements(r), r["case"], r["check"]))],
        })
    order = {c: k for k, c in enumerate(CLASSES)}
    return sorted(out, key=lambda f: (order.get(f["class"], 99), -f["results"], f["id"]))


def coverage(records: list[dict]) -> dict[str, dict]:
    """Per adapter: checks run (not unsupported) and passed, out of all its records."""
    out: dict[str, dict] = defaultdict(lambda: {"total": 0, "ran": 0, "passed": 0})
    for r in records:
        c = out[r["adapter"]]
        c["total"] += 1
        c["ran"] += r["status"] != "unsupported"
        c["passed"] += r["status"] in ("pass", "xpass")
    return {a: {**c, "share": c["ran"] / c["total"] if c["total"] else 0.0} for a, c in sorted(out.items())}


@dataclass(frozen=True)
class Verdict:
    gating: list = field(default_factory=list)  # findings whose class fails the run
    other: list = field(default_factory=list)  # findings shown, not gating
    uncovered: dict = field(default_factory=dict)  # adapter -> why its coverage fails the run

    @property
    def failed(self) -> bool:
        return bool(self.gating or self.uncovered)


def judge(all_findings: list[dict], cover: dict[str, dict], gate: Gate) -> Verdict:
    uncovered = {}
    for a, c in cover.items():
        if not c["passed"]:
            uncovered[a] = f"no passing result ({c['ran']} of {c['total']} checks ran)"
        elif c["share"] < gate.min_coverage:
            uncovered[a] = f"ran {c['share']:.0%} of its checks, below --min-coverage {gate.min_coverage:.0%}"
    return Verdict([f for f in all_findings if f["class"] in gate.fail_on],
                   [f for f in all_findings if f["class"] not in gate.fail_on], uncovered)
