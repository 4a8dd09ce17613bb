"""The search of `conformance bisect` (conformance/execution/bisection.py), with outcomes as plain
values: one change, none, more than one, skipped versions.  No pip, no processes."""
import pytest

from conformance.execution.bisection import Skip, bisect

VERSIONS = [f"3.{i}.0" for i in range(15)]


def outcomes(table: dict, skip: dict | None = None):
    """outcome(version): table[version], or Skip(skip[version]); counts calls."""
    calls = []

    def outcome(v):
        calls.append(v)
        if skip and v in skip:
            raise Skip(skip[v])
        return table[v]
    outcome.calls = calls
    return outcome


def step(at: int, versions=VERSIONS, before="error", after="pass") -> dict:
    return {v: before if i < at else after for i, v in enumerate(versions)}


@pytest.mark.parametrize("at", range(1, 15))
def test_one_change_is_found_in_log_time(at):
    f = outcomes(step(at))
    b = bisect(VERSIONS, f)
    assert b.verdict == "changed"
    assert (b.change.last_same, b.change.first_changed) == (VERSIONS[at - 1], VERSIONS[at])
    assert (b.change.before, b.change.after) == ("error", "pass")
    assert len(f.calls) == len(set(f.calls)) <= 2 + 4  # both ends, then at most ceil(log2(14)) halvings
    assert [t.version for t in b.tried] == f.calls and b.tried[0].version == "3.0.0" and b.tried[1].version == "3.14.0"


def test_same_outcome_at_both_ends_tries_only_the_ends():
    f = outcomes({v: "pass" for v in VERSIONS})
    b = bisect(VERSIONS, f)
    assert b.verdict == "same" and b.change is None and b.changes == ()
    assert f.calls == ["3.0.0", "3.14.0"]


def test_a_third_outcome_is_more_than_one_change():
    table = {v: "a" if i < 5 else "b" if i < 10 else "c" for i, v in enumerate(VERSIONS)}
    b = bisect(VERSIONS, outcomes(table))
    assert b.verdict == "multiple" and b.change is None
    assert [(c.before, c.after) for c in b.changes] == [("a", "b"), ("b", "c")]
    first = b.changes[0]
    assert (first.last_same, first.first_changed) == ("3.4.0", "3.5.0")  # the first change is still narrowed
    assert b.changes[1].first_changed in VERSIONS[10:]


def test_skipped_versions_are_stepped_over_with_their_reasons():
    table = step(6)
    skip = {"3.0.0": "does not install: no matching distribution", "3.6.0": "failed to load: ImportError",
            "3.5.0": "every result unsupported", "3.14.0": "does not install: broken requirement"}
    b = bisect(VERSIONS, outcomes(table, skip))
    assert b.verdict == "changed"
    c = b.change
    assert (c.last_same, c.first_changed) == ("3.4.0", "3.7.0")  # the change lies in 3.5.0 .. 3.7.0
    assert c.skipped == ("3.5.0", "3.6.0") and c.untried == ()
    reasons = {t.version: t.skipped for t in b.tried if not t.judged}
    assert reasons == skip
    assert {t.version for t in b.judged} >= {"3.1.0", "3.13.0", "3.4.0", "3.7.0"}


def test_fewer_than_two_judged_versions_is_untestable():
    skip = {v: "does not install" for v in VERSIONS[1:]}
    b = bisect(VERSIONS, outcomes(step(3), skip))
    assert b.verdict == "untestable" and b.changes == ()
    assert len(b.tried) == 15 and len(b.judged) == 1
    assert bisect([], outcomes({})).verdict == "untestable"


def test_two_versions_and_tuples_as_outcomes():
    a = (("k", "case", "forward", "fail", "forward/eps-outside-sqrt"),)
    b_ = (("k", "case", "forward", "pass", None),)
    b = bisect(["0.1", "0.2"], outcomes({"0.1": a, "0.2": b_}))
    assert b.verdict == "changed" and b.change.before == a and b.change.after == b_
    assert [t.version for t in b.in_version_order()] == ["0.1", "0.2"]


def test_seconds_come_from_the_clock():
    ticks = iter(range(100))
    b = bisect(["1", "2"], outcomes({"1": 0, "2": 1}), clock=lambda: next(ticks))
    assert [t.seconds for t in b.tried] == [1, 1] and b.seconds == 2


# -- the outcome of one version's run (conformance/commands/bisect.py) --------------------------

def _rec(check, status, adapter="k", case="f32/4x32/ax-1/eps1e-05/tiny/rand/s0", finding=None, message=""):
    return {"adapter": adapter, "case": case, "check": check, "status": status, "finding": finding, "message": message}


def test_a_run_whose_adapter_did_not_load_or_declined_everything_is_skipped():
    from conformance.commands.bisect import outcome_of
    from conformance.reports.results import Results

    everything = lambda r: True  # noqa: E731
    no_load = Results([_rec("forward", "error", message="adapter failed to load: ImportError: no layer\nmore"),
                       _rec("grad_x", "error", message="adapter failed to load: ImportError: no layer")], {})
    with pytest.raises(Skip, match="k failed to load: adapter failed to load: ImportError: no layer$"):
        outcome_of(no_load, everything)
    declined = Results([_rec("forward", "unsupported", message="normalizes trailing axes only")], {"k": {"versions": {}}})
    with pytest.raises(Skip, match="declined every chosen result: normalizes trailing axes only"):
        outcome_of(declined, everything)
    with pytest.raises(Skip, match="none of the chosen results"):
        outcome_of(declined, lambda r: False)
    # A crash at build of a loaded adapter is an outcome, not a skip.
    crashed = Results([_rec("forward", "error", finding="crash/build-raised-AttributeError/k")],
                      {"k": {"versions": {"keras": "3.0.0"}}})
    value, labels, imported = outcome_of(crashed, everything)
    assert value == (("k", "f32/4x32/ax-1/eps1e-05/tiny/rand/s0", "forward", "error", "crash/build-raised-AttributeError/k"),)
    assert imported == {"k": {"keras": "3.0.0"}}


def test_outcomes_in_words():
    from conformance.commands.bisect import outcome_text, subject

    case = "f32/4x32/ax-1/eps1e-05/tiny/rand/s0"
    before = (("k", case, "forward", "error", "crash/x/k"), ("k", case, "grad_x", "pass", None))
    keys = [o[:3] for o in before]
    assert subject(keys[:1]) == f"forward of {case} on k"
    assert subject(keys) == f"forward, grad_x of {case} on k"
    assert outcome_text(before, keys[:1], {"crash/x/k": "crash: build raised X"}) == "error (crash: build raised X)"
    assert outcome_text(before, keys, {}) == "error (crash/x/k) on forward; pass on grad_x"
    assert outcome_text((), keys[:1], {}) == "missing"
