"""Seeded fuzzing: hypothesis draws cases from the suite's dimensions, shrinks a failure.

Runs inside the adapter's worker process (`python -m conformance.fuzz REF SEED
BUDGET`), so the framework is imported once and its environment is its own.
Each dimension shrinks toward its first value (dimensions.py lists the simplest
first) and the seed toward 0, so the reported case is a minimal one.  The same
seed draws the same cases.
"""
from __future__ import annotations

import json
import sys

from conformance.cases.case import Case
from conformance.cases.dimensions import DTYPES, EPSILONS, LAYOUTS, DISTRIBUTION_NAMES, SCALE_NAMES
from conformance.evaluate import evaluate

BAD = ("fail", "error")


def fuzz(adapter, seed: int, budget: int) -> tuple[int, Case | None, list[dict]]:
    """(examples tried, the minimal failing case or None, its records)."""
    from hypothesis import HealthCheck, given, settings, strategies as st
    from hypothesis import seed as hseed

    tried = 0
    last_failure: dict = {}

    cases = st.builds(
        lambda layout, dtype, eps, dist, scale, s: Case(layout.shape, layout.axis, dtype, eps, dist, scale, s),
        st.sampled_from(LAYOUTS), st.sampled_from(DTYPES), st.sampled_from(EPSILONS),
        st.sampled_from(DISTRIBUTION_NAMES), st.sampled_from(SCALE_NAMES), st.integers(0, 2**16),
    )

    @hseed(seed)
    @settings(max_examples=budget, database=None, deadline=None, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(cases)
    def check(case):
        nonlocal tried
        tried += 1
        records = evaluate(adapter, case)
        if any(r["status"] in BAD for r in records):
            last_failure["case"], last_failure["records"] = case, records
            raise AssertionError(case.id)

    try:
        check()
    except AssertionError:
        # Hypothesis replays the shrunk example last, so it is the last failure recorded.
        return tried, last_failure["case"], last_failure["records"]
    return tried, None, []


def main(argv: list[str]) -> int:
    from conformance.worker import _protocol_stream

    proto = _protocol_stream()
    ref, seed, budget = argv[0], int(argv[1]), int(argv[2])
    from conformance.adapter import adapter_name, import_adapter

    cls = import_adapter(ref)
    adapter = cls()
    adapter.name = adapter_name(cls, ref)
    versions = adapter.load() or {}
    tried, case, records = fuzz(adapter, seed, budget)
    proto.write(json.dumps({"adapter": adapter.name, "versions": versions, "tried": tried,
                            "case": case.id if case else None, "records": records}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
