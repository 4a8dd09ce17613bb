"""report.json: the same summary as report.md, for machines: defects and findings first."""
from __future__ import annotations

from conformance.reports.defects import scoreboard
from conformance.reports.deviations import accepted, beyond_accepted, stale_xfail
from conformance.reports.findings import coverage
from conformance.reports.results import (
    Results, capability_gaps, configuration_table, defaults_table, invalid_table, property_table, rerun_command,
    state_change_line, state_changes, table, verdict,
)


def render(results: Results) -> dict:
    v = results.judgement
    return {
        "verdict": verdict(results),
        "failed": results.failed,
        "gating": {"fail_on": sorted(results.gate.fail_on), "min_coverage": results.gate.min_coverage,
                   "gating_findings": [f["id"] for f in v.gating], "uncovered": v.uncovered,
                   "strict_xfail": results.gate.strict_xfail,
                   "xpassed": [{k: r[k] for k in ("case", "adapter", "check")} for r in v.xpassed]},
        "accepted": accepted(results),
        "beyond_accepted": beyond_accepted(results),
        "stale_xfail": [{"entry": e, "reason": reason, "results": n} for e, reason, n in stale_xfail(results)],
        "defects": results.defects,
        "scoreboard": scoreboard(results.records, results.defects, results.adapters),
        "findings": results.findings,
        "coverage": coverage(results.records),
        "adapters": results.adapters,
        "table": table(results),
        "defaults": defaults_table(results),
        "properties": property_table(results),
        "fused_forms": _fused_forms(results),
        "capability_gaps": capability_gaps(results),
        "state_changes": [row | {"text": state_change_line(row)} for row in state_changes(results)],
        "configuration": configuration_table(results),
        "invalid_configurations": invalid_table(results),
        "failures": [
            {k: r.get(k) for k in ("case", "adapter", "check", "status", "metrics", "tolerance", "message", "diagnosis",
                                   "finding")}
            | {"rerun": rerun_command(r, results.adapters, results.run)}
            for r in results.failing
        ],
    }


def _fused_forms(results: Results) -> dict:
    from conformance.reports.fused import fused_table

    return fused_table(results.records, results.findings)
