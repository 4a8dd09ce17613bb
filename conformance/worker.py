"""The worker process: one adapter, many cases, one JSON line per finished case.

    python -m conformance.worker ADAPTER_REF CASES_FILE

CASES_FILE holds case ids, one per line.  The protocol goes over a private
copy of stdout; the real file descriptor 1 is pointed at stderr first, so a
framework that prints cannot corrupt it.  Messages, in order:

    {"event": "ready", "name": ..., "versions": {...}}      after load()
    {"event": "done", "case": ID, "records": [...]}         one per case
    {"event": "load_error", "message": ...}                  load() failed; exits 3

The runner treats EOF before the last "done", or silence past its timeout,
as a crash or hang of the case in flight.
"""
from __future__ import annotations

import json
import os
import platform
import sys


def _protocol_stream():
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def main(argv: list[str]) -> int:
    proto = _protocol_stream()
    ref, cases_file = argv
    send = lambda message: proto.write(json.dumps(message) + "\n")  # noqa: E731
    try:
        from conformance.adapter import adapter_name, import_adapter

        cls = import_adapter(ref)
        adapter = cls()
        adapter.name = adapter_name(cls, ref)
        versions = dict(adapter.load() or {})
    except BaseException as exc:  # report any load failure, then stop: no case can run
        send({"event": "load_error", "message": f"{type(exc).__name__}: {exc}"})
        return 3
    versions.setdefault("python", platform.python_version())
    try:  # optional: claims of the framework's documentation, checked on the real layer
        claims = adapter.claims() if hasattr(adapter, "claims") else []
    except Exception as exc:
        claims = [{"claim": "documentation claims", "holds": None, "observed": f"checking raised {type(exc).__name__}: {exc}"}]
    try:  # optional: what a default-constructed layer looks like (axes, epsilon, scale init)
        defaults = adapter.defaults() if hasattr(adapter, "defaults") else {}
    except Exception as exc:
        defaults = {"error": f"{type(exc).__name__}: {exc}"}
    send({"event": "ready", "name": adapter.name, "versions": versions, "claims": claims, "defaults": defaults})

    from conformance.cases.case import parse_case
    from conformance.evaluate import evaluate

    with open(cases_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    for case_id in ids:
        send({"event": "done", "case": case_id, "records": evaluate(adapter, parse_case(case_id))})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
