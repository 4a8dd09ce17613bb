"""Building an overlay's folder with pip (conformance/execution/overlays.py holds the cache around
it): pip run for the base interpreter, its failures as one line, the base's own distributions,
and the rounds of `pip install --no-deps --target` that add each Requires-Dist neither the
overlay nor the base satisfies.  `--no-deps` because pip with `--target` would otherwise install
every requirement into the overlay, what the base already has (its torch, its numpy) too.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.errors import UsageError
from conformance.execution.versions import (InvalidRequirement, _PackagingRequirement, _default_environment,
                                            _is_pre, canonical, version_key)

if TYPE_CHECKING:  # annotations only: overlays imports this module
    from conformance.execution.overlays import Requirement

# Requirements on these are never satisfied from the overlay unless asked for: the base's stay.
PROTECTED = ("torch", "numpy")
# The prefix of a build's temporary folders (its own and those of its rounds); prune removes them.
TMP_PREFIX = ".tmp-"
MAX_ROUNDS = 8
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off"}
# pip index options that take a value, for `pip index versions` (which refuses install options).
_INDEX_VALUE_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--trusted-host", "--proxy",
                        "--cert", "--client-cert", "--timeout", "--retries", "--keyring-provider")
_INDEX_FLAGS = ("--no-index", "--isolated")


def _index_args(pip_args: tuple[str, ...]) -> list[str]:
    """The pip arguments that say where and how to reach the index (what `pip index` accepts)."""
    out, args = [], list(pip_args)
    while args:
        a = args.pop(0)
        if a in _INDEX_FLAGS:
            out.append(a)
        elif a in _INDEX_VALUE_OPTIONS and args:
            out += [a, args.pop(0)]
        elif any(a.startswith(o + "=") for o in _INDEX_VALUE_OPTIONS if o.startswith("--")):
            out.append(a)
    return out


def _pip(python: str) -> list[str]:
    """pip, installing for `python` (this interpreter's pip, or it pointed at another one)."""
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        return [sys.executable, "-m", "pip"]
    return [sys.executable, "-m", "pip", "--python", python]


_UNREACHABLE = re.compile(r"NewConnectionError|ConnectTimeout|ConnectionError|Max retries exceeded|Failed to establish|"
                          r"Name or service not known|Temporary failure in name resolution|ProxyError|SSLError|"
                          r"Network is unreachable|Connection refused|timed out|Could not fetch URL", re.I)


def _pip_failure(what: str, p: subprocess.CompletedProcess, package: str | None = None) -> UsageError:
    """pip's failure as one line: an index that cannot be reached, a version it does not have, or
    pip's own last error."""
    from conformance.execution.procs import describe_exit

    text = (p.stdout or "") + "\n" + (p.stderr or "")
    if p.returncode < 0:
        return UsageError(f"{what}: pip was stopped ({describe_exit(p.returncode)}); nothing was kept")
    missing = re.search(r"Could not find a version that satisfies the requirement (\S+) \(from versions: ([^)]*)\)", text)
    none_found = re.search(r"No matching distribution found for (\S+)", text)
    if (missing or none_found or "ERROR:" not in text) and _UNREACHABLE.search(text):
        cause = _UNREACHABLE.search(text).group(0)
        return UsageError(f"{what}: a package index could not be reached ({cause}); check the network or the "
                          f"index given with --pip-arg")
    if missing:
        req, have = missing.group(1), [v.strip() for v in missing.group(2).split(",") if v.strip() and v.strip() != "none"]
        finals = [v for v in have if not _is_pre(v)] or have
        listed = (f"it has {len(have)} release(s), the newest {', '.join(sorted(finals, key=version_key)[-5:])}"
                  if have else "it has no release of it, or could not be reached")
        name = canonical(re.split(r"[=<>!~;\[ ]", req)[0])
        return UsageError(f"{what}: {req} is not on the package index ({listed}); pick a release it has "
                          f"(`pip index versions {name}` lists them)")
    if none_found:
        return UsageError(f"{what}: no distribution of {none_found.group(1)} on the package index fits this "
                          f"interpreter; pick another version")
    errors = [line.strip() for line in text.splitlines() if line.strip().startswith("ERROR:")]
    last = errors[-1] if errors else (text.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
    return UsageError(f"{what}: pip failed: {last[:300]}")



@dataclass(frozen=True)
class Base:
    """What a worker started with `python` sees before any overlay."""

    python: str
    version: str  # sys.version
    path: tuple[str, ...]  # its sys.path (as a worker's: the current folder first)
    markers: dict  # PEP 508 marker environment
    dists: dict  # canonical name -> version of the distributions on `path` (the first of each)


_PROBE = ("import json, os, platform, sys\n"
          "def v(info):\n"
          "    s = '%d.%d.%d' % info[:3]\n"
          "    return s if info.releaselevel == 'final' else s + info.releaselevel[0] + str(info.serial)\n"
          "m = {'implementation_name': sys.implementation.name,\n"
          "     'implementation_version': v(sys.implementation.version), 'os_name': os.name,\n"
          "     'platform_machine': platform.machine(), 'platform_release': platform.release(),\n"
          "     'platform_system': platform.system(), 'platform_version': platform.version(),\n"
          "     'python_full_version': platform.python_version(),\n"
          "     'platform_python_implementation': platform.python_implementation(),\n"
          "     'python_version': '.'.join(platform.python_version_tuple()[:2]), 'sys_platform': sys.platform}\n"
          "print(json.dumps({'version': sys.version, 'path': sys.path, 'markers': m}))\n")


def inherited_path(python: str) -> list[str]:
    """What a worker run by `python` inherits on its PYTHONPATH after the overlay and the current
    folder: this process's sys.path for this interpreter, the user's PYTHONPATH for another."""
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        return [p for p in sys.path if p]
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def _dists_on(path) -> dict[str, str]:
    """{canonical name: version} of the distributions on `path`, the first of each name, from
    the names of their .dist-info folders (no metadata to read; an .egg-info's is read)."""
    dists: dict[str, str] = {}
    for entry in path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for n in names:
            if n.endswith(".dist-info"):
                stem = n[: -len(".dist-info")]
                name, _, version = stem.rpartition("-")
                if name and version:
                    dists.setdefault(canonical(name), version)
            elif n.endswith(".egg-info"):
                meta = Path(entry, n, "PKG-INFO") if Path(entry, n).is_dir() else Path(entry, n)
                try:
                    head = meta.read_text(errors="replace")[:4000]
                except OSError:
                    continue
                name = re.search(r"^Name:\s*(\S+)", head, re.M)
                version = re.search(r"^Version:\s*(\S+)", head, re.M)
                if name and version:
                    dists.setdefault(canonical(name.group(1)), version.group(1))
    return dists


def base(python: str = sys.executable) -> Base:
    """The base interpreter as a worker sees it (UsageError if it does not run)."""
    python = os.path.abspath(python)
    if python == os.path.abspath(sys.executable):
        path = [os.getcwd(), *inherited_path(python)]
        markers = dict(_default_environment()) if _default_environment else {}
        return Base(python, sys.version, tuple(path), markers, _dists_on(path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *inherited_path(python)])}
    try:
        p = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=120,
                           stdin=subprocess.DEVNULL)
        info = json.loads(p.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        raise UsageError(f"--python {python}: it does not run as a Python interpreter ({type(exc).__name__})") from None
    return Base(python, info["version"], tuple(info["path"]), info["markers"], _dists_on(info["path"]))



def _merge(src: Path, dst: Path) -> None:
    """Move the tree `src` into `dst`, merging folders (namespace packages such as `google/` may
    come from several rounds); a file already in `dst` is kept."""
    for entry in os.listdir(src):
        s, d = src / entry, dst / entry
        if not d.exists():
            os.rename(s, d)
        elif s.is_dir() and d.is_dir() and not s.is_symlink():
            _merge(s, d)
    shutil.rmtree(src, ignore_errors=True)


def _install(targets: list[str], folder: Path, pip_args: tuple[str, ...], python: str, what: str) -> None:
    """`targets` installed into `folder` alone (--no-deps: the rounds of `_build` add what they need)."""
    argv = [*_pip(python), "install", "--no-deps", "--target", str(folder), "--no-warn-script-location",
            "--prefer-binary", "--progress-bar", "off", *pip_args, *targets]
    p = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **PIP_ENV}, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise _pip_failure(what, p)


