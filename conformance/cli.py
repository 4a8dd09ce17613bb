"""The `conformance` command: its options and dispatch.  Exit 0: all pass; 1: failures;
2: the input was wrong; 3: the Ray cluster was lost mid-run; 128 + N: stopped by signal N.  Each command lives in its own module of
conformance/commands/ (COMMAND_MODULES)."""
from __future__ import annotations

import argparse
import math
import signal
import sys

from conformance.errors import UsageError
from conformance.execution.procs import become_subreaper, reap_strays
from conformance.commands.report import EXIT_USAGE


def _number(kind, low: float, high: float, low_open: bool = False):
    """An argparse type: a finite `kind` in [low, high] (or (low, high] with low_open)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
            if kind is int:
                raise argparse.ArgumentTypeError(f"{text!r} must be an integer from {low} to {high}")
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number {bound} and <= {high:g}")
        return value
    parse.__name__ = "integer" if kind is int else "number"
    return parse


POSITIVE_SECONDS = _number(float, 0.0, 7 * 24 * 3600.0, low_open=True)
JOBS = _number(int, 1, 512)
BUDGET = _number(int, 1, 10**7)
SEED = _number(int, 0, 2**63 - 1)


def _classes(text: str) -> frozenset:
    """--fail-on: "all", or finding classes separated by commas."""
    from conformance.diagnosis.diagnose import CLASSES

    if text.strip() == "all":
        return frozenset(CLASSES)
    chosen = frozenset(c.strip() for c in text.split(",") if c.strip())
    unknown = sorted(chosen - set(CLASSES))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: give 'all' or classes from {', '.join(CLASSES)}")
    return chosen


SHARE = _number(float, 0.0, 1.0)


def _folder(hint: str):
    """An argparse type: a folder path that is not empty (an empty one would silently mean the default)."""
    def parse(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(f"an empty path is not a folder: {hint}")
        return text
    parse.__name__ = "folder"
    return parse


def _gating_options(p) -> None:
    p.add_argument("--fail-on", type=_classes, default=None, metavar="CLASSES",
                   help="finding classes that fail the run, comma-separated, or 'all' (default: all but range)")
    p.add_argument("--min-coverage", type=SHARE, default=0.0, metavar="P",
                   help="least share (0-1) of its checks each adapter must run (default 0: at least one pass)")


def _strict_option(p) -> None:
    p.add_argument("--strict-xfail", action="store_true",
                   help="an xpass (a result listed in --xfail that passes) fails the run, as pytest's xfail_strict")


def _known_options(p) -> None:
    """--accept and --strict-xfail, beside --xfail."""
    p.add_argument("--accept", default=None, metavar="FILE",
                   help="TOML list of accepted deviations: your kernel's error bounds beyond the suite's tolerance, "
                        "with reasons (see docs/cli.md)")
    _strict_option(p)


def _summary_option(p) -> None:
    p.add_argument("--summary", default=None, metavar="FILE",
                   help="write the verdict, defects, findings and scoreboard as Markdown to FILE (default: appended "
                        "to $GITHUB_STEP_SUMMARY where that is set)")


COMMAND_MODULES = {"run": "run", "fuzz": "fuzz", "diff": "diff", "merge": "merge", "list": "listing",
                   "report": "report", "repro": "repro", "show": "show", "cache": "cache",
                   "matrix": "matrix", "bisect": "bisect", "issue": "issue"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other input error
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="conformance", description="Cross-framework conformance suite for RMS normalization.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a suite through adapters and write results and reports")
    run.add_argument("--suite", default="standard", help="smoke, standard, modes, exhaustive, or a .toml suite file")
    run.add_argument("--adapters", default=None, help="comma-separated built-in adapters, 'all' (every one but the "
                     "execution modes) or 'modes' (the execution modes and their twins); default: all, unless --adapter is given")
    run.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS", help="your own adapter class (repeatable)")
    run.add_argument("--function", choices=("torch", "jax", "numpy"), default=None,
                     help="the --adapter refs name a function f(x, weight, eps) -> y of this framework, not a class: "
                          "wrap it (docs/adapters.md)")
    run.add_argument("--cache-dir", type=_folder("give a folder, or --no-cache for none"), default=None, metavar="DIR",
                     help="persistent compilation caches (JAX, torch Inductor) shared by runs "
                          "(default: $XDG_CACHE_HOME/rmsnorm-conformance, else ~/.cache/rmsnorm-conformance; "
                          "an empty DIR is refused)")
    run.add_argument("--no-cache", action="store_true", help="compile everything afresh, keep nothing")
    run.add_argument("--device", choices=("cpu", "cuda", "gpu", "auto"), default="cpu",
                     help="where the torch- and JAX-family adapters run: cpu (default), cuda or gpu (the accelerator; "
                          "one line and exit 2 if there is none), auto (the accelerator where there is one)")
    run.add_argument("--case", action="append", default=[], metavar="PATTERN", help="only cases whose id matches this glob, or a case id (repeatable)")
    run.add_argument("--out", default="out/run", help="output folder (default: out/run)")
    run.add_argument("--jobs", type=JOBS, default=None,
                     help="tasks at once (default: this machine's CPU count; with --executor ray, the cluster's)")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local worker processes, or Ray tasks on a local Ray instance or a cluster (pip install "
                          "'rmsnorm-conformance[ray]')")
    run.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="with --executor ray: the cluster to connect to ('auto', ray://HOST:10001); default: start a "
                          "local Ray instance")
    run.add_argument("--isolate-adapters", action="store_true",
                     help="a worker process per adapter (default: adapters of one framework and environment share one)")
    run.add_argument("--share-with-builtins", action="store_true",
                     help="let your adapters share a worker process with the built-ins of their worker group "
                          "(default: never; an adapter that changes the process state restarts the worker either way)")
    run.add_argument("--timeout", type=POSITIVE_SECONDS, default=None, help="seconds one case may take before its worker is killed (default 120)")
    run.add_argument("--xfail", default=None, metavar="FILE", help="TOML list of known discrepancies (see docs/cli.md)")
    _known_options(run)
    _summary_option(run)
    run.add_argument("--shard", default=None, metavar="K/N", help="run only the K-th of N deterministic slices of the cases")
    again = run.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --out: only (adapter, case) pairs without results")
    again.add_argument("--overwrite", action="store_true", help="replace the run in --out (kept until this run has results)")
    _gating_options(run)
    _version_options(run)

    fz = sub.add_parser("fuzz", help="draw random cases with hypothesis, shrink failures to a minimal case")
    fz.add_argument("--adapters", default=None, help="comma-separated built-in adapters, or 'all'")
    fz.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS")
    fz.add_argument("--function", choices=("torch", "jax", "numpy"), default=None,
                    help="the --adapter refs name a function f(x, weight, eps) -> y of this framework (as for run)")
    fz.add_argument("--seed", type=SEED, default=0)
    fz.add_argument("--budget", type=BUDGET, default=None, help="examples per adapter (default 200)")
    fz.add_argument("--time", type=POSITIVE_SECONDS, default=None, help="seconds per adapter: fuzz in rounds until spent")
    fz.add_argument("--timeout", type=POSITIVE_SECONDS, default=None, help="seconds one example may take (default 120)")
    fz.add_argument("--out", default="out/fuzz")
    fz.add_argument("--overwrite", action="store_true", help="replace what --out holds")

    df = sub.add_parser("diff", help="compare results with a baseline; exit 1 on regressions")
    df.add_argument("baseline", help="baseline results.jsonl or its folder")
    df.add_argument("current", help="current results.jsonl or its folder")
    df.add_argument("--out", default=None, help="folder for diff.md and diff.json (default: beside CURRENT)")
    df.add_argument("--salvage", action="store_true", help="drop a truncated last line (a run killed mid-write)")
    df.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                    help="compare the baseline's adapter OLD with the current run's NEW (repeatable)")
    _gating_options(df)

    mg = sub.add_parser("merge", help="merge results of shards (or any runs) and render the reports")
    mg.add_argument("results", nargs="+", help="results.jsonl files or their folders")
    mg.add_argument("--out", required=True, help="folder for the merged results.jsonl and reports")
    mg.add_argument("--prefer", choices=("first", "last"), default=None,
                    help="which part wins where two disagree on one result (default: refuse)")
    mg.add_argument("--salvage", action="store_true", help="drop a truncated last line (a run killed mid-write)")
    mg.add_argument("--overwrite", action="store_true", help="replace the run --out holds")
    _gating_options(mg)
    _strict_option(mg)

    rp = sub.add_parser("repro", help="write inputs.npz and repro.py: one case on one adapter, without the suite")
    rp.add_argument("case", help="a case id, e.g. f32/4x32/ax-1/eps1e-06/normal/rand/s0")
    rp.add_argument("--adapter", required=True, metavar="NAME|MODULE:CLASS", help="a built-in adapter or your own")
    rp.add_argument("--out", default="out/repro", help="folder for inputs.npz and repro.py (default: out/repro)")
    rp.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    rp.add_argument("--timeout", type=POSITIVE_SECONDS, default=None, metavar="SECONDS",
                    help="seconds the case may take (build, call, the files) before the adapter's process is killed "
                         "(default 120, as `run`; loading the adapter has its own 300)")

    iss = sub.add_parser("issue", help="draft an upstream issue for a defect or finding of a run: a Markdown file with "
                         "a self-contained reproduction script")
    iss.add_argument("id", metavar="DEFECT_OR_FINDING_ID", help="a defect's id (keras/non-trailing-axes) or a finding's")
    iss.add_argument("--from", dest="from_run", required=True, metavar="RUN_DIR",
                     help="the run's folder or its results file (e.g. reports/baseline/standard.jsonl)")
    iss.add_argument("--out", required=True, metavar="FILE.md", help="the Markdown file to write")
    iss.add_argument("--overwrite", action="store_true", help="replace FILE.md if it exists")
    iss.add_argument("--timeout", type=POSITIVE_SECONDS, default=None, metavar="SECONDS",
                     help="seconds the case may take in the adapter's process (default 120, as `run`)")
    _gating_options(iss)

    sh = sub.add_parser("show", help="write a case's arrays and the float64 oracle's outputs to an .npz, print a summary")
    sh.add_argument("case", help="a case id, e.g. f32/4x32/ax-1/eps1e-06/normal/rand/s0")
    sh.add_argument("--out", default=None, metavar="FILE.npz",
                    help="the file to write, a path ending in .npz (default: the case id with / as _ and .npz, in the "
                         "current folder)")
    sh.add_argument("--overwrite", action="store_true",
                    help="replace an existing file or symbolic link at --out (the link itself, never its target)")
    sh.add_argument("--epsilon", type=_number(float, 0.0, 1e6), default=None,
                    help="the epsilon of the oracle for an `epsdefault` case (an implementation's default)")

    ls = sub.add_parser("list", help="list built-in adapters, their versions and devices, and the suites")
    ls.add_argument("--check", action="store_true", help="load each adapter in its own worker (slow: imports every "
                    "framework) instead of reading versions from package metadata")

    rep = sub.add_parser("report", help="render reports from a results.jsonl")
    rep.add_argument("results", help="results.jsonl or the folder holding it")
    rep.add_argument("--out", default=None, help="folder for the reports (default: beside the results)")
    rep.add_argument("--salvage", action="store_true", help="drop a truncated last line (a run killed mid-write)")
    rep.add_argument("--findings", default=None, metavar="FILE", help="also write the findings alone, as Markdown, to FILE")
    rep.add_argument("--accept", default=None, metavar="FILE",
                     help="judge the results again with this list of accepted deviations (replacing the run's)")
    _strict_option(rep)
    _summary_option(rep)
    _gating_options(rep)
    _regression_parsers(sub)

    ca = sub.add_parser("cache", help="the cache folder: remove overlays (version environments) to free disk")
    ca_sub = ca.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    pr = ca_sub.add_parser("prune", help="remove overlays, least recently used first, until under --max-size")
    pr.add_argument("--max-size", type=_size, default=None, metavar="SIZE",
                    help="what the overlays may keep, e.g. 500M, 2G (default: remove every overlay)")
    pr.add_argument("--cache-dir", type=_folder("give the cache folder"), default=None, metavar="DIR",
                    help="the cache folder (default: $XDG_CACHE_HOME/rmsnorm-conformance, else ~/.cache/rmsnorm-conformance)")
    return p


def _child_run_options(p, suite_help: str) -> None:
    """What `matrix` and `bisect` pass on to each `conformance run` they start."""
    p.add_argument("--suite", default="standard", help=suite_help)
    p.add_argument("--adapters", default=None, help="comma-separated built-in adapters (as for run)")
    p.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS", help="your own adapter class (repeatable)")
    p.add_argument("--jobs", type=JOBS, default=None, help="tasks at once in each run (default: the CPU count)")
    p.add_argument("--timeout", type=POSITIVE_SECONDS, default=None, help="seconds one case may take (default 120)")
    p.add_argument("--cache-dir", type=_folder("give a folder, or --no-cache for none"), default=None, metavar="DIR",
                   help="compilation caches and overlays (default as for run)")
    p.add_argument("--no-cache", action="store_true", help="no compilation cache; each run builds its overlay afresh")
    p.add_argument("--device", choices=("cpu", "cuda", "gpu", "auto"), default="cpu", help="as for run")
    p.add_argument("--xfail", default=None, metavar="FILE", help="known discrepancies (as for run)")
    _known_options(p)
    _gating_options(p)
    _version_options(p)


def _regression_parsers(sub) -> None:
    """`matrix` and `bisect`: runs across releases (conformance/commands/matrix.py, bisect.py; docs/versions.md)."""
    mx = sub.add_parser("matrix", help="one run per version set (--vary PKG=V1,V2), and the findings x versions")
    mx.add_argument("--vary", action="append", default=[], required=True, metavar="PKG=V1,V2,...",
                    help="a package and its versions (repeatable: the runs are the product of the lists)")
    mx.add_argument("--case", action="append", default=[], metavar="PATTERN", help="only cases whose id matches (repeatable)")
    _child_run_options(mx, "smoke, standard, modes, exhaustive, or a .toml suite file (default: standard)")
    mx.add_argument("--isolate-adapters", action="store_true", help="as for run")
    mx.add_argument("--out", default="out/matrix", help="folder of the runs and matrix.md/.html/.json (default: out/matrix)")
    again = mx.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the version sets not finished")
    again.add_argument("--overwrite", action="store_true", help="replace the matrix in --out")

    bi = sub.add_parser("bisect", help="the release of a package where the outcome of chosen results changes")
    bi.add_argument("--package", required=True, metavar="PKG", help="the package whose releases are searched")
    what = bi.add_mutually_exclusive_group(required=True)
    what.add_argument("--case", action="append", default=None, metavar="ID",
                      help="the case to bisect (an id, or a glob over the suite's ids; repeatable)")
    what.add_argument("--finding", default=None, metavar="ID", help="a finding of --from RUN_DIR: its results")
    bi.add_argument("--check", default=None, metavar="CHECK", help="only this check's results (a glob)")
    bi.add_argument("--from", dest="from_run", default=None, metavar="RUN_DIR", help="the run holding --finding")
    span = bi.add_argument_group("range (default: every stable release on the index)")
    span.add_argument("--versions", default=None, metavar="FIRST..LAST", help="the releases from FIRST to LAST")
    span.add_argument("--good", default=None, metavar="V", help="a version with the old outcome (with --bad)")
    span.add_argument("--bad", default=None, metavar="V", help="a version with the new outcome (with --good)")
    bi.add_argument("--include-nightly", action="store_true", help="pre-releases and the nightly too")
    _child_run_options(bi, "the suite a --case glob is taken from (default: standard)")
    bi.add_argument("--out", default="out/bisect", help="folder of bisect.json, bisect.md and the runs (default: out/bisect)")
    bi.add_argument("--overwrite", action="store_true", help="replace the bisection in --out")


def _size(text: str) -> int:
    """--max-size: 500M, 2G, a number of bytes."""
    from conformance.execution.overlays import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _version_options(p) -> None:
    """`run --with`, `--pip-arg`, `--python` (docs/versions.md)."""
    p.add_argument("--with", dest="with_", action="append", default=[], metavar="PKG==VERSION",
                   help="run the workers with this release (keras==3.9.0, keras==nightly, jax==0.6.0 with its jaxlib) "
                        "from an overlay built in the cache folder; repeatable (docs/versions.md)")
    p.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                   help="an argument for pip when it builds an overlay, repeatable: --pip-arg --index-url --pip-arg URL")
    p.add_argument("--python", default=None, metavar="PATH",
                   help="run the workers with this interpreter (this project importable there)")


def _join_pip_args(argv: list[str]) -> list[str]:
    """`--pip-arg --index-url` as `--pip-arg=--index-url`: argparse takes a value starting with
    '-' for an option."""
    out, it = [], iter(argv)
    for a in it:
        if a == "--":
            out += [a, *it]
            break
        if a == "--pip-arg":
            value = next(it, None)
            out.append(a if value is None else f"--pip-arg={value}")
        else:
            out.append(a)
    return out


class _Terminated(Exception):
    """SIGTERM outside a run's own handling (conformance/execution/interrupt.py)."""


def _terminate(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    become_subreaper()  # what an adapter starts stays ours to find and stop (conformance/execution/procs.py)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args = _parser().parse_args(_join_pip_args(sys.argv[1:] if argv is None else list(argv)))
        import importlib

        # One module per command, imported only when it runs (`list` must stay fast).
        module = importlib.import_module(f"conformance.commands.{COMMAND_MODULES[args.command]}")
        return getattr(module, f"cmd_{args.command}")(args)
    except UsageError as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a user's path we could not read or write, found late (a full disk)
        print(f"conformance: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, _Terminated) as exc:
        print("conformance: interrupted; files already written are kept, none is half written", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        reap_strays(set())  # e.g. what a user module started while its class was being read


if __name__ == "__main__":
    sys.exit(main())
