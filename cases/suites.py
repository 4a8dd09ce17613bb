"""Named suites and user suite files.

- `smoke`: a few dozen hand-picked cases that run in seconds (the tests use it).
- `standard`: every pair of dimension values at least once (a greedy pairwise
  covering design over dimensions.py) plus edge cases a pairwise design could
  pair unluckily; the default of `make report`.
- `exhaustive`: the full product of every dimension, for long runs.
- a path to a TOML file: a user's own suite (see README.md, "Your own suite").
"""
from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Callable, Iterable

from conformance.cases.case import Case
from conformance.cases.dimensions import DIMENSIONS, LAYOUTS, Layout
from conformance.errors import UsageError


def pairwise(dimensions: dict[str, tuple]) -> list[dict]:
    """Rows (one value per dimension) covering every pair of values of any two dimensions.

    Greedy and deterministic: start each row from the smallest uncovered pair and
    fill the other dimensions with the value covering the most uncovered pairs.
    """
    names = list(dimensions)
    sizes = [len(dimensions[n]) for n in names]
    uncovered = {
        ((i, a), (j, b))
        for i, j in itertools.combinations(range(len(names)), 2)
        for a in range(sizes[i])
        for b in range(sizes[j])
    }
    rows = []
    while uncovered:
        (i, a), (j, b) = min(uncovered)
        row = {i: a, j: b}
        for k in range(len(names)):
            if k in row:
                continue
            gain = lambda v: sum(  # noqa: E731
                (((min(k, m), v if k < m else row[m]), (max(k, m), row[m] if k < m else v)) in uncovered)
                for m in row
            )
            row[k] = max(range(sizes[k]), key=lambda v: (gain(v), -v))
        for p, q in itertools.combinations(sorted(row), 2):
            uncovered.discard(((p, row[p]), (q, row[q])))
        rows.append({names[k]: dimensions[names[k]][v] for k, v in row.items()})
    return rows


def _case(layout: Layout, dtype: str, epsilon, distribution: str, scale: str, seed: int = 0) -> Case:
    return Case(layout.shape, layout.axis, dtype, epsilon, distribution, scale, seed)


def _layout(kind: str, index: int = 0) -> Layout:
    return [lay for lay in LAYOUTS if lay.kind == kind][index]


def smoke() -> list[Case]:
    """Every built-in adapter should pass most of these: forward and gradients in seconds."""
    last, trailing, non_trailing = _layout("last", 1), _layout("trailing"), _layout("non-trailing")
    out = [
        _case(last, dtype, 1e-6, dist, scale)
        for dtype in ("float32", "float16", "bfloat16", "float64")
        for dist, scale in (("normal", "rand"), ("shifted", "ones"))
    ]
    out += [_case(last, "float32", eps, "tiny", "rand") for eps in (1e-5, 0.1)]
    out += [_case(last, "float32", None, "normal", "rand")]
    out += [_case(_layout("last"), "float32", 1e-6, "normal", "signed")]
    out += [_case(_layout("last", 2), "float16", 1e-5, "mixed", "rand")]
    out += [_case(trailing, dtype, 1e-6, "normal", "rand") for dtype in ("float32", "float16")]
    out += [_case(_layout("unsorted"), "float32", 1e-6, "normal", "rand")]
    out += [_case(non_trailing, "float32", 1e-6, "normal", scale) for scale in ("ones", "rand")]
    out += [_case(_layout("size-1"), "float32", 1e-6, "normal", "rand")]
    out += [_case(_layout("rank-5"), "float64", 1e-6, "normal", "rand")]
    out += [_case(last, "float32", 1e-6, "zeros", "rand")]
    return out


