"""Findings: the distinct discrepancies behind the non-passing records, and the verdict a CI gates on.

A finding is every fail or error with the same diagnosis in the same check family,
merged across adapters ("x² overflows the compute dtype" once, listing every
adapter it hits).  Crashes, configuration problems and unexplained results are
kept per adapter: one adapter's ValueError says nothing about another's.  The
finding id is a pure function of a record (`finding_id`), so the worker stamps
it on the record and a baseline's findings can be compared with a run's.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from conformance.checks.registry import finding_id, finding_prefix, finding_title
from conformance.diagnosis.diagnose import CLASSES

DEFAULT_FAIL_ON = frozenset(c for c in CLASSES if c != "range")  # range findings are shown, not gated
RESULTS_SHOWN = 5  # per finding in report.md; all of them are in report.json


@dataclass(frozen=True)
class Gate:
    """What fails a run: the classes of findings, the least share of checks an adapter must run,
    and (--strict-xfail) a result listed as a known discrepancy that passes."""

    fail_on: frozenset = DEFAULT_FAIL_ON
    min_coverage: float = 0.0
    strict_xfail: bool = False

    def describe(self) -> str:
        spared = [c for c in CLASSES if c not in self.fail_on]
        text = "fails on every class" if not spared else f"fails on every class but {', '.join(spared)}"
        return (text + (f"; needs {self.min_coverage:.0%} coverage per adapter" if self.min_coverage else "")
                + ("; an xpass fails (--strict-xfail)" if self.strict_xfail else ""))


def _elements(r: dict) -> int:
    return math.prod(r.get("shape") or [0]) if r.get("shape") else 0


# The most readable case first: inputs of ordinary values before the special distributions, the
# common dtypes before the half and mixed precisions, the common epsilon, a scale that is not zero.
_DISTRIBUTIONS = ("normal", "shifted", "mixed", "spike", "tiny", "huge", "near_max", "subnormal", "zeros", "nonfinite")
_DTYPES = ("float32", "float64", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16", "default_float16",
           "default_bfloat16")
_SCALES = ("rand", "ones", "signed", "zeros")


def _rank(value, order: tuple) -> int:
    return order.index(value) if value in order else len(order)


def readable_key(r: dict) -> tuple:
    """How readable a record's case is as "the smallest case" of a finding: a non-empty input,
    normal data (and a scale that is not zero), float32 (then float64, float16, bfloat16, mixed,
    default), epsilon 1e-6, then the fewest elements."""
    shape = r.get("shape")
    empty = shape is not None and 0 in shape
    eps = r.get("epsilon")
    return (empty, _rank(r.get("distribution"), _DISTRIBUTIONS), r.get("scale") == "zeros", _rank(r.get("dtype"), _DTYPES),
            0 if eps == 1e-6 else 1 if eps is not None else 2, _elements(r),
            _rank(r.get("check"), ("forward", "grad_x", "grad_scale", "out_dtype")), r["case"], r["adapter"], r.get("check", ""))


def smallest_readable(rs: list[dict]) -> dict:
    """The record of a finding (or a defect) whose case shows it most readably (`readable_key`)."""
    return min(rs, key=readable_key)


def across(rs: list[dict], d: dict) -> dict:
    """What holds across a finding's records, where each record could only solve its own case's
    parameter (the divisor for its n, the epsilon it applies, the format it computes in): the
    law that parameter follows over the cases, as the finding's detail ("divides by n rounded up
    to a multiple of 32: 1→32, 8→32, 60→64"), and the evidence with every digit.  A pure
    function of the records (`d`: the diagnosis of the smallest one)."""
    import numpy as np

    from conformance.diagnosis.diagnose import Exact
    from conformance.diagnosis.hypotheses import PAD_MULTIPLES, name_epsilon, padded

    out: dict = {}
    if d.get("evidence"):
        out["evidence"] = {k: Exact(v) if isinstance(v, float) else v for k, v in d["evidence"].items()}
    solved = [(r.get("dtype", ""), r["diagnosis"].get("evidence") or {}) for r in rs]
    if d["id"] == "divisor" and all("divisor" in e and "n" in e for _, e in solved):
        pairs = sorted({(int(e["n"]), int(e["divisor"])) for _, e in solved})
        laws = {"n rounded up to a power of two": lambda n: padded(n)["a power of two"],
                **{f"n rounded up to a multiple of {m}": (lambda n, m=m: padded(n)[f"a multiple of {m}"])
                   for m in PAD_MULTIPLES},
                "n - 1": lambda n: n - 1, "1 (the sum, not the mean)": lambda n: 1,
                f"{pairs[0][1]} whatever n": lambda n: pairs[0][1]}
        fitting = [name for name, law in laws.items() if all(law(n) == dv for n, dv in pairs)]
        shown = ", ".join(f"{n}→{dv}" for n, dv in pairs)
        law = f"{fitting[0]}" + (f" (or {', '.join(fitting[1:])})" if fitting[1:] else "") if fitting else \
            "another count, no one law"
        out["detail"] = f"the mean of x² divides by {law}: {shown}"
    elif d["id"] == "eps-different" and all("epsilon" in e for _, e in solved):
        eps = sorted(float(e["epsilon"]) for _, e in solved)
        asked = [float(e["requested"]) for _, e in solved if e.get("requested")]
        wanted = ", ".join(f"{v:g}" for v in sorted(set(asked)))
        if eps[-1] <= eps[0] * 1.05:  # one constant, up to the noise of solving it from rounded outputs
            one = eps[len(eps) // 2]
            out["detail"] = f"one effective epsilon {one:.3g}{name_epsilon(one, 0.0)} on every case, requested {wanted}"
        elif len(asked) == len(solved) and all(abs(float(e["epsilon"]) - float(np.float32(e["requested"])))
                                               <= 1e-6 * float(e["requested"]) for _, e in solved):
            out["detail"] = f"the requested epsilon rounded to float32 on every case ({wanted})"
    elif d["id"] in ("lower-precision", "sequential-sum") and all("format" in e for _, e in solved):
        by_format: dict[str, set] = defaultdict(set)
        for dtype, e in solved:
            by_format[e["format"]].add(dtype)
        law = "; ".join(f"{f} for {', '.join(sorted(dts))} inputs" for f, dts in sorted(by_format.items()))
        out["detail"] = f"{d.get('detail', '')} ({law})"
    return out


def findings(records: list[dict], commands) -> list[dict]:
    """Findings of the fail/error records, most important first; `commands(record)` gives
    the rerun and repro commands of its smallest case."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["status"] in ("fail", "error") and r.get("diagnosis"):
            groups[finding_id(r)].append(r)
    out = []
    for fid, rs in groups.items():
        smallest = smallest_readable(rs)
        d = smallest["diagnosis"]
        family = finding_prefix(smallest["check"])
        adapters = sorted({r["adapter"] for r in rs})
        details = sorted({r["diagnosis"].get("detail", "") for r in rs})
        out.append({
            "id": fid, "class": d["class"], "title": finding_title(d, smallest["check"]), "family": family,
            "adapters": adapters, "results": len(rs),
            "per_adapter": {a: sum(r["adapter"] == a for r in rs) for a in adapters},
            "detail": d.get("detail", ""), "details": details[:10],
            "smallest": {"case": smallest["case"], "adapter": smallest["adapter"], "check": smallest["check"]},
            "evidence": d.get("evidence"), "message": smallest.get("message", ""),
            **across(rs, d),
            **dict(zip(("rerun", "repro"), commands(smallest))),
            "records": [{"case": r["case"], "adapter": r["adapter"], "check": r["check"], "status": r["status"]}
                        for r in sorted(rs, key=lambda r: (r["adapter"], _elements(r), r["case"], r["check"]))],
        })
    order = {c: k for k, c in enumerate(CLASSES)}
    return sorted(out, key=lambda f: (order.get(f["class"], 99), -f["results"], f["id"]))


