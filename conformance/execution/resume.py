"""What a run sets out to do (its `run` record), and continuing one that was cut short.

The run record's digest covers the case ids and adapter names, so `--resume`
refuses to continue a run of other cases or adapters; each adapter's versions
are compared when its worker loads (Runner.previous_versions).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from conformance.cases.case import parse_case
from conformance.errors import UsageError
from conformance.checks.registry import checks_for
from conformance.reports.results import load_results


def run_record(suite: str, cases: list, adapter_names: list[str]) -> dict:
    """The run record; `conformance` and `conformance_path` are how the commands its reports print
    start (invocation.py), `cwd` where the run started (what reports of results written before
    the adapter records had `import_root` put on PYTHONPATH)."""
    from conformance.execution.invocation import conformance_command

    ids = sorted(c.id for c in cases)
    digest = hashlib.sha256(json.dumps([ids, sorted(adapter_names)]).encode()).hexdigest()[:16]
    command, path = conformance_command()
    return {"record": "run", "suite": suite, "digest": digest, "cases": len(ids), "adapters": sorted(adapter_names),
            "expected": len(ids) * len(adapter_names), "cwd": os.getcwd(), "conformance": command,
            "conformance_path": list(path)}


@dataclass(frozen=True)
class ResumePlan:
    head: list[dict]  # records carried over into the new results file
    done: frozenset[tuple[str, str]]  # (adapter, case) pairs with every record
    versions: dict[str, dict]  # adapter -> versions of the run being resumed


def plan_resume(path: Path, record: dict) -> ResumePlan:
    """Keep the complete (adapter, case) pairs of the run in `path`; drop a half-written tail."""
    previous = load_results(path, salvage=True)  # a run killed mid-write leaves a truncated line
    if previous.run is None:
        raise UsageError(f"--resume: {path} has no run record (written by an older version of the suite); use --overwrite")
    if previous.run["digest"] != record["digest"]:
        raise UsageError(f"--resume: {path} holds a run of other cases or adapters (suite {previous.run['suite']!r}, "
                         f"{previous.run.get('cases')} cases x {previous.run.get('adapters')}); resume with the same "
                         "--suite, --case, --shard and adapters, or use --overwrite")
    by_pair: dict[tuple[str, str], set[str]] = {}
    for r in previous.records:
        by_pair.setdefault((r["adapter"], r["case"]), set()).add(r["check"])
    done = frozenset(pair for pair, checks in by_pair.items() if checks >= set(checks_for(parse_case(pair[1]))))
    kept = [r for r in previous.records if (r["adapter"], r["case"]) in done]
    # The fresh run record, not the file's: what the run expects is recomputed, never carried over.
    return ResumePlan([record, *previous.adapters.values(), *kept], done,
                      {name: meta.get("versions", {}) for name, meta in previous.adapters.items()})
