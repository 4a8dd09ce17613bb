"""pytest integration: `pytest --conformance-adapter mypkg.kernels:MyRMSNorm`.

One test item per (adapter, case, check), node id `adapter::case-id::check`, so `-k`,
`--junitxml` and CI tooling work as for any test, and one item per adapter, `adapter::coverage`,
for its coverage.  The default suite is `smoke` (`--conformance-suite` picks another).  The
selected items' cases run once, when the first item runs, as `conformance run` runs them (the
same workers, gating and reports: conformance/integrations/api.py), into `--conformance-out`
(default: `conformance/` under pytest's basetemp); each item then reports its own record:

- pass: passed; xpass (listed in --conformance-xfail but passes): passed, or failed under
  --conformance-strict-xfail (as run --strict-xfail); accepted (within a bound of
  --conformance-accept): passed;
- unsupported: skipped, with the adapter's reason;
- fail or error of a gating finding (--conformance-fail-on): failed, the message starting with the
  finding's class, id and title, then the metrics and the rerun command;
- fail or error of a non-gating finding (by default, range): xfailed, with the reason
  "not gating" and the finding, so it shows under -rx without failing the session;
- xfail (listed in --conformance-xfail): xfailed, with the entry's reason;
- `adapter::coverage` fails where `run` would for coverage (no passing result, or below
  --conformance-min-coverage) or for an incomplete run.

pytest's exit code is that of `conformance run` on the same adapters, cases and options; a
summary at the end lists the findings and the report folder.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from conformance.checks.registry import checks_for

_OUTCOME = pytest.StashKey[object]()


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "RMS normalization conformance")
    group.addoption("--conformance-adapter", action="append", default=[], metavar="MODULE:CLASS",
                    help="adapter to test: a built-in name or package.module:ClassName (repeatable)")
    group.addoption("--conformance-suite", default="smoke", help="smoke (default), standard, modes, exhaustive, or a .toml file")
    group.addoption("--conformance-jobs", type=int, default=1, help="worker processes at once")
    group.addoption("--conformance-out", default=None, metavar="DIR",
                    help="write results.jsonl and the reports into DIR (default: conformance/ under pytest's basetemp)")
    group.addoption("--conformance-fail-on", default=None, metavar="CLASSES",
                    help="finding classes that fail, comma-separated, or 'all' (default: all but range), as run --fail-on")
    group.addoption("--conformance-xfail", default=None, metavar="FILE", help="known discrepancies, as run --xfail")
    group.addoption("--conformance-strict-xfail", action="store_true",
                    help="an xpass fails, as run --strict-xfail (pytest's xfail_strict)")
    group.addoption("--conformance-accept", default=None, metavar="FILE",
                    help="accepted deviations (your kernel's error bounds, with reasons), as run --accept")
    group.addoption("--conformance-min-coverage", type=float, default=0.0, metavar="P",
                    help="least share (0-1) of its checks each adapter must run, as run --min-coverage")
    group.addoption("--conformance-device", default=None, choices=("cpu", "cuda", "gpu", "auto"),
                    help="where torch- and JAX-family adapters run, as run --device")
    group.addoption("--conformance-cache-dir", default=None, metavar="DIR", help="compilation caches, as run --cache-dir")
    group.addoption("--conformance-no-cache", action="store_true", help="no compilation cache, as run --no-cache")
    group.addoption("--conformance-function", default=None, choices=("torch", "jax", "numpy"),
                    help="the --conformance-adapter refs naming a function f(x, weight, eps) are wrapped for this "
                         "framework, as run --function")


class ConformanceFailure(Exception):
    pass


def _options(config) -> dict:
    opt = config.getoption
    return {"fail_on": opt("conformance_fail_on"), "min_coverage": opt("conformance_min_coverage"),
            "xfail": opt("conformance_xfail"), "device": opt("conformance_device"),
            "accept": opt("conformance_accept"), "strict_xfail": opt("conformance_strict_xfail"),
            "cache_dir": opt("conformance_cache_dir"), "no_cache": opt("conformance_no_cache"),
            "jobs": opt("conformance_jobs"), "function": opt("conformance_function")}


def _short_title(f: dict) -> str:
    return f["title"].removeprefix(f"{f['family']}: ")


def finding_line(f: dict) -> str:
    """`semantics: forward/eps-outside-sqrt — epsilon is added outside the square root`"""
    return f"{f['class']}: {f['id']} — {_short_title(f)}"


class ConformanceItem(pytest.Item):
    def __init__(self, *, adapter, case, check, **kwargs):
        super().__init__(**kwargs)
        self.adapter, self.case, self.check = adapter, case, check

    def runtest(self):
        from conformance.checks.registry import finding_id
        from conformance.reports.results import rerun_command

        outcome = _run_selected(self.session)
        results = outcome.results
        r = outcome.by_key.get((self.adapter.name, self.case.id, self.check))
        if r is None:  # the adapter's record, where it loaded; else what this session resolved
            known = {self.adapter.name: {"ref": self.adapter.ref, "import_root": self.adapter.import_root},
                     **results.adapters}
            rerun = rerun_command({"adapter": self.adapter.name, "case": self.case.id}, known, results.run)
            raise ConformanceFailure(f"no result was recorded for this case (the run is incomplete)\nrerun: {rerun}")
        status = r["status"]
        if status == "unsupported":
            pytest.skip(r["message"])
        if status == "xfail":
            pytest.xfail(f"known discrepancy (--conformance-xfail): {r.get('xfail_reason', '')}")
        if status == "xpass" and results.gate.strict_xfail:
            raise ConformanceFailure(f"[XPASS(strict)] {r['message']} ({r.get('xfail_entry', '')}; "
                                     "--conformance-strict-xfail)")
        if status == "accepted":  # within its --conformance-accept bound: passes, and --junitxml says why
            self.user_properties.append(("accepted", f"{r.get('accept_reason', '')} ({r.get('accept_entry', '')})"))
        if status in ("pass", "xpass", "accepted"):
            return
        fid = finding_id(r)
        finding = outcome.findings.get(fid)
        gating = fid in outcome.gating
        if not gating:
            why = finding_line(finding) if finding else "no finding"
            pytest.xfail(f"not gating ({finding['class'] if finding else 'undiagnosed'} is not in "
                         f"--conformance-fail-on): {why}")
        beyond = f"\nbeyond an accepted bound: {r['accept_exceeded']}" if r.get("accept_exceeded") else ""
        raise ConformanceFailure(f"{finding_line(finding)}\n{status}: {r['message']}\n"
                                 f"rerun: {rerun_command(r, results.adapters, results.run)}{beyond}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.adapter.name}::{self.case.id}::{self.check}"


class CoverageItem(pytest.Item):
    """`adapter::coverage`: fails where `run` fails on this adapter's coverage or an incomplete run."""

    def __init__(self, *, adapter, **kwargs):
        super().__init__(**kwargs)
        self.adapter = adapter

    def runtest(self):
        results = _run_selected(self.session).results
        why = results.judgement.uncovered.get(self.adapter.name)
        if why:
            raise ConformanceFailure(f"coverage: {self.adapter.name}: {why}")
        if results.incomplete:
            raise ConformanceFailure(f"incomplete run: {results.finished_pairs} of {results.run['expected']} "
                                     "(adapter, case) pairs have results")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.adapter.name}::coverage"


