"""The user's lists on records, in-process: accepted deviations judged again, xfail entries by finding,
stale entries, and the adapter renames of a diff (end to end: tests/harness/test_accept.py,
test_xfail_findings.py, test_diff_rename.py)."""
from conformance.accept import AcceptList, Deviation, unjudged
from conformance.reports.diff import diff, renamed
from conformance.reports.results import Results
from conformance.xfail import Entry, XfailList, stale

CASE = "f32/4x32/ax-1/eps1e-06/normal/rand/s0"


def _fail(check="forward", error=50.0, message=None, **metrics):
    metric = "max_ulp" if check == "forward" else "max_units"
    return {"record": "result", "case": CASE, "adapter": "mine", "check": check, "status": "fail",
            "metrics": {metric: error, "nonfinite_mismatch": 0, **metrics},
            "tolerance": {"metric": "ulp" if check == "forward" else "units", "limit": 10.5},
            "message": message or f"error {error:.4g} ULP > tolerance 10.5 at [0, 1]: got 1, expected 1.1",
            "diagnosis": {"id": "unexplained", "class": "unexplained"}, "finding": "forward/unexplained/mine"}


def _accept(**bounds):
    return AcceptList([Deviation(1, "mine", "*", "*", tuple(bounds.items()), "by design")])


def test_a_bound_accepts_the_scored_error_and_nothing_else():
    ok, over = _accept(max_ulp=64.0).apply([_fail(error=50.0), _fail(error=65.0)])
    assert ok["status"] == "accepted" and ok["accept_bound"] == {"max_ulp": 64.0} and ok["metrics"]["max_ulp"] == 50.0
    assert over["status"] == "fail" and over["accept_exceeded"].startswith("max_ulp 65 > 64: beyond the bound of accept entry #1")
    grad, = _accept(max_ulp=64.0).apply([_fail("grad_x", 5.0)])  # judged by max_units, which is not bounded
    assert grad["status"] == "fail" and "judged by max_units" in grad["accept_exceeded"]
    nan = _fail(message="NaN/Inf pattern differs in 1 element(s), first at [0]: got 0, expected nan; error 50 ULP > tolerance")
    assert _accept(max_ulp=1e9).apply([nan])[0]["status"] == "fail"


def test_judged_again_the_previous_acceptance_is_dropped_and_xfail_is_kept():
    accepted, = _accept(max_ulp=64.0).apply([_fail()])
    again, = _accept(max_ulp=1.0).apply([accepted])
    assert again["status"] == "fail" and "accept_reason" not in again and "original_status" not in again
    xfailed = _fail() | {"status": "xfail", "original_status": "fail", "xfail_reason": "known"}
    assert unjudged(xfailed) == xfailed


def test_a_finding_entry_matches_its_finding_or_defect_and_a_case_makes_passes_xpass():
    entry = Entry(None, "*", "*", "known", "forward/unexplained/*")
    assert entry.matches(_fail()) and not entry.matches(_fail() | {"finding": "gradient/unexplained/mine"})
    assert not entry.matches(_fail() | {"status": "pass", "finding": None})
    by_defect = Entry(None, "*", "*", "known", "mine/unexplained")
    assert not by_defect.matches(_fail()) and by_defect.matches(_fail(), ("mine/unexplained",))
    scoped = Entry("f32/*", "*", "*", "gone", "forward/unexplained/*")
    passing = {k: v for k, v in _fail().items() if k not in ("finding", "diagnosis")} | {"status": "pass"}
    assert scoped.matches(passing) and not scoped.matches(passing | {"check": "grad_x"})
    records = XfailList([scoped]).apply([passing])
    assert records[0]["status"] == "xpass" and stale(records) == [(scoped.describe(), "gone", 1)]
    assert stale(XfailList([scoped]).apply([passing, _fail()])) == []  # one xfail: not stale


def test_renamed_baseline_compares_with_the_current_names():
    base = Results([_fail() | {"status": "pass", "adapter": "v1"}], {"v1": {"adapter": "v1", "versions": {"k": "1"}}})
    cur = Results([_fail() | {"adapter": "v2"}], {"v2": {"adapter": "v2", "versions": {"k": "2"}}})
    assert diff(base, cur)["compared"] == 0
    d = diff(renamed(base, {"v1": "v2"}), cur)
    assert d["compared"] == 1 and [r["adapter"] for r in d["regressions"]] == ["v2"]
    assert d["version_changes"] == [{"adapter": "v2", "package": "k", "baseline": "1", "current": "2"}]
