"""Version environments ("overlays"): other releases of a framework for a run's workers, without
touching the interpreter's own environment (docs/versions.md).

An overlay is a folder holding exactly the requested distributions (`keras==3.9.0`) plus the
requirements of theirs that the base interpreter lacks or has at an incompatible version, never
replacing the base's torch or numpy unless they are asked for.  A worker puts it first on its
`sys.path` (the first PYTHONPATH entry: adapter_refs.with_overlay), so `import keras` finds the
overlay's and everything else the base's.

Overlays live in CACHE/overlays/<key>/, the key a digest of the package set (nightlies pinned to
the dev release they resolved to), the pip arguments, the base interpreter (its path and version)
and the distributions it has.  A build runs under an exclusive lock (fcntl.flock on
CACHE/overlays/<key>.lock) in a temporary folder of CACHE/overlays/, renamed into place once its
marker (.overlay.json) is written last: a concurrent build of the same overlay waits for the first
and reuses it, an interrupted one leaves no overlay (only a `.tmp-` folder, removed by the next
build of that key or by `prune`).  A run holds the lock shared while it uses an overlay (`hold`),
so `prune` skips it.  The marker's modification time is the overlay's last use (least recently
used first for `prune`).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import UsageError

try:  # packaging is a dependency of this project; pip vendors it too
    from packaging.markers import default_environment as _default_environment
    from packaging.requirements import InvalidRequirement, Requirement as _PackagingRequirement
    from packaging.version import InvalidVersion, Version as _Version
except ImportError:  # pragma: no cover: an environment without packaging
    try:
        from pip._vendor.packaging.markers import default_environment as _default_environment
        from pip._vendor.packaging.requirements import InvalidRequirement, Requirement as _PackagingRequirement
        from pip._vendor.packaging.version import InvalidVersion, Version as _Version
    except ImportError:
        _Version = _PackagingRequirement = _default_environment = None
        InvalidVersion = InvalidRequirement = ValueError

NIGHTLY = {"keras": "keras-nightly", "tensorflow": "tf-nightly", "tensorflow-cpu": "tf-nightly"}
# What a user names -> the distribution installed (tensorflow's CPU build, as the base has).
ALIASES = {"tensorflow": "tensorflow-cpu"}
# The distributions the built-in adapters depend on, which docs/versions.md lists as tried.  Any
# other distribution the index has can vary too (a kernel package of the user's, from its own
# index or --find-links); one the index lacks is refused when the overlay is built.  torch's PyPI
# wheels are multi-GB CUDA builds: it varies only from another index (--pip-arg --index-url ...).
KNOWN = ("keras", "keras-nightly", "jax", "jaxlib", "flax", "equinox", "onnx", "onnxruntime", "onnxscript",
            "transformers", "tensorflow-cpu", "tf-nightly", "numpy", "torch")
NEEDS_INDEX = {"torch": "torch cannot vary from PyPI (its wheels there are multi-GB CUDA builds): give a CPU index, "
                        "e.g. --pip-arg --index-url --pip-arg https://download.pytorch.org/whl/cpu"}
INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f")
# Packages that vary together: jax==V brings jaxlib==V (unless jaxlib is given too).
TOGETHER = {"jax": ("jaxlib",)}
# Requirements on these are never satisfied from the overlay unless asked for: the base's stay.
PROTECTED = ("torch", "numpy")
MARKER = ".overlay.json"
TMP_PREFIX = ".tmp-"
MAX_ROUNDS = 8
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off"}
# pip index options that take a value, for `pip index versions` (which refuses install options).
_INDEX_VALUE_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--trusted-host", "--proxy",
                        "--cert", "--client-cert", "--timeout", "--retries", "--keyring-provider")
_INDEX_FLAGS = ("--no-index", "--isolated")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    """One distribution at one version: `keras==3.9.0`, or `keras-nightly==nightly` (the newest
    dev release, pinned when the overlay is built)."""

    package: str  # the distribution, canonical: keras, jaxlib, keras-nightly, tensorflow-cpu
    version: str  # a PEP 440 version, or "nightly"

    def __str__(self) -> str:
        return f"{self.package}=={self.version}"

    @classmethod
    def parse(cls, text: str) -> "Requirement":
        """`PKG==VERSION` or `PKG==nightly` (keras, tensorflow); UsageError with how to fix it."""
        m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s=<>!~;,]+)\s*", text or "")
        if not m:
            raise UsageError(f"--with {text!r}: give PKG==VERSION (e.g. keras==3.9.0) or PKG==nightly "
                             f"(keras, tensorflow); an exact version, no other operator")
        name, version = canonical(m.group(1)), m.group(2)
        if version.lower() == "nightly":
            if name in NIGHTLY.values():
                return cls(name, "nightly")
            if name not in NIGHTLY:
                raise UsageError(f"--with {text!r}: nightlies are on PyPI for {', '.join(sorted(NIGHTLY)[:2])} only "
                                 f"(keras-nightly, tf-nightly); give a version of {name}")
            return cls(NIGHTLY[name], "nightly")
        name = ALIASES.get(name, name)
        if _Version is not None:
            try:
                version = str(_Version(version))
            except InvalidVersion:
                raise UsageError(f"--with {text!r}: {version!r} is not a version (PEP 440), e.g. {name}==3.9.0; "
                                 f"`conformance run --with {name}==nightly` where there are nightlies") from None
        elif not re.fullmatch(r"v?[0-9][0-9A-Za-z.!+_-]*", version):
            raise UsageError(f"--with {text!r}: {version!r} is not a version, e.g. {name}==3.9.0")
        return cls(name, version)


def expand(requirements: tuple[Requirement, ...]) -> tuple[Requirement, ...]:
    """The requirements with the packages that vary together added (jax==V brings jaxlib==V),
    sorted; UsageError for one package at two versions."""
    chosen: dict[str, Requirement] = {}
    for r in requirements:
        if r.package in chosen and chosen[r.package] != r:
            raise UsageError(f"--with {chosen[r.package]} and --with {r}: one version per package")
        chosen[r.package] = r
    for r in list(chosen.values()):
        for other in TOGETHER.get(r.package, ()):
            if other not in chosen and r.version != "nightly":
                chosen[other] = Requirement(other, r.version)
    return tuple(sorted(chosen.values(), key=lambda r: r.package))


def check(requirements: tuple[Requirement, ...], pip_args: tuple[str, ...] = ()) -> tuple[Requirement, ...]:
    """The expanded requirements, refusing what cannot vary with these pip arguments (one line)."""
    reqs = expand(tuple(requirements))
    other_index = any(a.split("=", 1)[0] in INDEX_OPTIONS or (a[:2] in ("-i", "-f") and len(a) > 2) for a in pip_args)
    for r in reqs:
        if r.package in NEEDS_INDEX and not other_index:
            raise UsageError(f"--with {r}: {NEEDS_INDEX[r.package]}")
    return reqs


# ---------------------------------------------------------------- versions

_PEP440 = re.compile(r"""v?(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?""", re.VERBOSE | re.IGNORECASE)
_PRE = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
_INF = float("inf")


def fallback_version_key(text: str) -> tuple:
    """PEP 440 ordering without `packaging` (epoch, release, pre, post, dev, local); text that is
    no version sorts first, by its text."""
    m = _PEP440.fullmatch(text.strip())
    if not m:
        return (-1, (), (), (), (), (), text)
    release = [int(p) for p in m["release"].split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    pre = (_PRE[m["pre_l"].lower()], int(m["pre_n"] or 0)) if m["pre_l"] else None
    post_n = m["post_n1"] or m["post_n2"]
    post = int(post_n or 0) if (m["post_l"] or m["post_n1"]) else None
    dev = int(m["dev_n"] or 0) if m["dev_l"] else None
    # X.devN < X.aN < X.rcN < X < X.postN; a dev release sorts before its non-dev twin.
    pre_key = (-_INF, 0) if pre is None and post is None and dev is not None else (_INF, 0) if pre is None else pre
    post_key = (-_INF,) if post is None else (post,)
    dev_key = (_INF,) if dev is None else (dev,)
    local = tuple((0, int(p), "") if p.isdigit() else (-1, 0, p.lower())
                  for p in re.split(r"[-_.]", m["local"])) if m["local"] else ((-2, 0, ""),)
    return (int(m["epoch"] or 0), tuple(release), pre_key, post_key, dev_key, local, "")


def version_key(text: str):
    """The sort key of a version: packaging's where importable, else `fallback_version_key`."""
    if _Version is not None:
        try:
            return (1, _Version(text))
        except InvalidVersion:
            return (0, text)
    return fallback_version_key(text)


def _is_pre(text: str) -> bool:
    if _Version is not None:
        try:
            return _Version(text).is_prerelease
        except InvalidVersion:
            return True
    m = _PEP440.fullmatch(text.strip())
    return not m or bool(m["pre_l"] or m["dev_l"])


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


def available_versions(package: str, pip_args: tuple[str, ...] = (), include_pre: bool = False) -> list[str]:
    """The releases of `package` on the index, oldest first (PEP 440
    order); pre-releases only with include_pre, except for the nightly packages, whose releases
    are all dev releases.  UsageError (one line) for an unknown package or an unreachable index."""
    name = ALIASES.get(canonical(package), canonical(package))
    nightly = name in NIGHTLY.values()
    argv = [*_pip(sys.executable), "index", "versions", name, *(["--pre"] if include_pre or nightly else []),
            *_index_args(tuple(pip_args))]
    p = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **PIP_ENV}, stdin=subprocess.DEVNULL)
    m = re.search(r"^Available versions:\s*(.*)$", p.stdout or "", re.M)
    if p.returncode != 0 or not m:
        raise _pip_failure(f"the releases of {name}", p, name)
    versions = [v.strip() for v in m.group(1).split(",") if v.strip()]
    if not (include_pre or nightly):
        versions = [v for v in versions if not _is_pre(v)]
    return sorted(set(versions), key=version_key)