def _unmet(folder: Path, b: Base, requested: set[str]) -> tuple[list[str], list[str]]:
    """(what to install next, notes): each requirement of the overlay's distributions that
    neither the overlay nor the base satisfies, as a pip requirement; a protected package of the
    base (torch, numpy) or one that was asked for is kept, with a note."""
    from importlib import metadata

    if _PackagingRequirement is None:
        raise UsageError("building an overlay needs the `packaging` package (or pip's) in this interpreter")
    here = _dists_on([str(folder)])
    env = {**b.markers, "extra": ""}
    needed: dict[str, list[str]] = {}
    notes: list[str] = []
    for dist in metadata.distributions(path=[str(folder)]):
        owner = dist.metadata["Name"] or "?"
        for text in dist.requires or []:
            try:
                req = _PackagingRequirement(text)
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
            except (InvalidRequirement, ValueError, KeyError):
                continue
            name = canonical(req.name)
            have = here.get(name)
            if have is not None:
                if not req.specifier.contains(have, prereleases=True):
                    notes.append(f"{owner} requires {req.name}{req.specifier}; {name} {have} "
                                 f"{'was asked for' if name in requested else 'is in the overlay'}")
                continue
            have = b.dists.get(name)
            if have is not None and req.specifier.contains(have, prereleases=True):
                continue
            if have is not None and name in PROTECTED:
                notes.append(f"{owner} requires {req.name}{req.specifier}; the base's {name} {have} is kept "
                             f"(--with {name}==VERSION to replace it)")
                continue
            needed.setdefault(name, []).append(str(req.specifier))
    return [n + ",".join(s for s in specs if s) for n, specs in sorted(needed.items())], notes


def _build(folder: Path, reqs: tuple[Requirement, ...], pip_args: tuple[str, ...], b: Base, what: str) -> dict:
    """Install `reqs` into `folder`, then, round after round, the requirements of what is there that
    neither the overlay nor the base satisfies (`_unmet`), until none is left; the marker's fields
    (installed, added, notes).  UsageError where they do not settle after MAX_ROUNDS."""
    requested = {r.package for r in reqs}
    todo, notes, added = [str(r) for r in reqs], [], []
    for round_no in range(MAX_ROUNDS):
        part = Path(tempfile.mkdtemp(dir=folder, prefix=f"{TMP_PREFIX}round{round_no}-"))
        _install(todo, part, pip_args, b.python, what)
        _merge(part, folder)
        if round_no:
            added += todo
        todo, notes = _unmet(folder, b, requested)
        if not todo:
            return {"installed": _dists_on([str(folder)]), "added": added, "notes": notes}
    raise UsageError(f"{what}: the requirements did not settle after {MAX_ROUNDS} rounds (still missing: "
                     f"{', '.join(todo)[:200]}); give them with --with or use another version")

