"""report.json: the same summary as report.md, for machines."""
from __future__ import annotations

from conformance.reports.results import Results, defaults_table, rerun_command, table, verdict


def render(results: Results) -> dict:
    return {
        "verdict": verdict(results),
        "adapters": results.adapters,
        "table": table(results),
        "defaults": defaults_table(results),
        "failures": [
            {k: r.get(k) for k in ("case", "adapter", "check", "status", "metrics", "tolerance", "message")}
            | {"rerun": rerun_command(r, results.adapters)}
            for r in results.failing
        ],
    }
