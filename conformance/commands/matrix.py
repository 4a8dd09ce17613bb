"""`conformance matrix --vary PKG=V1,V2 ... --out DIR`: one run per version set, side by side.

Each version set (the product of the --vary lists, each sorted oldest first) is one
`conformance run ... --with PKG==V` in a child process, into DIR/LABEL/ (LABEL as
reports/matrix.py's `set_label`: "keras-3.5.0"), its output in DIR/logs/LABEL.log.  Then
DIR/matrix.json, matrix.md and matrix.html (reports/matrix.py) from the runs' results.  The state
of the matrix (what was asked, which sets finished) is DIR/matrix.state.json, which `--resume`
reads to continue the sets not finished.  Exit codes as `run`'s, decided on the newest set; 2 for
bad input; 128 + N when stopped by signal N (the run in progress is stopped the same way, and
`--resume` continues it).

The child-run plumbing here (`child_run_args`, `Children`) is `conformance bisect`'s too.
"""
from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conformance.errors import UsageError
from conformance.execution.outdir import write_atomic

from conformance.commands.report import EXIT_FAIL, EXIT_PASS, gate

STATE = "matrix.state.json"
FILES = ("matrix.json", "matrix.md", "matrix.html")
LOGS = "logs"
NIGHTLY = "nightly"


# -- the child runs -------------------------------------------------------------------------

def child_run_args(args) -> list[str]:
    """The `conformance run` options a matrix or bisect passes on to each of its runs (not --out,
    --with of the varied package, --resume or --overwrite)."""
    out: list[str] = []
    if args.suite:
        out += ["--suite", args.suite]
    if args.adapters:
        out += ["--adapters", args.adapters]
    for a in args.adapter:
        out += ["--adapter", a]
    for c in args.case:
        out += ["--case", c]
    if args.jobs:
        out += ["--jobs", str(args.jobs)]
    if args.timeout:
        out += ["--timeout", repr(args.timeout)]
    if args.no_cache:
        out.append("--no-cache")
    elif args.cache_dir:
        out += ["--cache-dir", args.cache_dir]
    if getattr(args, "device", "cpu") != "cpu":
        out += ["--device", args.device]
    if getattr(args, "xfail", None):
        out += ["--xfail", args.xfail]
    if getattr(args, "accept", None):
        out += ["--accept", args.accept]
    if getattr(args, "strict_xfail", False):
        out.append("--strict-xfail")
    if getattr(args, "isolate_adapters", False):
        out.append("--isolate-adapters")
    for w in args.with_:
        out += ["--with", w]
    out += [f"--pip-arg={a}" for a in args.pip_arg]
    if args.python:
        out += ["--python", args.python]
    if getattr(args, "fail_on", None) is not None:
        out += ["--fail-on", ",".join(sorted(args.fail_on))]
    if getattr(args, "min_coverage", 0.0):
        out += ["--min-coverage", repr(args.min_coverage)]
    return out


