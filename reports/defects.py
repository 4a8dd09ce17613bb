"""Defects: the findings a maintainer acts on, one per cause and per project that owns it.

A finding is one discrepancy as the suite sees it, per check family (and, for crashes, per
adapter).  A **defect** is what one project would fix: the findings with the same cause on the
adapters of one owner, merged.  Every adapter declares the projects that own its numerics
(`owners` on the adapter contract, the first the one whose code computes the result); the
reports read them from the adapter records (`owners`) or the built-in's class, and a user
adapter without any is owned by its module's top-level package.

1. **Cause.**  A hypothesis's diagnosis is its cause ("scale-wrong-axis", forward and gradient
   alike); a crash's is the cause its check against the case found (a broadcast error of the
   scale laid along the trailing axes is "scale-wrong-axis" too), else its class and stable kind
   ("crash/Fail-output-type-mismatch", whichever step raised).  A gradient that is unexplained or
   raises, on a case whose forward is already diagnosed, is that forward's cause.
2. **Owner.**  For each cause, its adapters go to one owner where they share one (the one that
   is the first owner of most of them); else an adapter goes to a dependency that shows the cause
   on an adapter of its own (hf-* to pytorch where torch itself shows it), unless its first owner
   shows it on an adapter built without that dependency too (keras-jax stays keras's where
   keras-torch shows the same), and never for a cause in the library's own interface (an invalid
   configuration accepted, the output dtype: equinox casts back to the input's dtype itself); or
   to a dependency that every adapter built on it shows it on
   (the JAX-based adapters' batch variance was jax's until Pallas, jax's own kernel, showed none:
   now each library's); else to its first owner.
3. **Trigger.**  Within one owner, semantic, crash and unexplained causes whose every result is
   on one kind of axes the others handle (axes that are not the trailing ones, a 0-d input, axes
   of mixed sign, ...) are one defect: the handling of that input.

Only gating findings make defects (`--fail-on`); the others stay findings, shown.  Pure
functions of the records and findings.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from functools import lru_cache

from conformance.cases.dimensions import axes_kind
from conformance.diagnosis.diagnose import CLASSES
from conformance.diagnosis.hypotheses import BY_ID as HYPOTHESES
from conformance.reports.findings import smallest_readable

THIS_PROJECT = "rmsnorm-conformance"
STRUCTURAL = ("semantics", "crash", "unexplained")  # classes a trigger merges
TRIGGERS = {  # axes kind (cases/dimensions.py) -> the trigger it belongs to
    "non-trailing": "non-trailing-axes", "non-contiguous": "non-trailing-axes", "rank-0": "0-d-input",
    "mixed-sign": "mixed-sign-axes", "unsorted": "unsorted-axes", "empty": "empty-input", "none": "no-axes",
}
TRIGGER_TEXT = {
    "non-trailing-axes": "axes that are not the trailing ones",
    "0-d-input": "a 0-d input (no axes to normalize)",
    "mixed-sign-axes": "axes given with mixed signs, e.g. (1, -1)",
    "unsorted-axes": "axes given in descending order",
    "empty-input": "an empty input",
    "no-axes": "an empty list of axes",
}
_GRADIENTS = ("grad_x", "grad_scale")


# -- owners --------------------------------------------------------------------------------------

@lru_cache(maxsize=256)
def _declared(ref: str) -> tuple[str, ...] | None:
    """A built-in's `owners`, read from its class (importing an adapter's module imports no framework)."""
    from conformance.adapters import BUILTIN

    ref = BUILTIN.get(ref, ref)
    if not ref.startswith("conformance.adapters."):
        return None  # a user's module is never imported by a report
    try:
        from conformance.execution.loading import import_adapter

        owners = getattr(import_adapter(ref), "owners", ())
    except Exception:  # noqa: BLE001 - a report never fails for want of an owner
        return (THIS_PROJECT,)
    return tuple(owners) or (THIS_PROJECT,)


def adapter_project(name: str, meta: dict | None = None) -> str:
    """Whose code the adapter itself is: this project for a built-in, else its module's top-level
    package.  The owner of an adapter's own bug (an `adapter-error` finding)."""
    from conformance.adapters import BUILTIN

    ref = (meta or {}).get("ref") or name
    ref = BUILTIN.get(ref, ref)
    if ref.startswith("conformance.adapters."):
        return THIS_PROJECT
    return ref.split(":", 1)[0].split(".", 1)[0] or name


