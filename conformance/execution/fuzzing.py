"""Seeded fuzzing: hypothesis draws cases from the suite's dimensions, shrinks a failure.

Runs inside the adapter's worker process (`python -m conformance.execution.fuzzing REF SEED
BUDGET`), so the framework is imported once and its environment is its own.
Each dimension shrinks toward its first value (dimensions.py lists the simplest
first) and the seed toward 0, so the reported case is a minimal one.  The same
seed draws the same cases.
"""
from __future__ import annotations

import sys

from conformance.cases.case import Case
from conformance.cases.dimensions import DTYPES, EPSILONS, LAYOUTS, DISTRIBUTION_NAMES, SCALE_NAMES
from conformance.execution import protocol
from conformance.execution.worker import evaluate_safely

BAD = ("fail", "error")


def fuzz(adapter, seed: int, budget: int, announce=lambda case: None,
         checked=lambda case, records: None) -> tuple[int, Case | None, list[dict]]:
    """(examples tried, the minimal failing case or None, its records).

    At most `budget` cases are evaluated, shrinking included (hypothesis's max_examples does
    not count shrink steps): a case id seen before gets its verdict again without running (a
    failing one raises again, so hypothesis's replay of the shrunk example agrees, never Flaky),
    and once the budget is spent an unseen case passes without running, so hypothesis keeps the
    smallest failure found by then.

    `announce(case)` is called before each evaluation and `checked(case, records)`
    after it (records only when it fails), so the runner knows which case is in
    flight if the worker crashes or hangs, and the failure shrunk so far if
    fuzzing is stopped by time."""
    from hypothesis import HealthCheck, given, settings, strategies as st
    from hypothesis import seed as hseed

    tried = 0
    verdicts: dict[str, list[dict] | None] = {}  # case id -> its records if it fails, None if it passes
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
        if case.id not in verdicts:
            if tried >= budget:
                return  # the budget is spent: an unseen case passes, unevaluated
            tried += 1
            announce(case)
            records = evaluate_safely(adapter, case.id)
            bad = any(r["status"] in BAD for r in records)
            checked(case, records if bad else [])
            verdicts[case.id] = records if bad else None
        records = verdicts[case.id]
        if records is not None:
            last_failure["case"], last_failure["records"] = case, records
            raise AssertionError(case.id)

    try:
        check()
    except AssertionError:
        # Hypothesis replays the shrunk example last, so it is the last failure recorded.
        return tried, last_failure["case"], last_failure["records"]
    return tried, None, []


def main(argv: list[str]) -> int:
    """`python -m conformance.execution.fuzzing REF SEED BUDGET SECONDS`: the worker protocol of
    conformance.execution.worker, with `case` before each example, `checked` after it and one
    `result` at the end (protocol.py).  SECONDS > 0 fuzzes in rounds of BUDGET examples
    (seeds SEED, SEED+1, ...) until that much time is spent or a failure is found."""
    import time

    from conformance.execution.worker import serve

    ref, seed, budget, seconds = argv[0], int(argv[1]), int(argv[2]), float(argv[3])

    def search(adapter, versions, send):
        send(protocol.ready(adapter.name, versions))
        start, tried, round_ = time.monotonic(), 0, 0
        while True:
            n, case, records = fuzz(adapter, seed + round_, budget, lambda c: send(protocol.case(c.id)),
                                    lambda c, rs: send(protocol.checked(c.id, rs)))
            tried, round_ = tried + n, round_ + 1
            if case or seconds <= 0 or time.monotonic() - start >= seconds:
                break
        send(protocol.result(tried, case.id if case else None, records))

    return serve(ref, search)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
