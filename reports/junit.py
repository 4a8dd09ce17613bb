"""junit.xml: one test case per (adapter, case, check), so CI tooling shows each result."""
from __future__ import annotations

from collections import defaultdict
from xml.etree import ElementTree as ET

from conformance.reports.results import Results


def render(results: Results) -> str:
    by_adapter: dict[str, list[dict]] = defaultdict(list)
    for r in results.records:
        by_adapter[r["adapter"]].append(r)
    strict = results.gate.strict_xfail  # an xpass fails the run, so its test case fails too
    root = ET.Element("testsuites", name="rmsnorm-conformance")
    for adapter, records in sorted(by_adapter.items()):
        count = lambda s: sum(r["status"] == s for r in records)  # noqa: E731
        failures = count("fail") + (count("xpass") if strict else 0)
        suite = ET.SubElement(root, "testsuite", name=adapter, tests=str(len(records)),
                              failures=str(failures), errors=str(count("error")), skipped=str(count("unsupported")))
        for r in records:
            case = ET.SubElement(suite, "testcase", classname=adapter, name=f"{r['case']}::{r['check']}",
                                 time=f"{r.get('seconds') or 0:.6f}")
            tag = {"fail": "failure", "error": "error", "unsupported": "skipped", "xpass": "failure" if strict else None
                   }.get(r["status"])
            if tag:
                ET.SubElement(case, tag, message=r.get("message", "")[:1000])
            if r["status"] == "accepted":  # a passing test case that says it was accepted, and why
                properties = ET.SubElement(case, "properties")
                ET.SubElement(properties, "property", name="accepted", value=r.get("accept_reason", ""))
                ET.SubElement(case, "system-out").text = f"accepted deviation ({r.get('accept_entry', '')}): {r.get('message', '')}"
    return ET.tostring(root, encoding="unicode")