def pin(requirements: tuple[Requirement, ...], pip_args: tuple[str, ...] = ()) -> tuple[Requirement, ...]:
    """The requirements with each `nightly` replaced by the newest dev release on the index."""
    out = []
    for r in requirements:
        if r.version == "nightly":
            versions = available_versions(r.package, pip_args, include_pre=True)
            if not versions:
                raise UsageError(f"--with {r}: the index has no release of {r.package}")
            r = Requirement(r.package, versions[-1])
        out.append(r)
    return tuple(out)


# ---------------------------------------------------------------- the base interpreter

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


# ---------------------------------------------------------------- the cache

def key(requirements: tuple[Requirement, ...], pip_args: tuple[str, ...], b: Base) -> str:
    """The overlay's folder name: a digest of everything that decides its contents."""
    import hashlib

    what = {"requirements": [str(r) for r in requirements], "pip_args": list(pip_args), "python": b.python,
            "python_version": b.version, "base": sorted(b.dists.items())}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def root(cache_dir: Path) -> Path:
    return Path(cache_dir) / "overlays"


@contextlib.contextmanager
def _locked(lock: Path, mode: int, blocking: bool = True, note: str | None = None):
    """`lock` held with flock `mode`; yields False (held by no one) where not blocking and busy."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                os.close(fd)
                yield False
                return
            if note:
                print(note, file=sys.stderr, flush=True)
                note = None
            fcntl.flock(fd, mode)
        try:  # prune unlinks the lock files it holds: a lock on a file no longer at `lock` holds nothing
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield True
    finally:
        os.close(fd)  # releases the lock


def read_marker(folder: Path) -> dict | None:
    """The marker of a complete overlay folder, or None."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("key") != Path(folder).name:
        return None
    installed = marker.get("installed")
    if not isinstance(installed, dict):
        return None
    present = _dists_on([str(folder)])
    if any(present.get(canonical(n)) != v for n, v in installed.items()):
        return None  # a distribution went missing: not the overlay that was built
    return marker


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


