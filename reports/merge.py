"""Merging result sets (`conformance merge`): shards of one run, or runs of different adapters.

Identical records are kept once; two parts that disagree on one (adapter, case,
check) are an input error unless `prefer` says which part wins.  An adapter whose
versions differ between parts keeps every part's versions (`versions_by_part`),
which the reports show.
"""
from __future__ import annotations

import hashlib

from conformance.errors import UsageError
from conformance.reports.results import Results

VOLATILE = ("seconds",)  # differs between two runs of the same case without meaning anything


def _same(a: dict, b: dict) -> bool:
    strip = lambda r: {k: v for k, v in r.items() if k not in VOLATILE}  # noqa: E731
    return strip(a) == strip(b)


def merge(parts: list[tuple[str, Results]], prefer: str | None = None) -> Results:
    """`parts`: (source name, results) in command-line order; `prefer`: None, "first" or "last"."""
    records: dict[tuple, tuple[str, dict]] = {}
    for source, part in parts:
        for r in part.records:
            key = (r["adapter"], r["case"], r["check"])
            if key in records and not _same(records[key][1], r):
                if prefer is None:
                    other, old = records[key]
                    raise UsageError(f"{other} and {source} disagree on {' '.join(key)} ({old['status']} vs "
                                     f"{r['status']}); pass --prefer first or --prefer last to choose")
                if prefer == "first":
                    continue
            records[key] = (source, r)
    return Results([r for _, r in records.values()], _adapters(parts), _run(parts))


def _adapters(parts: list[tuple[str, Results]]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    seen: dict[str, list[dict]] = {}
    for source, part in parts:
        for name, meta in part.adapters.items():
            out.setdefault(name, {k: v for k, v in meta.items() if k != "versions_by_part"})
            seen.setdefault(name, []).append({"source": source, "versions": meta.get("versions", {})})
    for name, by_part in seen.items():
        if len({tuple(sorted(p["versions"].items())) for p in by_part}) > 1:
            out[name]["versions_by_part"] = by_part
    return out


def _run(parts: list[tuple[str, Results]]) -> dict | None:
    """The merged run record: expected pairs add up over distinct runs (shards)."""
    if any(part.run is None for _, part in parts if part.records):
        return None  # a part without a run record: how many pairs to expect is unknown
    runs = {part.run["digest"]: part.run for _, part in parts if part.run}
    if not runs:
        return None
    digest = hashlib.sha256(" ".join(sorted(runs)).encode()).hexdigest()[:16]
    # How the printed commands start (execution/invocation.py): the first part's that says.
    started = next(({k: r[k] for k in ("conformance", "conformance_path") if k in r}
                    for r in runs.values() if "conformance" in r), {})
    return {"record": "run", "suite": ",".join(sorted({r["suite"] for r in runs.values()})), "digest": digest,
            "expected": sum(r["expected"] for r in runs.values()), "parts": [s for s, _ in parts], **started}
