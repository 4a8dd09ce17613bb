"""Known upstream issues for the suite's findings: `reports/upstream.toml`, read strictly.

Each `[[issue]]` table names one upstream issue or pull request and what it matches:

- `repository` ("owner/name"), `number` (int), `title`, `state` ("open" | "closed"; a merged
  pull request is "closed"), `url` (`https://github.com/{repository}/issues/{number}` or
  `.../pull/{number}`) and `note` (one sentence: why it matches, what the maintainers said);
- `adapters`: a glob over adapter names, or a list of them (`"keras-*"`, `["equinox", "flax-*"]`);
- `finding`: a glob over finding ids, or a list of them (`"*/subnormals-flushed"`); match on
  the stable parts of an id (family and diagnosis), not on a message;
- optional `case`: a glob over case ids, or a list of them: then some result of the finding,
  on an adapter that matches, must be on such a case;
- optional `versions`: a PEP 440 specifier over the package that owns the behaviour,
  `"keras>=3.0,<3.16"`: an adapter whose version of that package is known and outside it
  does not match (an adapter whose version is unknown is not excluded);
- optional `fixed_in`: the release that fixed it, `"keras 3.9.0"`.

`load()` rejects unknown keys, missing keys and values of the wrong form, naming the entry;
`matching(finding, adapter_versions)` gives the issues that match one finding of report.json.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

DEFAULT = Path(__file__).with_name("upstream.toml")
STATES = ("open", "closed")
REQUIRED = ("repository", "number", "title", "state", "url", "adapters", "finding", "note")
OPTIONAL = ("case", "versions", "fixed_in")

_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
_VERSION = re.compile(r"v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|rc|alpha|beta|c)[-_.]?(\d*))?"
                      r"(?:[-_.]?post[-_.]?(\d*))?(?:[-_.]?dev[-_.]?(\d*))?(?:\+[A-Za-z0-9.]+)?")
_CLAUSE = re.compile(r"(~=|===|==|!=|<=|>=|<|>)\s*(\S+)")
_PRE = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2}


class UpstreamError(ValueError):
    """reports/upstream.toml is malformed; the message names the file and the entry."""


def normalize_name(name: str) -> str:
    """A package name as PEP 503 compares them: `tensorflow_cpu` == `TensorFlow-CPU`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(text: str) -> tuple:
    """An order on PEP 440 versions (release, pre, post, dev; a local `+cpu` is ignored)."""
    m = _VERSION.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a version: {text!r}")
    release, phase, pre_n, post, dev = m.groups()
    parts = [int(p) for p in release.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    if phase:
        pre = (0, _PRE[phase], int(pre_n or 0))
    elif dev is not None and post is None:
        pre = (-1,)  # 1.0.dev1 < 1.0a1
    else:
        pre = (1,)
    return (tuple(parts), pre, (int(post or 0),) if post is not None else (-1,),
            (int(dev or 0),) if dev is not None else (math.inf,))


def _release(text: str) -> list[int]:
    return [int(p) for p in _VERSION.fullmatch(text.strip()).group(1).split(".")]


@dataclass(frozen=True)
class Specifier:
    """`package` and its clauses, e.g. `keras>=3.0,<3.16`."""
    package: str
    clauses: tuple[tuple[str, str], ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> "Specifier":
        m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.+?)\s*", text)
        if not m:
            raise ValueError(f"not a package and specifier: {text!r}")
        clauses = []
        for part in m.group(2).split(","):
            c = _CLAUSE.fullmatch(part.strip())
            if not c:
                raise ValueError(f"not a version clause: {part.strip()!r} in {text!r}")
            op, ver = c.groups()
            wildcard = op in ("==", "!=") and ver.endswith(".*")
            version_key(ver[:-2] if wildcard else ver)  # raises on a malformed version
            if op == "~=" and len(_release(ver)) < 2:
                raise ValueError(f"~= needs at least two release components: {text!r}")
            clauses.append((op, ver))
        return cls(normalize_name(m.group(1)), tuple(clauses), text.strip())

    def contains(self, version: str) -> bool:
        return all(_holds(op, ver, version) for op, ver in self.clauses)


def _holds(op: str, ver: str, version: str) -> bool:
    if op == "===":
        return version.strip() == ver
    if op in ("==", "!=") and ver.endswith(".*"):
        prefix = _release(ver[:-2])
        equal = (_release(version) + [0] * len(prefix))[:len(prefix)] == prefix
        return equal if op == "==" else not equal
    have, want = version_key(version), version_key(ver)
    if op == "~=":
        prefix = _release(ver)[:-1]
        return have >= want and (_release(version) + [0] * len(prefix))[:len(prefix)] == prefix
    return {"==": have == want, "!=": have != want, "<=": have <= want, ">=": have >= want,
            "<": have < want, ">": have > want}[op]


@dataclass(frozen=True)
class Issue:
    repository: str
    number: int
    title: str
    state: str
    url: str
    adapters: tuple[str, ...]
    finding: tuple[str, ...]
    note: str
    case: tuple[str, ...] = ()
    versions: Specifier | None = None
    fixed_in: tuple[str, str] | None = None  # (package, version)

    @property
    def ref(self) -> str:
        """`owner/name#number`, as people write it."""
        return f"{self.repository}#{self.number}"

    @property
    def kind(self) -> str:
        """"issue" or "pull"."""
        return "pull" if "/pull/" in self.url else "issue"

    def matches(self, finding: dict, adapter_versions: dict[str, dict] | None = None) -> bool:
        """Whether this issue matches `finding` (a finding of report.json: `id`, `adapters`,
        `records` with `adapter` and `case`), given each adapter's package versions."""
        if not any(fnmatchcase(finding["id"], g) for g in self.finding):
            return False
        adapters = {a for a in finding.get("adapters", ())
                    if any(fnmatchcase(a, g) for g in self.adapters)
                    and self._version_ok((adapter_versions or {}).get(a) or {})}
        if not adapters:
            return False
        if not self.case:
            return True
        records = finding.get("records")
        if records is None:  # a finding without its records: its smallest case stands for them
            smallest = finding.get("smallest") or {}
            records = [smallest] if smallest else []
        return any(r.get("adapter") in adapters and any(fnmatchcase(r.get("case", ""), g) for g in self.case)
                   for r in records)

    def _version_ok(self, versions: dict) -> bool:
        if self.versions is None:
            return True
        known = {normalize_name(k): v for k, v in versions.items()}
        have = known.get(self.versions.package)
        if have is None:
            return True  # unknown: not excluded
        try:
            return self.versions.contains(str(have))
        except ValueError:
            return True

    def fixed_at_or_before(self, versions: dict) -> bool:
        """Whether `fixed_in` names a release at or before the version in `versions`
        ({package: version}); False without `fixed_in` or without that package."""
        if self.fixed_in is None:
            return False
        package, fixed = self.fixed_in
        known = {normalize_name(k): v for k, v in versions.items()}
        return package in known and version_key(fixed) <= version_key(str(known[package]))


def _globs(value, key: str, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(g, str) and g.strip() for g in items):
        raise UpstreamError(f"{where}: `{key}` must be a non-empty string or a non-empty list of them")
    return tuple(items)


def _text(entry: dict, key: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise UpstreamError(f"{where}: `{key}` must be a non-empty string")
    return value


def _issue(entry, n: int, path: Path) -> Issue:
    where = f"{path}: issue {n}"
    if not isinstance(entry, dict):
        raise UpstreamError(f"{where}: not a table")
    if isinstance(entry.get("repository"), str) and isinstance(entry.get("number"), int):
        where += f" ({entry['repository']}#{entry['number']})"
    unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise UpstreamError(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
        raise UpstreamError(f"{where}: missing key(s) {', '.join(missing)}")
    repository = _text(entry, "repository", where)
    if not _REPOSITORY.fullmatch(repository):
        raise UpstreamError(f"{where}: `repository` must be owner/name, not {repository!r}")
    number = entry["number"]
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise UpstreamError(f"{where}: `number` must be a positive integer")
    state = entry["state"]
    if state not in STATES:
        raise UpstreamError(f"{where}: `state` must be one of {', '.join(STATES)}, not {state!r}")
    url = _text(entry, "url", where)
    allowed = [f"https://github.com/{repository}/{kind}/{number}" for kind in ("issues", "pull")]
    if url not in allowed:
        raise UpstreamError(f"{where}: `url` must be {allowed[0]} or {allowed[1]}, not {url!r}")
    versions = fixed_in = None
    if "versions" in entry:
        try:
            versions = Specifier.parse(_text(entry, "versions", where))
        except ValueError as e:
            raise UpstreamError(f"{where}: `versions`: {e}") from None
    if "fixed_in" in entry:
        parts = _text(entry, "fixed_in", where).split()
        try:
            if len(parts) != 2:
                raise ValueError("must be a package and a version, e.g. 'keras 3.9.0'")
            version_key(parts[1])
        except ValueError as e:
            raise UpstreamError(f"{where}: `fixed_in`: {e}") from None
        fixed_in = (normalize_name(parts[0]), parts[1])
    return Issue(repository=repository, number=number, title=_text(entry, "title", where), state=state,
                 url=url, adapters=_globs(entry["adapters"], "adapters", where),
                 finding=_globs(entry["finding"], "finding", where), note=_text(entry, "note", where),
                 case=_globs(entry["case"], "case", where) if "case" in entry else (),
                 versions=versions, fixed_in=fixed_in)


def load(path: Path = DEFAULT) -> list[Issue]:
    """Every entry of the file, validated; UpstreamError naming the first bad entry."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UpstreamError(f"{path}: {e}") from None
    unknown = sorted(set(data) - {"issue"})
    if unknown:
        raise UpstreamError(f"{path}: unknown top-level key(s) {', '.join(unknown)} (only [[issue]] tables)")
    entries = data.get("issue", [])
    if not isinstance(entries, list):
        raise UpstreamError(f"{path}: `issue` must be an array of tables ([[issue]])")
    issues = [_issue(entry, n, path) for n, entry in enumerate(entries, 1)]
    seen: dict[tuple[str, int], int] = {}
    for n, issue in enumerate(issues, 1):
        key = (issue.repository.lower(), issue.number)
        if key in seen:
            raise UpstreamError(f"{path}: issue {n} ({issue.ref}) repeats issue {seen[key]}")
        seen[key] = n
    return issues


@lru_cache(maxsize=4)
def _cached(path: str) -> tuple[Issue, ...]:
    return tuple(load(Path(path)))


def matching(finding: dict, adapter_versions: dict[str, dict], issues: list[Issue] | None = None) -> list[Issue]:
    """The known upstream issues that match `finding` (a finding of report.json), in file order.
    `adapter_versions`: {adapter: {package: version}}, from the adapter records' `versions`.
    `issues`: the entries to look in (default: reports/upstream.toml)."""
    pool = _cached(str(DEFAULT)) if issues is None else issues
    return [issue for issue in pool if issue.matches(finding, adapter_versions)]