def overlay(requirements: tuple[Requirement, ...], cache_dir: Path, pip_args: tuple[str, ...] = (),
            python: str = sys.executable) -> Path:
    """The overlay folder of `requirements` for workers run by `python`: reused where complete,
    else built (see the module's docstring).  UsageError (one line) for a package that cannot
    vary, a version the index does not have, an index that cannot be reached."""
    pip_args = tuple(pip_args)
    reqs = pin(check(tuple(requirements), pip_args), pip_args)
    b = base(python)
    k = key(reqs, pip_args, b)
    top = root(cache_dir)
    top.mkdir(parents=True, exist_ok=True)
    final, lock = top / k, top / f"{k}.lock"
    what = f"the overlay {' '.join(map(str, reqs))}"
    with _locked(lock, fcntl.LOCK_SH, note=f"waiting for another build of {what} ({final})"):
        if read_marker(final) is not None:
            os.utime(final / MARKER)  # its last use, for prune
            return final
    with _locked(lock, fcntl.LOCK_EX, note=f"waiting for another build of {what} ({final})"):
        if read_marker(final) is not None:  # another process built it while this one waited
            os.utime(final / MARKER)
            return final
        for stale in [final, *top.glob(f"{TMP_PREFIX}{k}-*")]:  # an interrupted build's, or a folder without marker
            if stale.exists():
                shutil.rmtree(stale, ignore_errors=True)
        start = time.monotonic()
        tmp = Path(tempfile.mkdtemp(dir=top, prefix=f"{TMP_PREFIX}{k}-"))
        try:
            built = _build(tmp, reqs, pip_args, b, what)
            marker = {"key": k, "requirements": [str(r) for r in reqs], "pip_args": list(pip_args), "python": b.python,
                      "python_version": b.version, "seconds": round(time.monotonic() - start, 2), **built}
            with open(tmp / MARKER, "w") as f:
                json.dump(marker, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


@contextlib.contextmanager
def hold(folder: Path):
    """The overlay `folder` kept from `prune` while a run uses it (a shared lock); UsageError if
    it went away before the lock was taken."""
    folder = Path(folder)
    with _locked(folder.parent / f"{folder.name}.lock", fcntl.LOCK_SH):
        if read_marker(folder) is None:
            raise UsageError(f"the overlay {folder} was removed (conformance cache prune?) as the run started; "
                             "run again to build it")
        yield folder


def describe(folder: Path) -> str:
    """One line: what the overlay holds ("keras 3.9.0 (+ dm-tree 0.1.9)")."""
    marker = read_marker(folder) or {}
    installed = marker.get("installed", {})
    asked = [canonical(r.partition("==")[0]) for r in marker.get("requirements", [])]
    main = ", ".join(f"{n} {installed.get(n, '?')}" for n in asked)
    extra = ", ".join(f"{n} {v}" for n, v in sorted(installed.items()) if n not in asked)
    return main + (f" (+ {extra})" if extra else "")


# ---------------------------------------------------------------- pruning

def size_of(path: Path) -> int:
    """Bytes on disk of a tree (files' sizes; links not followed)."""
    total = 0
    for top, dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(top, f)).st_size
            except OSError:
                pass
    return total


