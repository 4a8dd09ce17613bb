"""The schema of results.jsonl, and reading it strictly.

Three kinds of line (field `record`): `run` (what the run set out to do), `adapter`
(one per adapter: versions, machine, defaults) and `result` (one per
(adapter, case, check)).  Reading checks every line against the fields and types
below and stops at the first bad one with its line number: a report of input
the suite does not understand would be a report that lies.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from conformance.checks.registry import ALL_CHECKS
from conformance.errors import UsageError

STATUSES = ("pass", "fail", "error", "unsupported", "xfail", "xpass", "accepted")
MAX_LINE_BYTES = 4 << 20  # records are ~1 kB; a longer "line" is not a results file (/dev/zero)

_OPTIONAL = type(None)
# field -> allowed types; `None` in a tuple allows null
RESULT_FIELDS = {
    "case": (str,), "adapter": (str,), "check": (str,), "status": (str,),
    "message": (str,), "metrics": (dict,), "tolerance": (dict, _OPTIONAL),
    "dtype": (str,), "shape": (list,), "axis": (list,), "epsilon": (int, float, _OPTIONAL),
    "distribution": (str,), "scale": (str,), "seed": (int,), "seconds": (int, float),
    "epsilon_used": (int, float, _OPTIONAL), "outcome": (str,), "diagnosis": (dict,), "finding": (str,),
    "device": (str,), "needs": (str,), "state_changes": (list,),
}
RESULT_REQUIRED = ("case", "adapter", "check", "status")
# The metrics reports compute with; others (parameter shapes, ...) are shown as they are.
METRIC_FIELDS = {
    "max_abs": (int, float), "max_rel_rms": (int, float), "max_ulp": (int, float), "max_units": (int, float),
    "nonfinite_mismatch": (int,), "out_dtype": (str,), "out_shape": (list,),
}
TOLERANCE_FIELDS = {"metric": (str,), "limit": (int, float)}
DIAGNOSIS_FIELDS = {"id": (str,), "class": (str,), "detail": (str,), "evidence": (dict,)}
ADAPTER_FIELDS = {"adapter": (str,), "ref": (str,), "versions": (dict,), "env": (dict,), "claims": (list,),
                  "defaults": (dict,), "machine": (dict,), "versions_by_part": (list,), "device": (str,),
                  "capabilities": (list,), "state_changes": (list,), "import_root": (str, _OPTIONAL)}
# What a shared worker saw an adapter change in its process (conformance/execution/state.py): on
# the records of the case after which it differed, or on the adapter record for its load().
STATE_CHANGE_FIELDS = {"state": (str,), "before": (str,), "after": (str,)}


def _state_changes_problem(obj: dict) -> str | None:
    for change in obj.get("state_changes", []):
        if not isinstance(change, dict):
            return f"in 'state_changes': a {type(change).__name__}, not an object"
        why = _check_types(change, STATE_CHANGE_FIELDS, tuple(STATE_CHANGE_FIELDS))
        if why:
            return f"in 'state_changes': {why}"
    return None
RUN_FIELDS = {"suite": (str,), "digest": (str,), "cases": (int,), "adapters": (list,), "expected": (int,),
              "parts": (list,), "cwd": (str,), "conformance": (str,), "conformance_path": (list,)}


def _check_types(obj: dict, fields: dict, required: tuple[str, ...]) -> str | None:
    for key in required:
        if key not in obj:
            return f"missing field {key!r}"
    for key, types in fields.items():
        if key in obj:
            value = obj[key]
            if isinstance(value, bool) or not isinstance(value, types):
                names = "/".join("null" if t is _OPTIONAL else t.__name__ for t in types)
                return f"field {key!r} is {type(value).__name__}, expected {names}"
    return None


@functools.cache
def known_checks() -> tuple[str, ...]:
    return ALL_CHECKS


@functools.lru_cache(maxsize=65536)  # records repeat each case id once per check
def _case_problem(case_id: str) -> str | None:
    from conformance.cases.case import parse_case

    try:
        parse_case(case_id)
    except ValueError as exc:
        return f"field 'case' is not a case id: {exc}"
    return None


def problem(obj) -> str | None:
    """Why a parsed line is not a valid record, or None."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    kind = obj.get("record", "result")
    if kind == "result":
        why = _check_types(obj, RESULT_FIELDS, RESULT_REQUIRED)
        for key, fields, required in (("metrics", METRIC_FIELDS, ()), ("tolerance", TOLERANCE_FIELDS, ("metric", "limit")),
                                      ("diagnosis", DIAGNOSIS_FIELDS, ("id", "class"))):
            if why is None and isinstance(obj.get(key), dict):
                inner = _check_types(obj[key], fields, required)
                why = f"in {key!r}: {inner}" if inner else None
        if why is None and obj["status"] not in STATUSES:
            why = f"unknown status {obj['status']!r} (known: {', '.join(STATUSES)})"
        if why is None and obj["check"] not in known_checks():
            why = f"unknown check {obj['check']!r} (known: {', '.join(known_checks())})"
        if why is None:
            why = _case_problem(obj["case"])
        return why or _state_changes_problem(obj)
    if kind == "adapter":
        why = _check_types(obj, ADAPTER_FIELDS, ("adapter",))
        if why is None and not all(isinstance(v, str) for v in obj.get("versions", {}).values()):
            why = "versions must map package names to version strings"
        return why or _state_changes_problem(obj)
    if kind == "run":
        why = _check_types(obj, RUN_FIELDS, ("suite", "digest", "expected"))
        if why is None and not all(obj[k] >= 0 for k in ("cases", "expected") if k in obj):
            why = "`cases` and `expected` count pairs: they cannot be negative"
        if why is None and "cases" in obj and obj["expected"] != obj["cases"] * len(obj.get("adapters", [])):
            why = "`expected` is not `cases` times the number of `adapters`"
        return why
    return f"unknown record kind {kind!r} (known: run, adapter, result)"


def read_records(path: Path, salvage: bool = False):
    """Yield (line number, record) of a results file; UsageError at the first bad line.

    A last line without its newline that does not parse is what a run killed
    mid-write leaves: with `salvage` it is dropped, otherwise it is an error
    that says so."""
    try:
        if path.exists() and not path.is_file():
            raise UsageError(f"results file {path} is not a regular file")
        f = open(path, "rb")
    except OSError as exc:
        raise UsageError(f"cannot read results file {path}: {exc.strerror or exc}; give a results.jsonl or the folder holding it") from None
    with f:
        n = 0
        while True:
            try:
                raw = f.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise UsageError(f"cannot read results file {path}: {exc.strerror or exc}") from None
            if not raw:
                return
            n += 1
            if len(raw) > MAX_LINE_BYTES:
                raise UsageError(f"results file {path} line {n} is longer than {MAX_LINE_BYTES >> 20} MiB: not a results file")
            last = not raw.endswith(b"\n")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"results file {path} line {n} is not UTF-8 (byte {exc.start})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError) as exc:
                if last:
                    if salvage:
                        return
                    raise UsageError(f"results file {path} line {n} is truncated (a run killed mid-write?); "
                                     "--salvage keeps the complete lines before it") from None
                raise UsageError(f"results file {path} line {n} is not JSON ({exc})") from None
            why = problem(obj)
            if why:
                raise UsageError(f"results file {path} line {n} is not a valid record: {why}")
            yield n, obj
