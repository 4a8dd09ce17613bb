"""pytest integration: `pytest --conformance-adapter mypkg.kernels:MyRMSNorm`.

One test item per (adapter, case, check), named `case-id[check]` under a
collector named after the adapter (node id `conformance::adapter::case-id[check]`), so
`-k`, `--junitxml` and CI tooling work as for any test.  The default suite is `smoke`
(`--conformance-suite` picks another).  The selected items'
cases run once, through the same isolated workers as `conformance run`, when the
first item runs; each item then reports its own record.  `unsupported` is a skip.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from conformance.checks.registry import checks_for

_RESULTS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "RMS normalization conformance")
    group.addoption("--conformance-adapter", action="append", default=[], metavar="MODULE:CLASS",
                    help="adapter to test: a built-in name or package.module:ClassName (repeatable)")
    group.addoption("--conformance-suite", default="smoke", help="smoke (default), standard, modes, exhaustive, or a .toml file")
    group.addoption("--conformance-jobs", type=int, default=1, help="worker processes at once")
    group.addoption("--conformance-out", default=None, help="keep results.jsonl and reports in this folder")


class ConformanceFailure(Exception):
    pass


class ConformanceItem(pytest.Item):
    def __init__(self, *, adapter, case, check, **kwargs):
        super().__init__(**kwargs)
        self.adapter, self.case, self.check = adapter, case, check

    def runtest(self):
        results = _run_selected(self.session)
        r = results.get((self.adapter.name, self.case.id, self.check))
        if r is None:
            raise ConformanceFailure("no result was recorded for this case")
        if r["status"] == "unsupported":
            pytest.skip(r["message"])
        if r["status"] not in ("pass", "xpass"):
            raise ConformanceFailure(f"{r['status']}: {r['message']}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ConformanceFailure):
            import shlex

            from conformance.execution.adapter_refs import adapter_flag

            return (f"{excinfo.value}\nrerun: conformance run {adapter_flag(self.adapter.ref)} --case "
                    f"{shlex.quote(self.case.id)} --out out/rerun --overwrite")
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.adapter.name}::{self.case.id}[{self.check}]"


class AdapterCollector(pytest.Collector):
    def __init__(self, *, adapter, cases, **kwargs):
        super().__init__(**kwargs)
        self.adapter, self.cases = adapter, cases

    def collect(self):
        for case in self.cases:
            for check in checks_for(case):
                yield ConformanceItem.from_parent(self, name=f"{case.id}[{check}]", adapter=self.adapter, case=case, check=check)


class ConformanceCollector(pytest.Collector):
    def collect(self):
        from conformance.cases.suites import load_suite
        from conformance.execution.adapter_refs import resolve

        cases = load_suite(self.config.getoption("conformance_suite"))
        for adapter in resolve(self.config.getoption("conformance_adapter")):
            yield AdapterCollector.from_parent(self, name=adapter.name, adapter=adapter, cases=cases)


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
    if config.getoption("conformance_adapter"):
        from _pytest.reports import CollectReport

        collector = ConformanceCollector.from_parent(session, name="conformance")
        for adapter_collector in collector.collect():
            added = list(adapter_collector.collect())
            items.extend(added)
            # Reported as collected, so pytest's "collected N items" header counts them.
            config.hook.pytest_collectreport(report=CollectReport(adapter_collector.nodeid, "passed", None, added))


def _run_selected(session) -> dict:
    if _RESULTS in session.stash:
        return session.stash[_RESULTS]
    from conformance.reports.render import write_reports
    from conformance.reports.results import load_results
    from conformance.execution.runner import DEFAULT_CASE_TIMEOUT_S, Runner

    selected = [i for i in session.items if isinstance(i, ConformanceItem)]
    by_adapter: dict = {}  # ref -> (adapter, {case id: case})
    for item in selected:
        by_adapter.setdefault(item.adapter.ref, (item.adapter, {}))[1][item.case.id] = item.case
    keep = session.config.getoption("conformance_out")
    out = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="conformance-"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for k, (adapter, cases) in enumerate(by_adapter.values()):
        part = out / f"adapter-{k}"
        part.mkdir(exist_ok=True)
        Runner(part, session.config.getoption("conformance_jobs"), DEFAULT_CASE_TIMEOUT_S).run([adapter], list(cases.values()))
        loaded = load_results(part / "results.jsonl")
        write_reports(loaded, part)
        results.update({(r["adapter"], r["case"], r["check"]): r for r in loaded.records})
    session.stash[_RESULTS] = results
    return results
