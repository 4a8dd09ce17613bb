"""Version environments ("overlays"): other releases of a framework for a run's workers, without
touching the interpreter's own environment (docs/versions.md).

An overlay is a folder holding exactly the requested distributions (`keras==3.9.0`) plus the
requirements of theirs that the base interpreter lacks or has at an incompatible version, never
replacing the base's torch or numpy unless they are asked for.  A worker puts it first on its
`sys.path` (the first PYTHONPATH entry: adapter_refs.with_overlay), so keras (say) is found in the
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

The folder is built by pip_build.py; versions.py orders versions and compares names.
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
# Some re-exported (MAX_ROUNDS, PROTECTED, inherited_path, fallback_version_key...): this module is
# where callers and tests find every name of the overlays, as overlays.<name>.
from conformance.execution.pip_build import (MAX_ROUNDS, PIP_ENV, PROTECTED, TMP_PREFIX, Base, _build, _dists_on,
                                             _index_args, _pip, _pip_failure, base, inherited_path)
from conformance.execution.versions import (InvalidVersion, _is_pre, _Version, canonical, fallback_version_key,
                                            version_key)

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
MARKER = ".overlay.json"


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


# ---------------------------------------------------------------- the cache

SITE_FOLDERS = ("site-packages", "dist-packages")


def key(requirements: tuple[Requirement, ...], pip_args: tuple[str, ...], b: Base) -> str:
    """The overlay's folder name: a digest of everything that decides its contents."""
    import hashlib

    # The base's installed distributions (its site folders), not what a process happens to have on
    # sys.path besides (a test's folders, the current one): one run and the next get one key.
    installed = _dists_on([p for p in b.path if os.path.basename(os.path.normpath(p)) in SITE_FOLDERS])
    what = {"requirements": [str(r) for r in requirements], "pip_args": list(pip_args), "python": b.python,
            "python_version": b.version, "base": sorted(installed.items())}
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
