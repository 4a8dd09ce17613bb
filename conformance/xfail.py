"""Known discrepancies (`--xfail FILE`): failures that are expected, counted apart.

    [[xfail]]
    case = "f32/2x8x8/ax1/*"     # glob over case ids
    finding = "forward/eps-*"    # glob over finding ids, or a defect's id (at least one of case, finding)
    adapter = "keras-*"          # glob over adapter names (default: any)
    check = "forward"            # glob over checks (default: any)
    reason = "Keras broadcasts the scale against the last axis"   (required)

A fail or error that matches becomes `xfail`; a pass that matches becomes `xpass` (the
discrepancy is gone: drop the entry).  An entry naming a `finding` matches the fail and error
records of that finding (their `finding` field) or of a defect of that id (known once the run's
defects are: `apply_defects`, after the run); with a `case` too, a pass of those cases in the
finding's family of checks is an `xpass`.  Entries that match no result are warned about after
the run; an entry whose every result is an xpass is stale (`stale`: warned about, listed in
report.md), and `--strict-xfail` makes an xpass fail the run.
"""
from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import UsageError
from conformance.checks.registry import ALL_CHECKS, finding_prefix
from conformance.inputs import read_toml


@dataclass(frozen=True)
class Entry:
    case: str | None  # None: any case of the finding
    adapter: str
    check: str
    reason: str
    finding: str | None = None

    def describe(self) -> str:
        """How warnings and report.md name the entry (and its records' `xfail_entry`)."""
        return " ".join(f"{k}={v!r}" for k, v in (("case", self.case), ("finding", self.finding),
                                                   ("adapter", self.adapter), ("check", self.check)) if v is not None)

    def matches(self, r: dict, defects: tuple = ()) -> bool:
        """`defects`: the ids of the defects the record's finding is in (none before the run ends)."""
        if not (fnmatch.fnmatchcase(r["adapter"], self.adapter) and fnmatch.fnmatchcase(r["check"], self.check)
                and (self.case is None or fnmatch.fnmatchcase(r["case"], self.case))):
            return False
        if self.finding is None:
            return True
        if r.get("finding"):
            return any(fnmatch.fnmatchcase(i, self.finding) for i in (r["finding"], *defects))
        # A pass of the cases named, in the finding's family of checks: the finding is gone from them.
        return (self.case is not None and r["status"] == "pass"
                and fnmatch.fnmatchcase(finding_prefix(r["check"]), self.finding.split("/", 1)[0]))


class XfailList:
    def __init__(self, entries: list[Entry]):
        self.entries = entries
        self._used: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> "XfailList":
        data = read_toml(path, "xfail file")
        entries = []
        items = data.get("xfail", [])
        if not isinstance(items, list):
            raise UsageError(f"xfail file {path}: `xfail` must be an array of tables: write [[xfail]]")
        for k, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise UsageError(f"xfail file {path}, entry #{k}: each entry is a [[xfail]] table, got {item!r}")
            unknown = set(item) - {"case", "finding", "adapter", "check", "reason"}
            if unknown or not ({"case", "finding"} & set(item)) or "reason" not in item:
                raise UsageError(f"xfail file {path}, entry #{k}: needs `case` or `finding` (or both) and `reason` "
                                 f"(optional `adapter`, `check`); unknown keys: {sorted(unknown)}")
            if not all(isinstance(v, str) for v in item.values()):
                raise UsageError(f"xfail file {path}, entry #{k}: `case`, `finding`, `adapter`, `check` and `reason` "
                                 "are strings")
            if not item.get("finding", "-").strip():
                raise UsageError(f"xfail file {path}, entry #{k}: `finding` is empty; give a finding id (report.md "
                                 "names them, e.g. forward/eps-outside-sqrt) or a defect's")
            if not item["reason"].strip():
                raise UsageError(f"xfail file {path}, entry #{k}: `reason` is empty; say why the discrepancy is known")
            check = item.get("check", "*")
            if not any(fnmatch.fnmatchcase(c, check) for c in ALL_CHECKS):
                raise UsageError(f"xfail file {path}, entry #{k}: `check` {check!r} matches no check "
                                 f"({', '.join(ALL_CHECKS)})")
            entries.append(Entry(item.get("case"), item.get("adapter", "*"), item.get("check", "*"), item["reason"],
                                 item.get("finding")))
        if set(data) - {"xfail"}:
            raise UsageError(f"xfail file {path}: only [[xfail]] tables are allowed, found {sorted(set(data) - {'xfail'})}")
        return cls(entries)

    def apply(self, records: list[dict], defects_of: dict | None = None) -> list[dict]:
        """`defects_of`: finding id -> the ids of the defects it is in (apply_defects)."""
        out = []
        for r in records:
            defects = tuple((defects_of or {}).get(r.get("finding"), ()))
            for k, e in enumerate(self.entries):
                if e.matches(r, defects):
                    with self._lock:
                        self._used.add(k)
                    known = {"xfail_reason": e.reason, "xfail_entry": e.describe()}
                    if r["status"] in ("fail", "error"):
                        r = r | {"status": "xfail", "original_status": r["status"], **known}
                    elif r["status"] == "pass":
                        r = r | {"status": "xpass", **known,
                                 "message": f"listed as a known discrepancy but passes: {e.reason}"}
                    break
            out.append(r)
        return out

    @property
    def names_findings(self) -> bool:
        return any(e.finding is not None for e in self.entries)

    def apply_defects(self, path: Path, gate) -> None:
        """The entries naming a defect's id, matched once the run has ended (a defect is a cause
        across the run's findings, reports/defects.py): results.jsonl rewritten atomically where
        a fail or error of such a defect becomes `xfail`."""
        from conformance.reports.results import load_results, write_jsonl

        results = load_results(path, gate=gate)
        defects_of: dict[str, list[str]] = {}
        for d in results.defects:
            for f in d["findings"]:
                defects_of.setdefault(f, []).append(d["id"])
        if not defects_of:
            return
        records = [self.apply([r], defects_of)[0] if r["status"] in ("fail", "error") else r for r in results.records]
        if records != results.records:
            write_jsonl(path, [*([results.run] if results.run else []), *results.adapters.values(), *records])

    def unused(self) -> list[Entry]:
        return [e for k, e in enumerate(self.entries) if k not in self._used]


def stale(records: list[dict]) -> list[tuple[str, str, int]]:
    """(entry, reason, results) of the xfail entries whose every result is an xpass: the
    discrepancy is gone, drop the entry (read from the records' `xfail_entry`, so report.md
    says it as the run did)."""
    statuses: dict[str, set] = {}
    counts: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for r in records:
        if r.get("xfail_entry"):
            statuses.setdefault(r["xfail_entry"], set()).add(r["status"])
            counts[r["xfail_entry"]] = counts.get(r["xfail_entry"], 0) + 1
            reasons[r["xfail_entry"]] = r.get("xfail_reason", "")
    return [(e, reasons[e], counts[e]) for e, s in statuses.items() if s == {"xpass"}]