class AdapterCollector(pytest.Collector):
    def __init__(self, *, adapter, cases, **kwargs):
        super().__init__(**kwargs)
        self.adapter, self.cases = adapter, cases

    def collect(self):
        for case in self.cases:
            for check in checks_for(case):
                yield ConformanceItem.from_parent(self, name=f"{case.id}::{check}", adapter=self.adapter, case=case, check=check)
        yield CoverageItem.from_parent(self, name="coverage", adapter=self.adapter)


def _resolve(config):
    from conformance.cases.suites import load_suite
    from conformance.errors import UsageError
    from conformance.execution.adapter_refs import resolve
    from conformance.execution.loading import function_ref

    try:
        cases = load_suite(config.getoption("conformance_suite"))
        function = config.getoption("conformance_function")
        refs = config.getoption("conformance_adapter")
        adapters = resolve([function_ref(r, function) for r in refs])
    except UsageError as exc:  # as `run` exits 2 on it
        pytest.exit(f"conformance: error: {exc}", returncode=2)
    return adapters, cases


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
    if config.getoption("conformance_adapter"):
        from _pytest.reports import CollectReport

        adapters, cases = _resolve(config)
        for adapter in adapters:
            collector = AdapterCollector.from_parent(session, name=adapter.name, nodeid=adapter.name,
                                                     adapter=adapter, cases=cases)
            added = list(collector.collect())
            items.extend(added)
            # Reported as collected, so pytest's "collected N items" header counts them.
            config.hook.pytest_collectreport(report=CollectReport(collector.nodeid, "passed", None, added))


