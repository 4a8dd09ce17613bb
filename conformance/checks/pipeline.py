"""The pipeline of one case through one adapter: materialize, build once, run every check.

Runs inside the adapter's worker process and returns the finished records, so only small JSON
crosses the process boundary.  The checks are the registry's (registry.py), in its order; each
is guarded: whatever one raises is that check's `error` record and leaves the others alone.
Every call into the adapter catches BaseException: an adapter's SystemExit or
KeyboardInterrupt is that check's `error`, and the worker's life is the runner's to end.
"""
from __future__ import annotations

from conformance.cases.case import Case, layer_spec, materialize
from conformance.cases.invalid import Invalid
from conformance.checks import untouched
from conformance.checks.configuration import checked_config
from conformance.checks.context import CaseRun
from conformance.checks.effective import effective_parameters
from conformance.checks.invalid import InvalidRun
from conformance.checks.records import framework_error, record, suite_error
from conformance.checks.registry import (
    Check,
    applicable,
    attach_diagnosis,
    checks_for,
    missing,
)


def evaluate(adapter, case) -> list[dict]:
    """Every record of one case; each non-passing one carries its diagnosis and finding."""
    return [attach_diagnosis(r) for r in _records(adapter, case)]


def _records(adapter, case) -> list[dict]:
    checks = applicable(case)
    if isinstance(case, Invalid):  # the check builds the layer itself: there is no right one to build
        return run_checks(checks, InvalidRun(adapter, case))
    arrays = materialize(case)
    spec = layer_spec(case, arrays)
    before = untouched.snapshot(arrays)  # the bits handed over, before anything can write into them

    def every(status: str, message: str) -> list[dict]:  # the case stopped before its checks ran
        return [_unless_missing(adapter, c, record(case, adapter.name, c.name, status, message))
                for c in checks if c.recorded_without]

    try:
        reason = adapter.supports(spec)
    except BaseException as exc:
        return every("error", framework_error("supports", exc))
    if reason:
        return every("unsupported", str(reason))
    try:
        layer = adapter.build(spec)
    except BaseException as exc:
        return every("error", framework_error("build", exc))
    config, config_problem = checked_config(adapter, layer)
    eps = _epsilon_used(case, config)
    if eps is None:
        why = config_problem or "the adapter's config() does not say which epsilon the layer uses"
        return every("error", f"epsilon=None: {why}")
    # Scored against what the layer really applies; the difference from the request is its own check.
    eps, scale, outcome = effective_parameters(adapter, layer, eps, arrays.scale, case.precision.param)
    ctx = CaseRun(adapter, case, spec, arrays, layer, config, config_problem, eps, scale, before)
    ctx.parameters_outcome = outcome
    return run_checks(checks, ctx)


def run_checks(checks: tuple[Check, ...], ctx) -> list[dict]:
    """Each check's record, in order: `unsupported` naming the method a check needs where the
    adapter lacks it, the check's own record, or its `error` where it raised."""
    out = []
    for check in checks:
        why = missing(ctx.adapter, check)
        if why:
            if check.recorded_without:
                out.append(ctx.record(check.name, "unsupported", why, needs=check.needs))
            continue
        try:
            out.append(check.run(ctx))
        except BaseException as exc:
            out.append(ctx.record(check.name, "error", framework_error(check.name, exc)))
    return out


def _unless_missing(adapter, check: Check, r: dict) -> dict:
    """A check the adapter cannot run whatever the case is `unsupported`, even where the case
    itself failed (a forward-only adapter's gradients where the build raised)."""
    why = missing(adapter, check)
    return r | {"status": "unsupported", "message": why, "needs": check.needs} if why and r["status"] == "error" else r


def _epsilon_used(case: Case, config: dict | None) -> float | None:
    if case.epsilon is not None:
        return case.epsilon
    eps = (config or {}).get("epsilon")
    return float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) else None


def error_records(adapter_name: str, case, message: str) -> list[dict]:
    """An `error` record for every check of a case that could not run (a crash, a hang, a fault)."""
    return [attach_diagnosis(record(case, adapter_name, check, "error", message)) for check in checks_for(case)]


def harness_error_records(adapter_name: str, case, exc: BaseException) -> list[dict]:
    """Records for a case whose evaluation raised where no check could catch it."""
    return error_records(adapter_name, case, suite_error("this case", exc))
