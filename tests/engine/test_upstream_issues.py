"""reports/upstream.toml, the known upstream issues: its schema, and that every entry matches a
finding of the committed baseline (or names the release that fixed it, at or before the pinned
version).  The baseline is read from its results file, in this process."""
import re
from pathlib import Path

import pytest

from conformance.reports import upstream
from conformance.reports.results import load_results

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "reports" / "baseline" / "standard.jsonl"


@pytest.fixture(scope="module")
def baseline():
    return load_results(BASELINE)


@pytest.fixture(scope="module")
def issues():
    return upstream.load()


def test_every_entry_loads_with_a_github_url_and_a_state(issues):
    assert len(issues) >= 12
    for issue in issues:
        assert re.fullmatch(rf"https://github\.com/{re.escape(issue.repository)}/(issues|pull)/{issue.number}",
                            issue.url), issue.ref
        assert issue.state in ("open", "closed"), issue.ref
        assert issue.title.strip() and issue.note.strip(), issue.ref
    assert len({(i.repository.lower(), i.number) for i in issues}) == len(issues)


def test_each_entry_matches_a_baseline_finding_or_was_fixed_by_the_pinned_version(baseline, issues):
    versions = {name: record.get("versions") or {} for name, record in baseline.adapters.items()}
    pinned: dict[str, str] = {}
    for v in versions.values():
        pinned.update(v)
    unmatched = []
    for issue in issues:
        if any(issue in upstream.matching(f, versions, issues) for f in baseline.findings):
            continue
        if not issue.fixed_at_or_before(pinned):
            unmatched.append(issue.ref)
    assert not unmatched, f"entries that match no baseline finding and name no fix at the pinned version: {unmatched}"


def test_the_default_file_is_what_matching_reads(baseline, issues):
    versions = {name: record.get("versions") or {} for name, record in baseline.adapters.items()}
    finding = next(f for f in baseline.findings if f["id"].endswith("subnormals-flushed"))
    assert upstream.matching(finding, versions) == upstream.matching(finding, versions, issues)
    assert any(i.ref == "jax-ml/jax#16200" for i in upstream.matching(finding, versions))


ENTRY = """[[issue]]
repository = "keras-team/keras"
number = 1
title = "t"
state = "open"
url = "https://github.com/keras-team/keras/issues/1"
adapters = "keras-*"
finding = "forward/*"
note = "n"
"""


def _load(tmp_path, text):
    path = tmp_path / "upstream.toml"
    path.write_text(text)
    return upstream.load(path)


@pytest.mark.parametrize("change, says", [
    (lambda t: t + 'colour = "red"\n', "unknown key(s) colour"),
    (lambda t: t.replace('note = "n"\n', ""), "missing key(s) note"),
    (lambda t: t.replace('"open"', '"merged"'), "`state` must be one of open, closed"),
    (lambda t: t.replace("/issues/1", "/issues/2"), "`url` must be"),
    (lambda t: t.replace("number = 1", 'number = "1"'), "`number`"),
    (lambda t: t.replace('"keras-*"', "[]"), "`adapters`"),
    (lambda t: t + 'versions = "keras=>3"\n', "`versions`"),
    (lambda t: t + 'fixed_in = "3.9.0"\n', "`fixed_in`"),
    (lambda t: t + t, "repeats issue 1"),
])
def test_load_is_strict_and_names_the_entry(tmp_path, change, says):
    with pytest.raises(upstream.UpstreamError) as e:
        _load(tmp_path, change(ENTRY))
    assert says in str(e.value) and "issue 1" in str(e.value)


def test_matching_on_adapters_case_and_versions(tmp_path):
    [issue] = _load(tmp_path, ENTRY + 'case = "f16/*"\nversions = "keras>=3.0,<3.16"\n')
    finding = {"id": "forward/eps-different", "adapters": ["keras-jax", "torch"],
               "records": [{"adapter": "keras-jax", "case": "f16/4x1/ax-1/eps0/normal/rand/s0"},
                           {"adapter": "torch", "case": "f32/4x1/ax-1/eps0/normal/rand/s0"}]}
    assert issue.matches(finding, {"keras-jax": {"keras": "3.15.1"}})
    assert not issue.matches(finding, {"keras-jax": {"keras": "3.16.0"}})
    assert issue.matches(finding, {})  # a version not known does not exclude
    assert not issue.matches({**finding, "id": "gradient/eps-different"}, {})
    assert not issue.matches({**finding, "adapters": ["torch"]}, {})
    other_case = {**finding, "records": [{"adapter": "keras-jax", "case": "f32/4x1/ax-1/eps0/normal/rand/s0"}]}
    assert not issue.matches(other_case, {})


def test_versions_compare_as_pep_440_and_fixed_in_against_the_pinned_release(tmp_path):
    spec = upstream.Specifier.parse("torch>=2.4,!=2.5.*,<2.14")
    assert spec.contains("2.13.0+cpu") and not spec.contains("2.5.1") and not spec.contains("2.14.0")
    assert upstream.version_key("2.14.0rc1") < upstream.version_key("2.14.0") < upstream.version_key("2.14.0.post1")
    assert upstream.Specifier.parse("jax~=0.10.1").contains("0.10.2")
    assert not upstream.Specifier.parse("jax~=0.10.1").contains("0.11.0")
    [issue] = _load(tmp_path, ENTRY + 'fixed_in = "keras 3.9.0"\n')
    assert issue.fixed_at_or_before({"keras": "3.15.1"})
    assert not issue.fixed_at_or_before({"keras": "3.8.0"})
    assert not issue.fixed_at_or_before({"torch": "2.13.0"})
