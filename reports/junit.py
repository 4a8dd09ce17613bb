"""junit.xml: one test case per (adapter, case, check), so CI tooling shows each result."""
from __future__ import annotations

from collections import defaultdict
from xml.etree import ElementTree as ET

from conformance.reports.results import Results


def render(results: Results) -> str:
    by_adapter: dict[str, list[dict]] = defaultdict(list)
    for r in results.records:
        by_adapter[r["adapter"]].append(r)
    root = ET.Element("testsuites", name="rmsnorm-conformance")
    for adapter, records in sorted(by_adapter.items()):
        count = lambda s: str(sum(r["status"] == s for r in records))  # noqa: E731
        suite = ET.SubElement(root, "testsuite", name=adapter, tests=str(len(records)),
                              failures=count("fail"), errors=count("error"), skipped=count("unsupported"))
        for r in records:
            case = ET.SubElement(suite, "testcase", classname=adapter, name=f"{r['case']}::{r['check']}",
                                 time=f"{r.get('seconds') or 0:.6f}")
            tag = {"fail": "failure", "error": "error", "unsupported": "skipped"}.get(r["status"])
            if tag:
                ET.SubElement(case, tag, message=r.get("message", "")[:1000])
    return ET.tostring(root, encoding="unicode")
