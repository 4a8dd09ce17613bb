"""`conformance bisect --package PKG --adapters A (--case ID [--check C] | --finding ID --from RUN) --out DIR`:
the release of PKG where the outcome of the chosen results changes.

The releases come from the package index (stable ones in PEP 440 order; pre-releases and the
nightly with --include-nightly), cut to --versions FIRST..LAST or --good/--bad.  Each version
tried is one `conformance run` of the chosen cases with `--with PKG==VERSION`, in a child process,
into DIR/runs/PKG-VERSION/ (its output in DIR/logs/); its outcome is the status and finding id of
each chosen result.  A version that does not install, or whose adapters all fail to load or
decline every chosen result, is skipped with its reason.  The search is
conformance/execution/bisection.py.  Writes DIR/bisect.json and DIR/bisect.md and prints one line.
Exit 0: a change found; 1: the same outcome across the range (or fewer than two versions could be
judged); 2: bad input; 128 + N: stopped by signal N (bisect.json then holds what was tried).
"""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

from conformance.errors import UsageError
from conformance.execution.bisection import Skip, bisect
from conformance.execution.outdir import write_atomic

from conformance.commands.matrix import (LOGS, NIGHTLY, Children, child_run_args, index_versions,
                                         validate_run_selection, version_key)
from conformance.commands.report import EXIT_FAIL, EXIT_PASS

FILES = ("bisect.json", "bisect.md")
RUNS = "runs"


class _Stopped(Exception):
    pass


# -- what is being bisected -----------------------------------------------------------------

def _target(args):
    """(adapters as refs, case ids or patterns, select(record) -> bool, what it is in words)."""
    from conformance.checks.registry import BY_NAME
    from conformance.commands.run import select_adapters

    if args.finding:
        return _finding_target(args)
    if args.from_run:
        raise UsageError("--from goes with --finding (the run whose finding to bisect)")
    if not args.adapters and not args.adapter:
        raise UsageError("--case needs --adapters or --adapter: the adapter(s) to bisect on")
    check = args.check
    if check and not any(fnmatch.fnmatchcase(c, check) for c in BY_NAME):
        raise UsageError(f"--check {check!r} matches no check (checks: {', '.join(BY_NAME)})")
    refs = select_adapters(args)

    def select(r: dict) -> bool:
        return not check or fnmatch.fnmatchcase(r["check"], check)
    return refs, list(args.case), select, None


def _finding_target(args):
    from conformance.commands.run import select_adapters
    from conformance.execution.adapter_refs import resolve
    from conformance.reports.results import load_results

    if not args.from_run:
        raise UsageError("--finding needs --from RUN_DIR: the run (or results.jsonl) that has the finding")
    results = load_results(Path(args.from_run))
    found = {f["id"]: f for f in results.findings}
    f = found.get(args.finding)
    if f is None:
        known = ", ".join(sorted(found)[:10]) or "none"
        raise UsageError(f"--finding {args.finding!r} is not a finding of {args.from_run} (its findings: {known}"
                         f"{', ...' if len(found) > 10 else ''})")
    if args.adapters or args.adapter:
        refs = select_adapters(args)
        names = {a.name for a in resolve(refs)}
    else:
        names = set(f["adapters"])
        refs = [results.adapters.get(a, {}).get("ref", a) for a in f["adapters"]]
    keys = {(r["adapter"], r["case"], r["check"]) for r in f["records"] if r["adapter"] in names}
    if not keys:
        raise UsageError(f"--finding {args.finding} has no result on {', '.join(sorted(names))} in {args.from_run} "
                         f"(its adapters: {', '.join(f['adapters'])})")
    if args.check:
        keys = {k for k in keys if fnmatch.fnmatchcase(k[2], args.check)}
        if not keys:
            raise UsageError(f"--check {args.check!r} matches none of the finding's results")
    cases = sorted({k[1] for k in keys})

    def select(r: dict) -> bool:
        return (r["adapter"], r["case"], r["check"]) in keys
    return refs, cases, select, f