def owners_of(name: str, meta: dict | None = None) -> tuple[str, ...]:
    """The projects owning an adapter's numerics, first the one whose code computes the result:
    the adapter record's `owners`, else the built-in class's, else the top-level package of the
    adapter's module (its `ref`, "mypkg.kernels:Mine" -> "mypkg")."""
    meta = meta or {}
    declared = meta.get("owners")
    if isinstance(declared, list) and declared and all(isinstance(o, str) and o for o in declared):
        return tuple(declared)
    ref = meta.get("ref") or name
    found = _declared(ref)
    if found:
        return found
    module = ref.split(":", 1)[0]
    return (module.split(".", 1)[0] or name,)


# -- causes --------------------------------------------------------------------------------------

def _explained(r: dict | None) -> str | None:
    """A forward record's cause where a hypothesis (not range) explains it."""
    if not r or r.get("status") not in ("fail", "error"):
        return None
    d = r.get("diagnosis") or {}
    return d["id"] if d.get("id") in HYPOTHESES and d.get("class") not in ("range", "crash", "unexplained") else None


# Diagnoses that name one cause seen two ways: a float64 input computed in float32 shows as float32
# accuracy on normal data and as the cast overflowing on data beyond float32's range.
SAME_CAUSE = {"cast-overflow": "lower-precision"}


def _own_key(f: dict, r: dict) -> str:
    d = r.get("diagnosis") or {}
    if d.get("class") == "crash":
        if f["id"].startswith("adapter-error/"):
            return f"adapter-error/{d.get('error', '')}-{d.get('kind', d.get('id', ''))}"
        if d.get("cause"):
            return d["cause"]
        return f"crash/{d['error']}-{d['kind']}" if d.get("kind") and d.get("error") else f"crash/{d.get('id', '')}"
    if d.get("id") == "unexplained":
        return f"{f.get('family', '')}-unexplained"
    return SAME_CAUSE.get(d.get("id"), d.get("id", f["id"]))


def finding_cause(f: dict, records: list[dict], by_key: dict) -> str:
    """The cause of a finding's results (module docstring, 1)."""
    keys = Counter(_own_key(f, r) for r in records)
    own = keys.most_common(1)[0][0] if keys else f["id"]
    d = (records[0].get("diagnosis") or {}) if records else {}
    consequence = d.get("class") in ("crash", "unexplained") and not own.startswith("adapter-error/") \
        and not d.get("cause") and all(r["check"] != "forward" for r in records)
    if consequence:
        found = [_explained(by_key.get((r["adapter"], r["case"], "forward"))) for r in records]
        named = {c for c in found if c}
        if len(named) == 1 and 2 * sum(c is not None for c in found) >= len(found):
            return named.pop()
    return own


# Causes in a library's own interface (what it accepts, the dtype it returns): its code, never a
# dependency's, whatever the dependency's own adapter shows.
INTERFACE_CLASSES = ("configuration", "dtype")


def _attribute(adapters: set[str], owners: dict[str, tuple], universal, interface: bool = False) -> dict[str, str]:
    """Each adapter of one cause -> the owner it goes to (module docstring, 2); `interface`: the
    cause is in the adapters' own interface (INTERFACE_CLASSES), which no dependency is blamed for."""
    names = sorted(adapters)
    common = set.intersection(*(set(owners[a]) for a in names)) if names else set()
    if common:
        best = max(common, key=lambda o: (sum(owners[a][0] == o for a in names),
                                          -min(owners[a].index(o) for a in names), o))
        return {a: best for a in names}
    primaries = {owners[a][0] for a in names}
    out = {}
    for a in names if not interface else ():
        # A first owner that shows the cause on an adapter built without that dependency has it in
        # its own code (keras on its torch backend as on its jax one): the dependency is not to blame.
        deeper = [o for o in owners[a][1:] if o in primaries and not any(
            owners[b][0] == owners[a][0] and o not in owners[b] for b in names if b != a)]
        if deeper:
            out[a] = deeper[0]
    rest = [a for a in names if a not in out]
    while rest and not interface:
        counts = Counter(o for a in rest for o in owners[a][1:])
        shared = [o for o, n in counts.items() if n >= 2 and universal(o)]
        if not shared:
            break
        o = max(shared, key=lambda o: (counts[o], o))
        out.update({a: o for a in rest if o in owners[a][1:]})
        rest = [a for a in rest if a not in out]
    out.update({a: owners[a][0] for a in rest})
    return out


