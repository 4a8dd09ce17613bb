"""The worker protocol: every message between the runner and a worker, declared once.

One JSON object per line.  The runner sends a worker a `task`; the worker answers, in order,
`ready` (after the adapter loaded), one `done` per case, and `end`; or `load_error` when the
adapter cannot load (the worker then exits 3).  A serving worker whose process state an adapter
changed in this task (its load() or a case: conformance/execution/state.py) says so with
`state_changed` before `end`, and serves no other adapter: the runner gives the next adapter a new
worker (a task of another adapter would make it exit 4 without running it).  A fuzzing worker (fuzzing.py) sends `case`
before each example, `checked` after it and one `result` at the end.  A Ray actor that loses
its worker says so with `exited` or `garbled`, which the driver treats as a local worker's exit
or garbled line.
"""
from __future__ import annotations

READY, DONE, END, LOAD_ERROR = "ready", "done", "end", "load_error"
STATE_CHANGED = "state_changed"
EXIT_STATE_CHANGED = 4  # a task of another adapter came to a worker whose state an adapter changed
CASE, CHECKED, RESULT = "case", "checked", "result"
EXITED, GARBLED = "exited", "garbled"


def task(adapter_ref: str, cases: list[str], log: str, careful: bool = False) -> dict:
    """Runner -> worker: run these cases of this adapter, stderr into `log`; `careful`: one case at a
    time where the executor would otherwise run ahead (a worker that can lose no message)."""
    return {"adapter": adapter_ref, "cases": cases, "log": log, "careful": careful}


def ready(name: str, versions: dict, claims: list | None = None, defaults: dict | None = None, device: str = "cpu",
          capabilities: list[str] | None = None) -> dict:
    """The adapter loaded: its versions, documentation claims, defaults, device and capabilities."""
    return {"event": READY, "name": name, "versions": versions, "claims": claims or [], "defaults": defaults or {},
            "device": device, "capabilities": capabilities or []}


def done(case_id: str, records: list[dict]) -> dict:
    return {"event": DONE, "case": case_id, "records": records}


def state_changed(name: str, changes: list[dict]) -> dict:
    """The adapter changed the worker's process state in this task (each change: state, before,
    after, and `case`: the case it happened in, or null for load()); the worker serves it alone now."""
    return {"event": STATE_CHANGED, "name": name, "changes": changes}


def end() -> dict:
    return {"event": END}


def load_error(exc: BaseException) -> dict:
    return {"event": LOAD_ERROR, "message": f"{type(exc).__name__}: {exc}"}


def case(case_id: str) -> dict:
    return {"event": CASE, "case": case_id}


def checked(case_id: str, records: list[dict]) -> dict:
    return {"event": CHECKED, "case": case_id, "records": records}


def result(tried: int, case_id: str | None, records: list[dict]) -> dict:
    return {"event": RESULT, "tried": tried, "case": case_id, "records": records}


def exited(code: int | None) -> dict:
    return {"event": EXITED, "code": code}


def garbled(line: str) -> dict:
    return {"event": GARBLED, "line": line}
