"""Reports rendered from records, in this process: the records the checks give planted numpy
layers, through the findings, the renderers and the regression diff.  (The commands that write
them into an output folder: tests/harness/test_report_commands.py.)"""
from xml.etree import ElementTree as ET

from conformance.cases.suites import smoke
from conformance.checks.registry import checks_for
from conformance.reports import junit, markdown
from conformance.reports.diff import diff, regressed
from conformance.reports.findings import Gate
from conformance.reports.results import Results
from tests.engine.inprocess import run

PLANTED = "tests.planted.adapters:"


def _results(ref: str, cases=None) -> Results:
    return Results(run(ref, smoke() if cases is None else cases))


def test_junit_has_one_testcase_per_result():
    root = ET.fromstring(junit.render(_results(PLANTED + "SloppyRsqrt")))
    cases = root.findall(".//testcase")
    assert len(cases) == sum(len(checks_for(c)) for c in smoke())
    failed = [c for c in cases if c.find("failure") is not None]
    # The sloppy rsqrt shows in every derivative, the forward-mode and second-order ones too, and
    # in the offset form's layer (the same call and grad).
    assert failed and all(c.get("name").endswith(("::forward", "::grad_x", "::grad_scale", "::invalid_config", "::jvp", "::hvp",
                                                  "::offset_forward", "::offset_grad"))
                          for c in failed)


def test_every_failure_belongs_to_a_finding_the_markdown_report_names():
    results = _results(PLANTED + "EpsOutsideSqrt")
    failed = [r for r in results.records if r["status"] == "fail"]
    assert failed and all(r["message"] for r in failed)
    ids = {f["id"] for f in results.findings}
    assert {r["finding"] for r in failed} <= ids
    md = markdown.render(results)
    assert all(f"`{f['id']}`" in md and f["smallest"]["case"] in md for f in results.findings)
    assert results.failed and md.startswith("#")


def test_diff_of_two_identical_runs_is_clean():
    d = diff(_results(PLANTED + "Correct"), _results(PLANTED + "Correct"))
    assert d["compared"] and not (d["regressions"] or d["improvements"] or d["new_findings"] or d["resolved_findings"])
    assert not regressed(d, Gate())


def test_missing_results_are_regressions():
    f32 = [c for c in smoke() if c.id.startswith("f32/")]
    d = diff(_results(PLANTED + "Correct"), _results(PLANTED + "Correct", f32))
    assert d["regressions"] and {r["current"] for r in d["regressions"]} == {"missing"}
    assert regressed(d, Gate())
