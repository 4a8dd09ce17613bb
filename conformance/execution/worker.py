"""The worker process: adapters load once, cases run one after another, one JSON line per
finished case.

    python -m conformance.execution.worker ADAPTER_REF CASES_FILE    one adapter, the cases in the file
    python -m conformance.execution.worker --serve                   tasks from stdin, one JSON line each:
        {"adapter": REF, "cases": [ID, ...], "log": PATH}

A serving worker is shared by the adapters of one worker group (the same framework, the
same environment; conformance.execution.adapter_refs.share_key): each adapter is loaded once per
process, so torch or JAX is imported once for all of them.  Each task's messages end with
"end", and its stderr goes to the task's log.  The protocol goes over a private
copy of stdout; the real file descriptor 1 is pointed at stderr first, so a
framework that prints cannot corrupt it.  The messages are protocol.py's.

The runner treats an exit before "end", or silence past its timeout, as a
crash or hang of the case in flight.  stdin is a pipe from the runner that is
never written: its EOF means the runner is gone, and the worker then kills what
it started and exits (conformance.execution.procs.watch_parent).
"""
from __future__ import annotations

import json
import os
import platform
import queue
import sys

from conformance.adapter import capabilities, provides
from conformance.execution import devices, protocol, state
from conformance.execution.procs import become_subreaper, kill_descendants, watch_parent


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
    from conformance.execution.loading import adapter_name, import_adapter

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
        value = getattr(adapter, method)() if provides(adapter, method) else fallback
        json.dumps(value)
        return value
    except BaseException as exc:
        return on_error(f"{method}() raised {type(exc).__name__}: {exc}")


def evaluate_safely(adapter, case_id: str) -> list[dict]:
    """The records of one case; a fault of the suite or of the adapter's metadata is a record too."""
    from conformance.cases.case import parse_case
    from conformance.checks.pipeline import evaluate, harness_error_records
    from conformance.execution.cache import rerun_without_bad_artifacts

    case = parse_case(case_id)
    try:
        # A framework's cache artifact that failed to load: the case once more without that cache.
        records = rerun_without_bad_artifacts(lambda: evaluate(adapter, case), f"{adapter.name} {case_id}")
        json.dumps(records)  # what the adapter put into a record must cross the pipe
    except BaseException as exc:
        records = harness_error_records(adapter.name, case, exc)
    return [r | {"device": adapter.device} for r in records]


def run_cases(adapter, case_ids: list[str], send, watch=None, changed: list | None = None) -> None:
    """Each case's records; with a `watch` (state.Watch), a case after which the process state
    differs has its records marked (`state_changes`), and the changes go into `changed`."""
    for case_id in case_ids:
        records = evaluate_safely(adapter, case_id)
        found = watch.check() if watch is not None else []
        if found:
            records = [r | {"state_changes": found} for r in records]
            changed.extend(c | {"case": case_id} for c in found)
        send(protocol.done(case_id, records))


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
            send(protocol.load_error(exc))
            return 3
        versions.setdefault("python", platform.python_version())
        body(adapter, versions, send)
        send(protocol.end())
        return 0
    finally:
        kill_descendants(os.getpid())


def ready_message(adapter, versions: dict) -> dict:
    """The "ready" message: versions, and, optional, the documentation claims checked on the real
    layer and what a default-constructed layer looks like (axes, epsilon, scale init)."""
    claims = _optional(adapter, "claims", [], lambda why: [{"claim": "documentation claims", "holds": None, "observed": why}])
    defaults = _optional(adapter, "defaults", {}, lambda why: {"error": why})
    device = devices.Placement(adapter.device, os.environ.get(devices.ENV + "_NAME", "")).label
    return protocol.ready(adapter.name, versions, claims, defaults, device, list(capabilities(adapter)))


def _log_to(path: str) -> None:
    """This task's stderr (and the framework's prints, which go there) into its own log file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


def serve_tasks() -> int:
    """A shared worker's life: tasks from stdin until the runner closes it.

    The process state the numerics depend on (state.py) is read when it starts, after each
    adapter's load() and after each case: an adapter that changed it has the records of that case
    (or its adapter record, for load()) marked, the task ends with `state_changed`, and from then on
    the worker serves that adapter alone (another adapter's task makes it exit): what an adapter
    does to the process never reaches the next adapter's verdicts."""
    send = _sender(_protocol_stream())
    tasks: queue.Queue = queue.Queue()
    watch_parent(on_line=tasks.put)  # stdin's EOF ends this process there
    become_subreaper()
    watch = state.Watch()  # after watch_parent: its thread is the worker's own
    loaded: dict[str, tuple] = {}
    retired_for = None  # the adapter that changed this process's state: the only one it still serves
    try:
        while True:
            task = json.loads(tasks.get())
            ref = task["adapter"]
            if retired_for is not None and ref != retired_for:
                kill_descendants(os.getpid())
                os._exit(protocol.EXIT_STATE_CHANGED)  # not sys.exit: a thread the adapter left would hold it
            _log_to(task["log"])
            changed: list[dict] = []
            if ref not in loaded:  # each adapter loaded once per process, kept for its next task
                try:
                    adapter, versions = load_adapter(ref)
                except BaseException as exc:  # a half-done import may have left anything behind: stop
                    send(protocol.load_error(exc))
                    return 3
                versions.setdefault("python", platform.python_version())
                ready = ready_message(adapter, versions)
                loaded[ref] = adapter, ready
                found = watch.check()  # load(), claims() and defaults()
                if found:
                    ready = ready | {"state_changes": found}
                    changed.extend(c | {"case": None} for c in found)
            else:
                adapter, ready = loaded[ref]
            send(ready)
            run_cases(adapter, task["cases"], send, watch, changed)
            if changed:
                send(protocol.state_changed(adapter.name, changed))
                retired_for = ref
            send(protocol.end())
    finally:
        kill_descendants(os.getpid())


def main(argv: list[str]) -> int:
    if argv == ["--serve"]:
        return serve_tasks()
    ref, cases_file = argv

    def body(adapter, versions, send):
        send(ready_message(adapter, versions))
        with open(cases_file) as f:
            run_cases(adapter, [line.strip() for line in f if line.strip()], send)

    return serve(ref, body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
