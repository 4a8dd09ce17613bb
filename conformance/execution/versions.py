"""Distribution names and versions as the overlays compare them (conformance/execution/overlays.py):
PEP 503 names, PEP 440 order and pre-releases.  `packaging` (or pip's vendored copy) decides where
it is importable; `fallback_version_key` orders versions without it, so that listing an index's
releases does not depend on what the interpreter happens to have.
"""
from __future__ import annotations

import re

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


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()



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