def _versions(args) -> list[str]:
    """The versions to search, oldest first: the index's releases cut to the range asked."""
    listed = sorted(index_versions(args.package, args.pip_arg, include_pre=args.include_nightly), key=version_key)
    if args.include_nightly and NIGHTLY not in listed:
        listed.append(NIGHTLY)
    if args.versions and (args.good or args.bad):
        raise UsageError("give --versions FIRST..LAST or --good V --bad V, not both")
    if bool(args.good) != bool(args.bad):
        raise UsageError("--good and --bad go together: the two versions whose outcomes differ")
    if args.versions:
        m = re.fullmatch(r"\s*([^.\s][^\s]*?)\s*\.\.\s*([^.\s][^\s]*)\s*", args.versions)
        if not m:
            raise UsageError(f"--versions {args.versions!r} must be FIRST..LAST, e.g. 3.0.0..3.5.0")
        ends = [m.group(1), m.group(2)]
    elif args.good:
        ends = [args.good, args.bad]
    else:
        return listed
    where = {}
    for v in ends:
        i = _find(listed, v)
        if i is None:
            kind = "" if args.include_nightly else "; --include-nightly adds pre-releases and the nightly"
            has = ", ".join(listed) if len(listed) <= 8 else f"{', '.join(listed[:3])}, ..., {', '.join(listed[-4:])}"
            raise UsageError(f"{args.package} {v} is not a {'release' if args.include_nightly else 'stable release'} "
                             f"the package index has (it has {has}{kind})")
        where[v] = i
    lo, hi = where[ends[0]], where[ends[1]]
    if args.versions and lo > hi:
        raise UsageError(f"--versions {args.versions}: {ends[0]} comes after {ends[1]}; give FIRST..LAST oldest first")
    if lo == hi:
        raise UsageError(f"the range {ends[0]}..{ends[1]} holds one version: nothing to bisect")
    lo, hi = min(lo, hi), max(lo, hi)
    return listed[lo:hi + 1]


def _find(listed: list[str], v: str) -> int | None:
    from packaging.version import InvalidVersion, Version

    if v in listed:
        return listed.index(v)
    try:
        want = Version(v)
    except InvalidVersion:
        return None
    for i, x in enumerate(listed):
        if x != NIGHTLY and Version(x) == want:
            return i
    return None


# -- outcomes -------------------------------------------------------------------------------

def outcome_of(results, select) -> tuple[tuple, dict, dict]:
    """(outcome, labels, imported): the (adapter, case, check, status, finding) of each chosen
    result, sorted; "class: title" of each finding; the versions each adapter imported.  Skip
    when every chosen result is unsupported or an error of an adapter that did not load."""
    chosen = [r for r in results.records if select(r)]
    loaded = set(results.adapters)
    if not chosen:
        raise Skip("the run has none of the chosen results")
    if all(r["status"] == "unsupported" or (r["status"] == "error" and r["adapter"] not in loaded) for r in chosen):
        bad = next((r for r in chosen if r["status"] == "error"), chosen[0])
        what = "failed to load" if bad["status"] == "error" else "declined every chosen result"
        raise Skip(f"{bad['adapter']} {what}: {_first_line(bad.get('message', ''))}")
    labels = {}
    for f in results.findings:
        labels[f["id"]] = f"{f['class']}: {f['title']}"
    imported = {a: dict(meta.get("versions", {})) for a, meta in sorted(results.adapters.items())}
    outcome = tuple(sorted((r["adapter"], r["case"], r["check"], r["status"], r.get("finding")) for r in chosen))
    return outcome, labels, imported


def _first_line(text: str, limit: int = 160) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _value_text(status: str, finding: str | None, labels: dict) -> str:
    return status if not finding else f"{status} ({labels.get(finding, finding)})"


def subject(keys) -> str:
    """The chosen results in words: "forward of CASE on A", "3 results of CASE on A", "12 results on A, B"."""
    keys = sorted(set(keys))
    adapters = sorted({k[0] for k in keys})
    cases = sorted({k[1] for k in keys})
    checks = sorted({k[2] for k in keys})
    on = ", ".join(adapters)
    if len(cases) == 1:
        what = ", ".join(checks) if len(checks) <= 3 and len(keys) == len(checks) else f"{len(keys)} results"
        return f"{what} of {cases[0]} on {on}"
    return f"{len(keys)} results of {len(cases)} cases on {on}"


def outcome_text(outcome: tuple, keys, labels: dict) -> str:
    """What `outcome` is on the results `keys`: "pass", "error (crash: build raised ...)", or per
    group "fail (...) on forward; pass on grad_x"."""
    by_key = {o[:3]: (o[3], o[4]) for o in outcome}
    groups: dict = defaultdict(list)
    for k in sorted(keys):
        groups[by_key.get(k, ("missing", None))].append(k)
    if len(groups) == 1:
        (status, finding), = groups
        return _value_text(status, finding, labels)
    return "; ".join(f"{_value_text(s, f, labels)} on {_keys_short(ks)}" for (s, f), ks in groups.items())