def prune(cache_dir: Path, max_size: int | None) -> list[Path]:
    """Remove overlays, least recently used first, until those left take at most `max_size`
    bytes (None: remove all); the leftovers of interrupted builds go first.  An overlay being
    built or used by a run is skipped.  Returns the removed folders."""
    top = root(cache_dir)
    if not top.is_dir():
        return []
    entries = []  # (order, last used, path, size)
    for p in top.iterdir():
        if not p.is_dir() or p.is_symlink():
            continue
        if p.name.startswith(TMP_PREFIX):
            k = p.name[len(TMP_PREFIX):].split("-")[0]
            entries.append((0, 0.0, p, k))
        else:
            marker = read_marker(p)
            used = (p / MARKER).stat().st_mtime if marker else 0.0
            entries.append((1 if marker else 0, used, p, p.name))
    entries.sort(key=lambda e: (e[0], e[1]))
    sizes = {p: size_of(p) for _, _, p, _ in entries}
    total = sum(sizes[p] for order, _, p, _ in entries if order == 1)
    removed = []
    for lock in top.glob("*.lock"):  # the locks of builds that failed: nothing to keep them for
        k = lock.name[: -len(".lock")]
        if not (top / k).exists() and not any(top.glob(f"{TMP_PREFIX}{k}-*")):
            with _locked(lock, fcntl.LOCK_EX, blocking=False) as free:
                if free and not (top / k).exists():
                    lock.unlink(missing_ok=True)
    for order, _, p, k in entries:
        if order == 1 and max_size is not None and total <= max_size:
            continue
        with _locked(top / f"{k}.lock", fcntl.LOCK_EX, blocking=False) as free:
            if not free:
                continue  # being built, or used by a run
            gone = p
            if order == 1:  # out of sight at once, then deleted: never a half overlay under its key
                gone = top / f"{TMP_PREFIX}{k}-pruned-{os.getpid()}"
                try:
                    os.rename(p, gone)
                except OSError:
                    continue
            shutil.rmtree(gone, ignore_errors=True)
            if not (top / k).exists():
                (top / f"{k}.lock").unlink(missing_ok=True)  # while held: see _locked
        if order == 1:
            total -= sizes[p]
        removed.append(p)
    return removed


def parse_size(text: str) -> int:
    """`500M`, `2G`, `1.5G`, `0`, `123456` (bytes; K, M, G, T are powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)i?B?\s*", text or "", re.I)
    if not m:
        raise ValueError(f"{text!r} is not a size: give e.g. 500M, 2G or a number of bytes")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))