def coverage(records: list[dict]) -> dict[str, dict]:
    """Per adapter: checks run (not unsupported) and passed, out of all its records."""
    out: dict[str, dict] = defaultdict(lambda: {"total": 0, "ran": 0, "passed": 0})
    for r in records:
        c = out[r["adapter"]]
        c["total"] += 1
        c["ran"] += r["status"] != "unsupported"
        c["passed"] += r["status"] in ("pass", "xpass", "accepted")  # accepted: within the user's declared bound
    return {a: {**c, "share": c["ran"] / c["total"] if c["total"] else 0.0} for a, c in sorted(out.items())}


@dataclass(frozen=True)
class Verdict:
    gating: list = field(default_factory=list)  # findings whose class fails the run
    other: list = field(default_factory=list)  # findings shown, not gating
    uncovered: dict = field(default_factory=dict)  # adapter -> why its coverage fails the run
    xpassed: list = field(default_factory=list)  # under --strict-xfail: the xpass records, which fail the run

    @property
    def failed(self) -> bool:
        return bool(self.gating or self.uncovered or self.xpassed)


def judge(all_findings: list[dict], cover: dict[str, dict], gate: Gate, xpass: list | None = None) -> Verdict:
    """`xpass`: the run's xpass records (they fail it under gate.strict_xfail)."""
    uncovered = {}
    for a, c in cover.items():
        if not c["passed"]:
            uncovered[a] = f"no passing result ({c['ran']} of {c['total']} checks ran)"
        elif c["share"] < gate.min_coverage:
            uncovered[a] = f"ran {c['share']:.0%} of its checks, below --min-coverage {gate.min_coverage:.0%}"
    return Verdict([f for f in all_findings if f["class"] in gate.fail_on],
                   [f for f in all_findings if f["class"] not in gate.fail_on], uncovered,
                   list(xpass or []) if gate.strict_xfail else [])