def _keys_short(keys) -> str:
    cases = {k[1] for k in keys}
    if len(cases) == 1 and len(keys) <= 3:
        return ", ".join(k[2] for k in keys)
    return f"{len(keys)} results"


def _changed_keys(before: tuple, after: tuple) -> list:
    b = {o[:3]: o[3:] for o in before}
    a = {o[:3]: o[3:] for o in after}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


# -- the command ----------------------------------------------------------------------------

def cmd_bisect(args) -> int:
    from conformance.execution.outdir import OutputFolder
    from conformance.execution.overlays import Requirement
    from conformance.reports.matrix import set_label

    try:
        Requirement.parse(f"{args.package}==0")
    except (ValueError, UsageError) as exc:
        raise UsageError(f"--package {args.package!r}: {exc}") from None
    refs, cases, select, finding = _target(args)
    args.adapters, args.adapter = ",".join(r for r in refs if ":" not in r) or None, [r for r in refs if ":" in r]
    args.case = cases
    validate_run_selection(args)  # the cases of a finding are exact ids, which need no suite
    versions = _versions(args)
    run_args = child_run_args(args)
    out = Path(args.out)
    folder = OutputFolder(out)
    folder.acquire("render")
    try:
        _prepare(out, args.overwrite)
        info: dict[str, dict] = {}
        start = time.monotonic()
        with Children() as children:
            def outcome(version: str):
                if children.signum is not None:
                    raise _Stopped()
                label = set_label({args.package: version})
                target = out / RUNS / label
                print(f"bisect: trying {args.package} {version}", file=sys.stderr, flush=True)
                info[version] = {"run": str(target), "log": str(out / LOGS / f"{label}.log")}
                code, reason = children.run([*run_args, "--with", f"{args.package}=={version}", "--out", str(target),
                                             "--overwrite"], out / LOGS / f"{label}.log")
                if children.signum is not None or code >= 128:
                    raise _Stopped()
                if code not in (0, 1) or not (target / "results.jsonl").is_file():
                    why = "does not install" if "overlay" in reason else f"its run failed (exit {code})"
                    raise Skip(f"{why}: {reason}")
                from conformance.reports.results import load_results

                value, labels, imported = outcome_of(load_results(target), select)
                info[version].update(labels=labels, imported=imported)
                return value

            try:
                result = bisect(versions, outcome)
                stopped = None
            except _Stopped:
                result, stopped = None, children.exit_code or 130
        seconds = time.monotonic() - start
        if result is None:
            data = {"package": args.package, "verdict": "interrupted", "first_changed": None, "last_same": None,
                    "versions": versions, "tried": [{"version": v, **i} for v, i in info.items()],
                    "seconds": seconds, "line": f"{args.package}: bisection stopped by a signal after "
                                                f"{len(info)} version(s); nothing concluded"}
            _write(out, data, "")
            print(data["line"])
            return stopped
        data, md = report(args.package, versions, result, info, seconds, finding)
        _write(out, data, md)
        print(data["line"])
        print("wrote " + ", ".join(str(out / f) for f in FILES))
        return EXIT_PASS if result.verdict in ("changed", "multiple") else EXIT_FAIL
    finally:
        folder.release()


def _prepare(out: Path, overwrite: bool) -> None:
    present = sorted(p.name for p in out.iterdir() if p.name != ".lock")
    if present and not overwrite:
        raise UsageError(f"output folder {out} is not empty ({', '.join(present[:3])}); use --overwrite to replace "
                         "a bisection there, or another --out")
    if present and not (out / "bisect.json").exists() and not (out / RUNS).is_dir():
        raise UsageError(f"--overwrite: {out} holds no bisection ({', '.join(present[:3])}); choose an empty or new --out")
    for name in (*FILES, RUNS, LOGS):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _write(out: Path, data: dict, md: str) -> None:
    write_atomic(out / "bisect.json", json.dumps(data, indent=1, default=str) + "\n")
    write_atomic(out / "bisect.md", md or f"# Bisection of {data['package']}\n\n**{data['line']}**\n")


def _outcome_records(outcome) -> list[dict]:
    return [dict(zip(("adapter", "case", "check", "status", "finding"), o)) for o in outcome or ()]


