"""What the user's lists decided, for the reports: accepted deviations (`--accept`) with their
real error, results beyond an accepted bound, and stale xfail entries.  Pure functions of the
records (conformance/accept.py and conformance/xfail.py put the fields there)."""
from __future__ import annotations

from conformance.numerics.compare import SCORED
from conformance.reports.results import Results
from conformance.xfail import stale


def accepted(results: Results) -> list[dict]:
    """Every accepted result: its scored error (the metric its check is judged by), the suite's
    tolerance, the bound accepted, the reason and the entry."""
    rows = []
    for r in results.records:
        if r["status"] != "accepted":
            continue
        tol, metrics = r.get("tolerance") or {}, r.get("metrics") or {}
        metric = SCORED.get(tol.get("metric"), "max_ulp")
        bound = r.get("accept_bound") or {}
        rows.append({"adapter": r["adapter"], "case": r["case"], "check": r["check"], "metric": metric,
                     "error": metrics.get(metric), "tolerance": tol.get("limit"),
                     "metrics": {m: metrics[m] for m in SCORED.values() if m in metrics}, "bound": bound,
                     "bound_text": ", ".join(f"{m} <= {b:g}" for m, b in bound.items()),
                     "reason": r.get("accept_reason", ""), "entry": r.get("accept_entry", "")})
    return rows


def beyond_accepted(results: Results) -> list[dict]:
    """The results an accept entry matched whose error exceeds its bound: they fail as usual."""
    return [{"adapter": r["adapter"], "case": r["case"], "check": r["check"], "status": r["status"],
             "why": r["accept_exceeded"]} for r in results.records if r.get("accept_exceeded")]


def stale_xfail(results: Results) -> list[tuple[str, str, int]]:
    """(entry, reason, results) of the xfail entries whose every result passes."""
    return stale(results.records)