def _trigger(records: list[dict]) -> str | None:
    kinds = set()
    for r in records:
        shape, axis = r.get("shape"), r.get("axis")
        if not isinstance(shape, list) or not isinstance(axis, list):
            return None
        try:
            kinds.add(TRIGGERS.get(axes_kind(tuple(shape), tuple(axis))))
        except (ZeroDivisionError, TypeError):
            return None
    return kinds.pop() if len(kinds) == 1 else None


def _symptom(title: str) -> str:
    """A finding's title as one symptom of a defect: without the check family ("forward: ") or
    the step that raised ("grad raises X" and "call raises X" are one symptom)."""
    head, _, rest = title.partition(": ")
    if rest and head in ("forward", "gradient", "dtype"):
        return rest
    return re.sub(r"^\w+ raises ", "raises ", title)


def _slug(text: str) -> str:
    return text.replace("/", "-").replace("_", "-").replace("invalid-config-", "invalid-configuration-")


# -- defects -------------------------------------------------------------------------------------

def defects(findings: list[dict], records: list[dict], adapters: dict[str, dict], gating: set[str] | None = None,
            commands=None, issues=None) -> list[dict]:
    """The defects of the gating findings (`gating`: their ids; None: every finding), grouped by
    project, most defects first; `commands(record)` gives the rerun and repro commands of a
    defect's smallest case, `issues` the known upstream issues to look in (reports/upstream.py)."""
    from conformance.reports import upstream

    by_key = {(r["adapter"], r["case"], r["check"]): r for r in records}
    names = {r["adapter"] for r in records} | set(adapters)
    owners = {a: owners_of(a, adapters.get(a)) for a in names}
    ran: dict[str, set] = defaultdict(set)  # check -> adapters with a result that is not unsupported
    for r in records:
        if r["status"] != "unsupported":
            ran[r["check"]].add(r["adapter"])

    chosen = [f for f in findings if gating is None or f["id"] in gating]
    parts: dict[str, list] = defaultdict(list)  # cause -> [(finding, its full records)]
    for f in chosen:
        rs = [by_key[(x["adapter"], x["case"], x["check"])] for x in f["records"]
              if (x["adapter"], x["case"], x["check"]) in by_key]
        parts[finding_cause(f, rs, by_key)].append((f, rs))

    groups: dict[tuple, list] = defaultdict(list)  # (owner, cause) -> [(finding, records)]
    for cause, items in parts.items():
        shown = {r["adapter"] for _, rs in items for r in rs}
        checks = {r["check"] for _, rs in items for r in rs}
        ran_these = set().union(*(ran[c] for c in checks)) if checks else set()

        def universal(o, shown=shown, ran_these=ran_these):
            return {a for a in ran_these if o in owners.get(a, ())} <= shown

        if cause.startswith("adapter-error/"):  # the adapter's own code: its author's, not the framework's
            owner = {a: adapter_project(a, adapters.get(a)) for a in shown}
        else:
            interface = all(f["class"] in INTERFACE_CLASSES for f, _ in items)
            owner = _attribute(shown, owners, universal, interface)
        for f, rs in items:
            split: dict[str, list] = defaultdict(list)
            for r in rs:
                split[owner[r["adapter"]]].append(r)
            for o, part in split.items():
                groups[(o, cause)].append((f, part))

    merged: dict[tuple, list] = defaultdict(list)  # (owner, key) -> items; key: the cause or a trigger
    for (o, cause), items in groups.items():
        classes = {f["class"] for f, _ in items}
        trigger = _trigger([r for _, rs in items for r in rs]) if classes <= set(STRUCTURAL) else None
        merged[(o, f"axes:{trigger}" if trigger else cause)].extend(items)

    out = [_defect(o, key, items, adapters, commands, issues, upstream) for (o, key), items in merged.items()]
    per_owner = Counter(d["owner"] for d in out)
    order = {c: k for k, c in enumerate(CLASSES)}
    return sorted(out, key=lambda d: (-per_owner[d["owner"]], d["owner"], order.get(d["class"], 99), -d["results"],
                                      d["id"]))