def _out_folder(config) -> Path:
    keep = config.getoption("conformance_out")
    if keep:
        return Path(keep)
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        return factory.getbasetemp() / "conformance"
    return Path(tempfile.mkdtemp(prefix="conformance-")) / "run"


def _run_selected(session):
    if _OUTCOME in session.config.stash:
        return session.config.stash[_OUTCOME]
    from conformance.errors import UsageError
    from conformance.integrations.api import run_argv, run_suite

    selected = [i for i in session.items if isinstance(i, (ConformanceItem, CoverageItem))]
    adapters = list({i.adapter.ref: i.adapter for i in selected}.values())
    chosen = {i.case.id for i in selected if isinstance(i, ConformanceItem)}
    all_cases = {c.id for a in selected if isinstance(a, ConformanceItem) for c in a.parent.cases}
    cases = [] if chosen == all_cases else sorted(chosen)  # -k / -m: only the selected items' cases
    config = session.config
    argv = run_argv([a.ref for a in adapters], config.getoption("conformance_suite"), _out_folder(config),
                    cases=cases, **_options(config))
    try:
        outcome = run_suite(argv, quiet=True)
    except UsageError as exc:  # as `run` exits 2
        pytest.exit(f"conformance: error: {exc}", returncode=2)
    results = outcome.results
    outcome.by_key = {(r["adapter"], r["case"], r["check"]): r for r in results.records}
    outcome.findings = {f["id"]: f for f in results.findings}
    outcome.gating = {f["id"] for f in results.judgement.gating}
    session.config.stash[_OUTCOME] = outcome
    return outcome


def pytest_sessionfinish(session, exitstatus):
    outcome = session.config.stash.get(_OUTCOME, None)
    # pytest's exit code is run's: a failure the items did not show (there should be none) still fails.
    if outcome is not None and outcome.exit_code and session.exitstatus == 0:
        session.exitstatus = outcome.exit_code


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    outcome = config.stash.get(_OUTCOME, None)
    if outcome is None:
        return
    from conformance.reports.results import verdict

    results = outcome.results
    tr = terminalreporter
    tr.section("conformance")
    v = results.judgement
    for f in v.gating:
        tr.write_line(f"{finding_line(f)} [{', '.join(f['adapters'])}] ({f['results']} results)")
    for f in v.other:
        tr.write_line(f"not gating: {finding_line(f)} [{', '.join(f['adapters'])}] ({f['results']} results)")
    for a, why in v.uncovered.items():
        tr.write_line(f"coverage: {a}: {why}")
    tr.write_line(verdict(results))
    tr.write_line(f"gating: {results.gate.describe()} (--conformance-fail-on, --conformance-min-coverage); "
                  f"conformance run exits {outcome.exit_code}")
    tr.write_line(f"reports: {outcome.out}/ (report.md, report.html, report.json, junit.xml, results.jsonl)")