class Children:
    """`conformance run` in child processes, one at a time.  SIGINT, SIGTERM and SIGHUP are
    passed on to the child running (which stops as a run does: its finished records kept) and no
    other child starts; `signum` says which came.  The children have their own session, so a
    Ctrl-C at the terminal reaches them once, from here."""

    def __init__(self):
        self.signum: int | None = None
        self.proc: subprocess.Popen | None = None
        self._previous: dict = {}

    def __enter__(self) -> "Children":
        from conformance.execution.interrupt import SIGNALS

        for s in SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"\nconformance: {signal.Signals(signum).name}: stopping the run in progress; its finished results "
                  "are kept (--resume continues)", file=sys.stderr, flush=True)
            self._forward()

    def _forward(self) -> None:
        if self.signum is not None and self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(self.signum)
            except OSError:
                pass

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def run(self, run_args: list[str], log: Path) -> tuple[int, str]:
        """(exit code, its error line or "") of `conformance run RUN_ARGS`, its output in `log`."""
        if self.signum is not None:
            return 128 + self.signum, "stopped before it started"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as f:
            self.proc = subprocess.Popen([sys.executable, "-m", "conformance.cli", "run", *run_args],
                                         stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
            self._forward()  # a signal that came while it started
            while True:
                try:
                    code = self.proc.wait()
                    break
                except KeyboardInterrupt:  # pragma: no cover - the handler above takes SIGINT
                    continue
        self.proc = None
        return code, error_line(log)


def error_line(log: Path) -> str:
    """The last `conformance: error: ...` line a child wrote (its reason for exit 2), without the prefix."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errors = [x.removeprefix("conformance: error: ") for x in lines if x.startswith("conformance: error: ")]
    return errors[-1] if errors else (lines[-1] if lines else "")


def validate_run_selection(args) -> None:
    """What the child runs would refuse (adapters, suite, cases, requirements, xfail, accept), refused here
    first, before any folder is touched."""
    from conformance.cases.suites import load_suite
    from conformance.commands.run import select_adapters, select_cases
    from conformance.execution.adapter_refs import resolve
    from conformance.execution.overlays import Requirement

    resolve(select_adapters(args))
    select_cases(load_suite(args.suite), args.case)
    for w in args.with_:
        _requirement(Requirement, w, "--with")
    if getattr(args, "xfail", None):
        from conformance.xfail import XfailList

        XfailList.load(Path(args.xfail))
    if getattr(args, "accept", None):
        from conformance.accept import AcceptList

        AcceptList.load(Path(args.accept))


def _requirement(Requirement, text: str, option: str):
    try:
        return Requirement.parse(text)
    except (ValueError, UsageError) as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from None


def version_key(version: str):
    """PEP 440 order, nightly after every release."""
    from packaging.version import Version

    return (1, Version("0")) if version == NIGHTLY else (0, Version(version))


def index_versions(package: str, pip_args, include_pre: bool) -> list[str]:
    """The releases the index has (overlays.available_versions); UsageError for an unknown package
    or an index that cannot be read."""
    from conformance.execution.overlays import available_versions

    try:
        found = available_versions(package, pip_args=tuple(pip_args), include_pre=include_pre)
    except UsageError:
        raise
    except Exception as exc:  # an unreachable index, pip failing: an input problem, one line
        raise UsageError(f"cannot list the versions of {package!r} on the package index: "
                         f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}") from None
    if not found:
        raise UsageError(f"the package index has no release of {package!r} (an unknown package?)")
    return list(found)


# -- the matrix -------------------------------------------------------------------------------

def parse_vary(specs: list[str]) -> list[tuple[str, list[str]]]:
    """--vary PKG=V1,V2,...: (package, versions oldest first) per option; UsageError otherwise."""
    from packaging.version import InvalidVersion

    from conformance.execution.overlays import Requirement, canonical

    out: list[tuple[str, list[str]]] = []
    for spec in specs:
        package, sep, rest = spec.partition("=")
        package = package.strip()
        versions = [v.strip() for v in rest.split(",") if v.strip()]
        if not sep or not package or not versions or rest.startswith("="):
            raise UsageError(f"--vary {spec!r} must be PACKAGE=VERSION,VERSION,..., e.g. keras=3.5.0,3.6.0")
        for v in versions:
            _requirement(Requirement, f"{package}=={v}", "--vary")  # as --with takes it; the name stays the user's
        if any(canonical(p) == canonical(package) for p, _ in out):
            raise UsageError(f"--vary names {package!r} twice: give its versions in one --vary")
        if len(set(versions)) != len(versions):
            raise UsageError(f"--vary {spec!r} lists a version twice")
        try:
            versions.sort(key=version_key)
        except InvalidVersion as exc:
            raise UsageError(f"--vary {spec!r}: {exc}") from None
        out.append((package, versions))
    return out


def version_sets(vary: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    """The product of the --vary lists, the last package varying fastest; the last set is the newest."""
    packages = [p for p, _ in vary]
    return [dict(zip(packages, combo)) for combo in itertools.product(*(vs for _, vs in vary))]


def _check_in_index(vary, pip_args) -> None:
    """Every requested version is one the index has (nightly aside)."""
    from packaging.version import Version

    for package, versions in vary:
        wanted = [v for v in versions if v != NIGHTLY]
        if not wanted:
            continue
        listed = set(index_versions(package, pip_args, include_pre=any(Version(v).is_prerelease for v in wanted)))
        listed_norm = {Version(v) for v in listed}
        missing = [v for v in wanted if v not in listed and Version(v) not in listed_norm]
        if missing:
            raise UsageError(f"--vary {package}: the package index has no {', '.join(missing)} "
                             f"(it has {', '.join(sorted(listed, key=version_key)[-8:])}{', ...' if len(listed) > 8 else ''})")


def cmd_matrix(args) -> int:
    from conformance.execution.outdir import OutputFolder
    from conformance.reports.matrix import set_label

    vary = parse_vary(args.vary)
    validate_run_selection(args)
    _check_in_index(vary, args.pip_arg)
    sets = version_sets(vary)
    labels = [set_label(s) for s in sets]
    if len(set(labels)) != len(labels):
        raise UsageError("two version sets would share a folder name; give distinct versions")
    run_args = child_run_args(args)
    plan = {"vary": [[p, vs] for p, vs in vary], "run_args": run_args}
    out = Path(args.out)
    folder = OutputFolder(out)
    folder.acquire("render")  # the lock: one matrix into a folder at a time
    try:
        state = _open_state(out, plan, args)
        return _run_matrix(args, out, sets, labels, run_args, state)
    finally:
        folder.release()


def _open_state(out: Path, plan: dict, args) -> dict:
    """The matrix state to continue (--resume), or a fresh one; UsageError when the folder holds
    something else, or a matrix of other options."""
    path = out / STATE
    present = sorted(p.name for p in out.iterdir() if p.name != ".lock")
    if args.resume:
        if not path.is_file():
            if present:
                raise UsageError(f"--resume: {out} holds no matrix ({STATE} is missing); choose another --out")
            return {"plan": plan, "sets": {}}
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            previous, done = state["plan"], dict(state["sets"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"--resume: {path} is not a matrix state ({exc}); use --overwrite to start over") from None
        if previous != plan:
            what = "--vary lists" if previous.get("vary") != plan["vary"] else "run options"
            raise UsageError(f"--resume: the matrix in {out} was started with other {what}; "
                             "give the same options, or --overwrite to start over")
        return {"plan": plan, "sets": done}
    if present and not args.overwrite:
        what = "a matrix" if path.exists() else f"other files ({', '.join(present[:3])})"
        raise UsageError(f"output folder {out} already holds {what}; use --resume to continue it, --overwrite to "
                         "replace it, or another --out")
    if args.overwrite and present and not path.exists() and not (out / "matrix.json").exists():
        raise UsageError(f"--overwrite: {out} holds no matrix ({', '.join(present[:3])}); "
                         "choose an empty or new folder with --out")
    if args.overwrite:
        for p in out.iterdir():  # only what a matrix writes: its files, its run folders, its logs
            if p.name in (STATE, *FILES) or p.name == LOGS:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            elif p.is_dir() and ((p / "results.jsonl").exists() or (p / "results.partial.jsonl").exists()):
                shutil.rmtree(p)
    return {"plan": plan, "sets": {}}


def _save_state(out: Path, state: dict) -> None:
    write_atomic(out / STATE, json.dumps(state, indent=1) + "\n")


def _run_matrix(args, out: Path, sets, labels, run_args, state) -> int:
    todo = [(s, label) for s, label in zip(sets, labels) if state["sets"].get(label, {}).get("status") not in ("finished", "failed")]
    print(f"matrix: {len(sets)} version set(s) into {out}/" + (f" (resuming: {len(sets) - len(todo)} done, {len(todo)} to go)"
                                                                if args.resume and len(todo) < len(sets) else ""), file=sys.stderr)
    with Children() as children:
        for n, (requested, label) in enumerate(todo, 1):
            if children.signum is not None:
                break
            target = out / label
            again = target.is_dir() and any(target.iterdir())
            requirement = [a for p, v in requested.items() for a in ("--with", f"{p}=={v}")]
            mode = ["--resume"] if again else []
            print(f"matrix: [{n}/{len(todo)}] {label}: conformance run ... {' '.join(requirement)} --out {target}"
                  + (" --resume" if again else ""), file=sys.stderr, flush=True)
            start = time.monotonic()
            code, reason = children.run([*run_args, *requirement, "--out", str(target), *mode], out / LOGS / f"{label}.log")
            seconds = time.monotonic() - start + state["sets"].get(label, {}).get("seconds", 0.0)
            if children.signum is not None or code >= 128:
                entry = {"status": "interrupted", "exit": code, "seconds": seconds}
            elif code in (0, 1):
                entry = {"status": "finished", "exit": code, "seconds": seconds}
            else:
                entry = {"status": "failed", "exit": code, "reason": reason or f"conformance run exited {code}",
                         "seconds": seconds}
            state["sets"][label] = entry
            _save_state(out, state)
            print(f"matrix: {label}: {entry['status']}" + (f" ({entry['reason']})" if entry.get("reason") else "")
                  + f" in {seconds:.1f}s; log {out / LOGS / (label + '.log')}", file=sys.stderr, flush=True)
        stopped = children.exit_code
    _save_state(out, state)
    data = _write_files(args, out, sets, labels, state)
    from conformance.reports.matrix import describe_counts, headline, newest_failed

    for s in data["sets"]:
        print(f"  {s['label']}: " + (s["verdict"] or s["status"]) + (f" ({s['reason']})" if s.get("reason") else ""))
    line = describe_counts(data)
    if line:
        print(f"  {line}")
    print(("INTERRUPTED: " if stopped else "") + headline(data))
    print("wrote " + ", ".join(str(out / f) for f in FILES))
    if stopped:
        return stopped
    return EXIT_FAIL if newest_failed(data) else EXIT_PASS


def _write_files(args, out: Path, sets, labels, state) -> dict:
    from conformance.reports.matrix import matrix, render_html, render_markdown
    from conformance.reports.results import load_results

    policy = gate(args)
    entries = []
    for requested, label in zip(sets, labels):
        st = state["sets"].get(label, {"status": "not run"})
        results, status, reason = None, st["status"], st.get("reason", "")
        if status in ("finished", "interrupted") and (out / label / "results.jsonl").is_file():
            try:
                results = load_results(out / label / "results.jsonl", gate=policy)
            except UsageError as exc:
                status, reason = "failed", f"its results cannot be read: {exc}"
        elif status == "interrupted":
            status = "not run"  # stopped before its first result
        entries.append({"label": label, "requested": requested, "status": status, "reason": reason,
                        "results": results, "seconds": st.get("seconds")})
    data = matrix(entries)
    write_atomic(out / "matrix.json", json.dumps(data, indent=1) + "\n")
    write_atomic(out / "matrix.md", render_markdown(data))
    write_atomic(out / "matrix.html", render_html(data))
    return data
