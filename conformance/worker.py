"""The worker process: one adapter, many cases, one JSON line per finished case.

    python -m conformance.worker ADAPTER_REF CASES_FILE

CASES_FILE holds case ids, one per line.  The protocol goes over a private
copy of stdout; the real file descriptor 1 is pointed at stderr first, so a
framework that prints cannot corrupt it.  Messages, in order:

    {"event": "ready", "name": ..., "versions": {...}}      after load()
    {"event": "done", "case": ID, "records": [...]}         one per case
    {"event": "load_error", "message": ...}                  load() failed; exits 3
    {"event": "end"}                                         every case done

The runner treats an exit before "end", or silence past its timeout, as a
crash or hang of the case in flight.  stdin is a pipe from the runner that is
never written: its EOF means the runner is gone, and the worker then kills what
it started and exits (conformance.procs.watch_parent).
"""
from __future__ import annotations

import json
import os
import platform
import sys

from conformance import devices
from conformance.procs import become_subreaper, kill_descendants, watch_parent


def _protocol_stream():
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _sender(proto):
    def send(message: dict) -> None:
        proto.write(json.dumps(message) + "\n")
    return send


def load_adapter(ref: str):
    """Import, instantiate and load the adapter; returns (adapter, versions)."""
    from conformance.adapter import adapter_name, import_adapter

    cls = import_adapter(ref)
    adapter = cls()
    adapter.name = adapter_name(cls, ref)
    adapter.device = os.environ.get(devices.ENV, "cpu")
    versions = adapter.load() or {}
    if not isinstance(versions, dict):
        raise TypeError(f"load() returned {type(versions).__name__}, not a dict of package versions")
    return adapter, {str(k): str(v) for k, v in versions.items()}


def _optional(adapter, method: str, fallback, on_error):
    """An optional method's result, JSON-checked; a failure is described, not fatal."""
    try:
        value = getattr(adapter, method)() if hasattr(adapter, method) else fallback
        json.dumps(value)
        return value
    except BaseException as exc:
        return on_error(f"{method}() raised {type(exc).__name__}: {exc}")


def evaluate_safely(adapter, case_id: str) -> list[dict]:
    """The records of one case; a fault of the suite or of the adapter's metadata is a record too."""
    from conformance.cases.case import parse_case
    from conformance.evaluate import evaluate, harness_error_records

    case = parse_case(case_id)
    try:
        records = evaluate(adapter, case)
        json.dumps(records)  # what the adapter put into a record must cross the pipe
    except BaseException as exc:
        records = harness_error_records(adapter.name, case, exc)
    return [r | {"device": adapter.device} for r in records]


def serve(ref: str, body) -> int:
    """A worker's life: the private protocol stream and the parent watchdog; load the adapter
    (a failure is reported as `load_error`, exit 3); `body(adapter, versions, send)`; then
    `end`.  Nothing the adapter started outlives it."""
    send = _sender(_protocol_stream())
    watch_parent()
    become_subreaper()
    try:
        try:
            adapter, versions = load_adapter(ref)
        except BaseException as exc:  # report any load failure, then stop: no case can run
            send({"event": "load_error", "message": f"{type(exc).__name__}: {exc}"})
            return 3
        versions.setdefault("python", platform.python_version())
        body(adapter, versions, send)
        send({"event": "end"})
        return 0
    finally:
        kill_descendants(os.getpid())


def main(argv: list[str]) -> int:
    ref, cases_file = argv

    def run_cases(adapter, versions, send):
        # Optional: documentation claims checked on the real layer; what a default-constructed
        # layer looks like (axes, epsilon, scale init).
        claims = _optional(adapter, "claims", [], lambda why: [{"claim": "documentation claims", "holds": None, "observed": why}])
        defaults = _optional(adapter, "defaults", {}, lambda why: {"error": why})
        device = devices.Placement(adapter.device, os.environ.get(devices.ENV + "_NAME", "")).label
        send({"event": "ready", "name": adapter.name, "versions": versions, "claims": claims, "defaults": defaults,
              "device": device})
        with open(cases_file) as f:
            ids = [line.strip() for line in f if line.strip()]
        for case_id in ids:
            send({"event": "done", "case": case_id, "records": evaluate_safely(adapter, case_id)})

    return serve(ref, run_cases)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
