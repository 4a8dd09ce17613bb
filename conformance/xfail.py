"""Known discrepancies (`--xfail FILE`): failures that are expected, counted apart.

    [[xfail]]
    case = "f32/2x8x8/ax1/*"     # glob over case ids (required)
    adapter = "keras-*"          # glob over adapter names (default: any)
    check = "forward"            # glob over checks (default: any)
    reason = "Keras broadcasts the scale against the last axis"   (required)

A fail or error that matches becomes `xfail`; a pass that matches becomes
`xpass` (the discrepancy is gone: drop the entry).  Entries that match no
result are warned about after the run.
"""
from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import UsageError
from conformance.checks.registry import ALL_CHECKS
from conformance.inputs import read_toml


@dataclass(frozen=True)
class Entry:
    case: str
    adapter: str
    check: str
    reason: str

    def matches(self, r: dict) -> bool:
        return (fnmatch.fnmatchcase(r["case"], self.case) and fnmatch.fnmatchcase(r["adapter"], self.adapter)
                and fnmatch.fnmatchcase(r["check"], self.check))


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
            unknown = set(item) - {"case", "adapter", "check", "reason"}
            if unknown or "case" not in item or "reason" not in item:
                raise UsageError(f"xfail file {path}, entry #{k}: needs `case` and `reason` (optional `adapter`, `check`); "
                                 f"unknown keys: {sorted(unknown)}")
            if not all(isinstance(v, str) for v in item.values()):
                raise UsageError(f"xfail file {path}, entry #{k}: `case`, `adapter`, `check` and `reason` are strings")
            if not item["reason"].strip():
                raise UsageError(f"xfail file {path}, entry #{k}: `reason` is empty; say why the discrepancy is known")
            check = item.get("check", "*")
            if not any(fnmatch.fnmatchcase(c, check) for c in ALL_CHECKS):
                raise UsageError(f"xfail file {path}, entry #{k}: `check` {check!r} matches no check "
                                 f"({', '.join(ALL_CHECKS)})")
            entries.append(Entry(item["case"], item.get("adapter", "*"), item.get("check", "*"), item["reason"]))
        if set(data) - {"xfail"}:
            raise UsageError(f"xfail file {path}: only [[xfail]] tables are allowed, found {sorted(set(data) - {'xfail'})}")
        return cls(entries)

    def apply(self, records: list[dict]) -> list[dict]:
        out = []
        for r in records:
            for k, e in enumerate(self.entries):
                if e.matches(r):
                    with self._lock:
                        self._used.add(k)
                    if r["status"] in ("fail", "error"):
                        r = r | {"status": "xfail", "xfail_reason": e.reason, "original_status": r["status"]}
                    elif r["status"] == "pass":
                        r = r | {"status": "xpass", "xfail_reason": e.reason,
                                 "message": f"listed as a known discrepancy but passes: {e.reason}"}
                    break
            out.append(r)
        return out

    def unused(self) -> list[Entry]:
        return [e for k, e in enumerate(self.entries) if k not in self._used]