def _edge_cases() -> list[Case]:
    """Combinations whose meaning needs both values at once, which pairwise may not pick."""
    last = _layout("last", 1)
    out = [_case(last, dt, eps, "zeros", "rand") for dt in ("float32", "float16") for eps in (1e-6, 0.0)]
    out += [_case(last, dt, 1e-6, "huge", "rand") for dt in ("float16", "bfloat16", "float32", "float64")]
    out += [_case(last, dt, 1e-6, "subnormal", "rand") for dt in ("float16", "float32")]
    out += [_case(last, dt, None, "normal", "rand") for dt in ("float16", "bfloat16", "float32", "float64")]
    out += [_case(lay, "float32", 1e-6, "normal", "rand") for lay in LAYOUTS if lay.kind == "long"]
    out += [_case(lay, "float16", 1e-6, "normal", "rand") for lay in LAYOUTS if lay.kind == "long"]
    out += [_case(lay, "float32", 1e-6, "normal", "signed") for lay in LAYOUTS]
    return out


def standard() -> list[Case]:
    rows = pairwise(DIMENSIONS)
    return _unique([_case(**r) for r in rows] + _edge_cases())


def exhaustive() -> list[Case]:
    return [_case(*values) for values in itertools.product(*DIMENSIONS.values())]


SUITES: dict[str, Callable[[], list[Case]]] = {"smoke": smoke, "standard": standard, "exhaustive": exhaustive}


def _unique(cases: Iterable[Case]) -> list[Case]:
    seen, out = set(), []
    for c in cases:
        if c.id not in seen:
            seen.add(c.id)
            out.append(c)
    return out


# -- user suites (TOML) --------------------------------------------------------------
_GRID_KEYS = {"mode", "layouts", "dtypes", "epsilons", "distributions", "scales", "seeds"}


def _grid_cases(grid: dict, where: str) -> list[Case]:
    unknown = set(grid) - _GRID_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_GRID_KEYS)}")
    mode = grid.get("mode", "product")
    if mode not in ("product", "pairwise"):
        raise ValueError(f"{where}: mode must be 'product' or 'pairwise', not {mode!r}")
    layouts = []
    for item in grid.get("layouts", [{"shape": list(lay.shape), "axis": list(lay.axis)} for lay in LAYOUTS]):
        if not isinstance(item, dict) or set(item) != {"shape", "axis"}:
            raise ValueError(f"{where}: each layout is a table {{shape = [...], axis = [...]}}, got {item!r}")
        layouts.append(Layout("user", tuple(int(s) for s in item["shape"]), tuple(int(a) for a in item["axis"])))
    dims = {
        "layout": tuple(layouts),
        "dtype": tuple(grid.get("dtypes", ["float32"])),
        "epsilon": tuple(None if e == "default" else float(e) for e in grid.get("epsilons", [1e-6])),
        "distribution": tuple(grid.get("distributions", ["normal"])),
        "scale": tuple(grid.get("scales", ["rand"])),
    }
    seeds = [int(s) for s in grid.get("seeds", [0])]
    rows = pairwise(dims) if mode == "pairwise" else [
        dict(zip(dims, values)) for values in itertools.product(*dims.values())
    ]
    return [_case(**row, seed=seed) for row in rows for seed in seeds]


def load_suite_file(path: Path) -> list[Case]:
    """Cases of a TOML suite file: `cases = [ids...]` and/or `[[grid]]` tables."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read suite file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"suite file {path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"name", "description", "cases", "grid"}
    if unknown:
        raise UsageError(f"suite file {path}: unknown key(s) {sorted(unknown)}; allowed: name, description, cases, [[grid]]")
    cases: list[Case] = []
    try:
        for case_id in data.get("cases", []):
            cases.append(Case.from_id(str(case_id)))
        for k, grid in enumerate(data.get("grid", [])):
            cases.extend(_grid_cases(grid, f"[[grid]] #{k + 1}"))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"suite file {path}: {exc}") from None
    if not cases:
        raise UsageError(f"suite file {path} defines no cases: add `cases = [...]` or a [[grid]] table")
    return _unique(cases)


def load_suite(name_or_path: str) -> list[Case]:
    if name_or_path in SUITES:
        return SUITES[name_or_path]()
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_suite_file(path)
    raise UsageError(f"unknown suite {name_or_path!r}: use one of {', '.join(SUITES)} or a path to a .toml suite file")