def _defect(owner: str, key: str, items: list, adapters: dict, commands, issues, upstream) -> dict:
    records = [r for _, rs in items for r in rs]
    findings: dict[str, dict] = {}
    per_finding: dict[str, list] = defaultdict(list)
    for f, rs in items:
        findings.setdefault(f["id"], f)
        per_finding[f["id"]] += rs
    order = {c: k for k, c in enumerate(CLASSES)}
    ranked = sorted(findings.values(), key=lambda f: (order.get(f["class"], 99), -len(per_finding[f["id"]])))
    symptoms: dict[str, list] = {}  # symptom -> the error classes raising it (one symptom for every class)
    for f in ranked:
        text = _symptom(f["title"])
        m = re.match(r"raises (\w+)(: .*|$)", text)
        said_, error = (f"raises{m.group(2)}", m.group(1)) if m else (text, None)
        raising = symptoms.setdefault(said_, [])
        if error and error not in raising:
            raising.append(error)
    symptoms = [f"raises {'/'.join(errors)}{text.removeprefix('raises')}" if errors else text
                for text, errors in symptoms.items()]
    said = "; ".join(symptoms[:3]) + (f" (and {len(symptoms) - 3} more)" if len(symptoms) > 3 else "")
    trigger = key.removeprefix("axes:") if key.startswith("axes:") else None
    title = f"{TRIGGER_TEXT[trigger]}: {said}" if trigger else said
    smallest = smallest_readable(records)
    d = smallest.get("diagnosis") or {}
    names = sorted({r["adapter"] for r in records})
    classes = sorted({f["class"] for f in ranked}, key=lambda c: order.get(c, 99))
    versions = {a: (adapters.get(a) or {}).get("versions") or {} for a in names}
    known: list = []
    for f in ranked:
        sub = {"id": f["id"], "adapters": sorted({r["adapter"] for r in per_finding[f["id"]]}),
               "records": [{"adapter": r["adapter"], "case": r["case"], "check": r["check"]} for r in per_finding[f["id"]]]}
        for issue in upstream.matching(sub, versions, issues):
            if issue not in known:
                known.append(issue)
    rerun, repro = commands(smallest) if commands else ("", "")
    return {
        "id": f"{owner}/{_slug(trigger or key)}", "title": title, "owner": owner, "class": classes[0],
        "classes": classes, "trigger": trigger, "cause": None if trigger else key,
        "findings": [f["id"] for f in ranked], "finding_titles": {f["id"]: f["title"] for f in ranked}, "adapters": names, "results": len(records),
        "per_adapter": {a: sum(r["adapter"] == a for r in records) for a in names},
        "smallest": {"case": smallest["case"], "adapter": smallest["adapter"], "check": smallest["check"]},
        "detail": d.get("detail", ""), "evidence": d.get("evidence"), "rerun": rerun, "repro": repro,
        "upstream": [{"ref": i.ref, "state": i.state, "title": i.title, "url": i.url, "kind": i.kind, "note": i.note}
                     for i in known],
        "upstream_text": upstream_text(known),
        "records": [{"case": r["case"], "adapter": r["adapter"], "check": r["check"], "status": r["status"]}
                    for r in records],
    }


def upstream_text(issues) -> str:
    """"known upstream: keras-team/keras#19642 (closed), ..." or "no upstream issue found"."""
    if not issues:
        return "no upstream issue found"
    return "known upstream: " + ", ".join(f"{i.ref} ({i.state})" for i in issues)


def projects(defect_list: list[dict]) -> list[tuple[str, int]]:
    """(owner, number of defects), most first (the order of `defects`)."""
    return list(Counter(d["owner"] for d in defect_list).items())


def projects_text(defect_list: list[dict]) -> str:
    """"25 defects in 9 projects (keras 7, onnx 4, ...)"."""
    n, p = len(defect_list), projects(defect_list)
    return (f"{n} defect{'s' if n != 1 else ''} in {len(p)} project{'s' if len(p) != 1 else ''} ("
            + ", ".join(f"{o} {k}" for o, k in p) + ")")


def scoreboard(records: list[dict], defect_list: list[dict], adapters: dict[str, dict]) -> list[dict]:
    """A row per adapter: its owners, its counts per status and the defects it shows."""
    from conformance.reports.schema import STATUSES

    counts: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        counts[r["adapter"]][r["status"]] += 1
    shows: dict[str, list] = defaultdict(list)
    for d in defect_list:
        for a in d["adapters"]:
            shows[a].append(d["id"])
    return [{"adapter": a, "owners": list(owners_of(a, adapters.get(a))), **{s: counts[a][s] for s in STATUSES},
             "defects": shows[a]} for a in sorted(set(counts) | set(adapters))]


def find(defect_list: list[dict], findings: list[dict], wanted: str) -> tuple[dict | None, dict | None]:
    """(the defect, the finding) an id names: a defect's id, or a finding's (then its defect)."""
    for d in defect_list:
        if d["id"] == wanted:
            return d, None
    for f in findings:
        if f["id"] == wanted:
            return next((d for d in defect_list if wanted in d["findings"]), None), f
    return None, None