def report(package: str, versions: list[str], result, info: dict, seconds: float, finding: dict | None) -> tuple[dict, str]:
    """bisect.json's data and bisect.md: the verdict line, every version tried, the changes."""
    tried = result.in_version_order()
    all_keys = sorted({o[:3] for t in tried if t.judged for o in t.outcome})
    labels_of = lambda v: info.get(v, {}).get("labels", {})  # noqa: E731
    n = len(result.tried)
    took = f"({n} version{'s' if n != 1 else ''} tried in {seconds:.0f} s)"
    what = subject(all_keys) if all_keys else "the chosen results"
    if finding:
        what = f"finding {finding['id']} ({what})"
    changes = []
    for c in result.changes:
        keys = _changed_keys(c.before, c.after)
        changes.append({"last_same": c.last_same, "first_changed": c.first_changed, "results": subject(keys),
                        "before": outcome_text(c.before, keys, labels_of(c.last_same)),
                        "after": outcome_text(c.after, keys, labels_of(c.first_changed)),
                        "skipped_between": list(c.skipped), "untried_between": list(c.untried)})
    verdict = result.verdict
    if verdict == "changed":
        c = changes[0]
        between = (f"; the change may lie in any of {', '.join(c['skipped_between'])}, skipped"
                   if c["skipped_between"] else "")
        line = (f"{package} {c['first_changed']} changes {c['results']} from {c['before']} to {c['after']}; "
                f"{c['last_same']} is the last with the old outcome{between} {took}")
    elif verdict == "multiple":
        steps = "; ".join(f"{c['last_same']} -> {c['first_changed']}: {c['results']} from {c['before']} to {c['after']}"
                          for c in changes)
        line = (f"{package}: the outcome of {what} changes more than once among the versions tried ({steps}), "
                f"so no single change point is named {took}")
    elif verdict == "same":
        first, last = result.judged[0], result.judged[-1]
        line = (f"{package}: {what} gives the same outcome, {outcome_text(first.outcome, all_keys, labels_of(first.version))}, "
                f"at {first.version} and {last.version}; no change point in {versions[0]}..{versions[-1]} {took}")
    else:
        reasons = "; ".join(f"{t.version}: {t.skipped}" for t in tried if not t.judged)[:600]
        line = (f"{package}: fewer than two of {versions[0]}..{versions[-1]} could be judged, nothing to compare "
                f"{took}" + (f"; skipped {reasons}" if reasons else ""))
    c = result.change
    data = {
        "package": package, "verdict": verdict, "line": line,
        "first_changed": c.first_changed if c else None, "last_same": c.last_same if c else None,
        "results": what, "finding": finding["id"] if finding else None,
        "versions": versions, "range": [versions[0], versions[-1]] if versions else [],
        "changes": changes, "seconds": seconds,
        "tried": [{"version": t.version, "order": t.order, "skipped": t.skipped, "seconds": round(t.seconds, 3),
                   "outcome": _outcome_records(t.outcome) if t.judged else None,
                   "text": outcome_text(t.outcome, all_keys, labels_of(t.version)) if t.judged else None,
                   "imported": info.get(t.version, {}).get("imported"),
                   "run": info.get(t.version, {}).get("run"), "log": info.get(t.version, {}).get("log")}
                  for t in tried],
    }
    md = [f"# Bisection of {package}", "", f"**{line}**", "",
          f"Versions searched: {len(versions)} ({versions[0]} .. {versions[-1]}); tried {n}, in this order: "
          + ", ".join(t.version for t in result.tried) + ".", "", "## Versions tried", "",
          "| version | outcome | seconds | imported | run |", "|---|---|---|---|---|"]
    for t in data["tried"]:
        out_text = t["text"] if t["skipped"] is None else f"skipped: {t['skipped']}"
        imported = "; ".join(f"{a}: " + ", ".join(f"{k} {v}" for k, v in sorted(vs.items()))
                             for a, vs in (t["imported"] or {}).items()) or "–"
        md.append(f"| {t['version']} | {_md(out_text)} | {t['seconds']:.1f} | {_md(imported)} | `{t['run']}` |")
    md += ["", "## Changes between consecutive versions judged", ""]
    for ch in changes:
        md.append(f"- {ch['last_same']} → {ch['first_changed']}: {ch['results']}: {ch['before']} → {ch['after']}"
                  + (f" (skipped between: {', '.join(ch['skipped_between'])})" if ch["skipped_between"] else "")
                  + (f" (not tried between: {', '.join(ch['untried_between'])})" if ch["untried_between"] else ""))
    if not changes:
        md.append("None.")
    return data, "\n".join(md) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
