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
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import UsageError


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
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise UsageError(f"cannot read xfail file {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"xfail file {path} is not valid TOML: {exc}") from None
        entries = []
        for k, item in enumerate(data.get("xfail", []), 1):
            unknown = set(item) - {"case", "adapter", "check", "reason"}
            if unknown or "case" not in item or "reason" not in item:
                raise UsageError(f"xfail file {path}, entry #{k}: needs `case` and `reason` (optional `adapter`, `check`); "
                                 f"unknown keys: {sorted(unknown)}")
            entries.append(Entry(str(item["case"]), str(item.get("adapter", "*")), str(item.get("check", "*")), str(item["reason"])))
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
