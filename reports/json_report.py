"""report.json: the same summary as report.md, for machines."""
from __future__ import annotations

from conformance.reports.results import (
    Results, configuration_table, defaults_table, invalid_table, rerun_command, table, verdict,
)


def render(results: Results) -> dict:
    return {
        "verdict": verdict(results),
        "adapters": results.adapters,
        "table": table(results),
        "defaults": defaults_table(results),
        "configuration": configuration_table(results),
        "invalid_configurations": invalid_table(results),
        "failures": [
            {k: r.get(k) for k in ("case", "adapter", "check", "status", "metrics", "tolerance", "message")}
            | {"rerun": rerun_command(r, results.adapters)}
            for r in results.failing
        ],
    }
