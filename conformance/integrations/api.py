"""`conformance.check(adapter, suite="smoke", **options)`: a run from Python, for a user's own tests.

The run goes through `conformance run` itself (the same argument parsing, workers, gating and
reports), so its verdict, and `run_suite`'s exit code, are those the command line gives.
The pytest plugin (pytest_plugin.py) runs its items through `run_suite` too.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import UsageError


@dataclass
class Outcome:
    exit_code: int  # what `conformance run` exits with on the same inputs
    results: object  # reports.results.Results under the run's gating
    out: Path  # the folder with results.jsonl and the reports
    printed: str  # what `run` printed (the verdict, the gating findings, the files written)


def run_argv(adapters, suite: str = "smoke", out: str | Path = "out/run", *, cases=(), fail_on=None,
             min_coverage: float | None = None, xfail=None, device: str | None = None, cache_dir=None,
             no_cache: bool = False, jobs: int | None = None, timeout: float | None = None,
             function: str | None = None, accept=None, strict_xfail: bool = False) -> list[str]:
    """The `conformance run` command line of these options."""
    from conformance.adapters import BUILTIN

    refs = [adapters] if isinstance(adapters, str) else list(adapters)
    builtins = [r for r in refs if r in BUILTIN]
    argv = ["run", "--suite", str(suite), "--out", str(out), "--overwrite"]
    argv += ["--adapters", ",".join(builtins)] if builtins else []
    argv += [a for r in refs if r not in BUILTIN for a in ("--adapter", r)]
    argv += [a for c in cases for a in ("--case", c)]
    if fail_on is not None:
        argv += ["--fail-on", fail_on if isinstance(fail_on, str) else ",".join(sorted(fail_on))]
    if min_coverage:
        argv += ["--min-coverage", str(min_coverage)]
    if xfail:
        argv += ["--xfail", str(xfail)]
    if accept:
        argv += ["--accept", str(accept)]
    if strict_xfail:
        argv += ["--strict-xfail"]
    if device:
        argv += ["--device", device]
    if cache_dir:
        argv += ["--cache-dir", str(cache_dir)]
    if no_cache:
        argv += ["--no-cache"]
    if jobs:
        argv += ["--jobs", str(jobs)]
    if timeout:
        argv += ["--timeout", str(timeout)]
    if function:
        argv += ["--function", function]
    return argv


def run_suite(argv: list[str], *, quiet: bool = False) -> Outcome:
    """`conformance run ARGV` in this process; UsageError for an input `run` would exit 2 on."""
    from conformance.cli import _parser
    from conformance.commands.report import gate
    from conformance.commands.run import cmd_run
    from conformance.reports.results import load_results

    args = _parser().parse_args(argv)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cmd_run(args)
    if not quiet:
        print(printed.getvalue(), end="")
    out = Path(args.out)
    return Outcome(code, load_results(out / "results.jsonl", gate=gate(args)), out, printed.getvalue())


def check(adapter, suite: str = "smoke", **options):
    """Run `suite` through `adapter` (a built-in name, `package.module:Class`, or a list of them)
    as `conformance run` does, into a temporary folder, and return the Verdict of its reports:
    `.failed` (what the exit code of `run` says, less an interrupted run), `.gating` and `.other`
    (the findings, each a dict with its `id`, `class`, `title`, `detail`, `adapters`, `rerun`),
    `.uncovered` (adapter -> why its coverage fails the run).

    Options are those of `run`: cases (case id globs), fail_on ("all" or classes), min_coverage,
    xfail (a file), accept (a file of accepted deviations), strict_xfail, device, cache_dir, no_cache, jobs, timeout, function ("torch", "jax",
    "numpy": the adapter is a plain function, docs/adapters.md), and out (keep the folder there).
    An input `run` refuses (exit 2) raises conformance.errors.UsageError."""
    keep = options.pop("out", None)
    with contextlib.ExitStack() as stack:
        out = Path(keep) if keep else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conformance-check-"))) / "run"
        outcome = run_suite(run_argv(adapter, suite, out, **options), quiet=True)
        return outcome.results.judgement


__all__ = ["check", "run_suite", "run_argv", "Outcome", "UsageError"]
