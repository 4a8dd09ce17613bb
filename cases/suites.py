"""Named suites and user suite files.

- `smoke`: a few dozen hand-picked cases that run in seconds (the tests use it).
- `standard`: every pair of dimension values at least once (a greedy pairwise
  covering design over dimensions.py) plus edge cases a pairwise design could
  pair unluckily; the default of `make report`.
- `modes`: ten cases for the execution-mode adapters, which compile per shape (`--adapters modes`).
- `kernels`: the sizes, thresholds and data kernel libraries meet (dimensions.py, "the kernels
  suite"): token counts to 4096, hidden sizes to 16384 (odd ones too), QK-norm layouts, half
  precision and float32 weights with half activations, LLM-like outlier channels; for kernel
  authors and anyone choosing a kernel library (`--suite kernels`; minutes per adapter).
- `exhaustive`: the full product of every dimension, for long runs.
- a path to a TOML file: a user's own suite (see docs/cli.md, "Case ids and suite files").
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable, Iterable

from conformance.cases.case import Case, parse_case
from conformance.cases.invalid import INVALID
from conformance.cases.dimensions import (CONFIG_DIMENSIONS, DIMENSIONS, KERNEL_DISTRIBUTIONS, KERNEL_DTYPES,
                                         KERNEL_EPSILONS, KERNEL_LAYOUTS, KERNEL_SCALES, LAUNCH_HIDDEN, LAUNCH_PAIRS,
                                         LAYOUTS, PROPERTY_EPSILONS,
                                         Layout)
from conformance.errors import UsageError
from conformance.inputs import read_toml


def _pairs(row: dict, names: list[str]) -> set:
    return {((p, row[p]), (q, row[q])) for p, q in itertools.combinations(names, 2)}


def pairwise(dimensions: dict[str, tuple], base: list[dict] | None = None) -> list[dict]:
    """Rows (one value per dimension) covering every pair of values of any two dimensions.

    Greedy and deterministic: each new row is the candidate covering the most
    uncovered pairs, ties going to the least used values.  With `base`, rows
    extend the given partial rows (the compiled configurations) instead of
    starting from scratch, so data variations reuse configurations: each base
    row is offered in turn and extended with the best values of the remaining
    dimensions, until every pair is covered.
    """
    names = list(dimensions)
    index = {n: {v: i for i, v in enumerate(vals)} for n, vals in dimensions.items()}
    uncovered = {
        ((p, a), (q, b))
        for p, q in itertools.combinations(names, 2)
        for a in range(len(dimensions[p]))
        for b in range(len(dimensions[q]))
    }
    used = {n: [0] * len(dimensions[n]) for n in names}
    rows: list[dict] = []

    def extend(partial: dict) -> tuple[int, dict]:
        fixed = {n: index[n][partial[n]] for n in partial}
        free = [n for n in names if n not in fixed]
        best = None
        for combo in itertools.product(*(range(len(dimensions[n])) for n in free)):
            row = {**fixed, **dict(zip(free, combo))}
            gain = len(_pairs(row, names) & uncovered)
            rank = (gain, -sum(used[n][row[n]] for n in free))
            if best is None or rank > best[0]:
                best = (rank, row)
        return best[0][0], best[1]

    def take(row: dict) -> None:
        uncovered.difference_update(_pairs(row, names))
        for n in names:
            used[n][row[n]] += 1
        rows.append({n: dimensions[n][row[n]] for n in names})

    if base is None:
        while uncovered:
            (p, a), (q, b) = min(uncovered)
            take(extend({p: dimensions[p][a], q: dimensions[q][b]})[1])
        return rows
    while uncovered:
        progressed = False
        for partial in base:
            gain, row = extend(partial)
            if gain:
                take(row)
                progressed = True
        if not progressed:
            raise ValueError("base rows cannot cover every pair: a value of a base dimension is missing")
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
    out += [_case(_layout("long"), "float16", 1e-5, "mixed", "rand")]
    out += [_case(trailing, dtype, 1e-6, "normal", "rand") for dtype in ("float32", "float16")]
    out += [_case(_layout("unsorted"), "float32", 1e-6, "normal", "rand")]
    out += [_case(non_trailing, "float32", 1e-6, "normal", scale) for scale in ("ones", "rand")]
    out += [_case(_layout("size-1"), "float32", 1e-6, "normal", "rand")]
    out += [_case(_layout("rank-5"), "float64", 1e-6, "normal", "rand")]
    out += [_case(last, "float32", 1e-6, "zeros", "rand")]
    # Half precision into a layer built with no dtype arguments: what most users get.
    out += [_case(last, dtype, 1e-6, "normal", "rand") for dtype in ("default_float16", "default_bfloat16")]
    out += [_case(last, "float64", 0.0, "normal", "rand")]  # the property checks (properties.applies)
    return out + list(INVALID)


def _edge_cases() -> list[Case]:
    """Pairs of values whose meaning needs a third: pairwise covers (zeros, eps=0) or
    (float16, long) but not on the dtype where they matter most."""
    last, long = _layout("last", 1), _layout("long")
    out = [_case(last, dt, eps, "zeros", "rand") for dt in ("float32", "float16") for eps in (1e-6, 0.0)]
    out += [_case(long, dt, 1e-6, "normal", "rand") for dt in ("float16", "bfloat16", "float32")]
    return out


def _property_cases() -> list[Case]:
    """The cases of the property checks (properties.applies: normal inputs, a random scale, each
    epsilon of PROPERTY_EPSILONS): each plain dtype once, over a row layout, a multi-axis one and
    a non-trailing one."""
    rows, trailing, non_trailing = _layout("last", 1), _layout("trailing"), _layout("non-trailing")
    return [_case(lay, dt, eps, "normal", "rand") for eps in PROPERTY_EPSILONS for lay, dt in
            ((rows, "float32"), (rows, "bfloat16"), (trailing, "float16"), (non_trailing, "float64"))]


def standard() -> list[Case]:
    configs = pairwise(CONFIG_DIMENSIONS)
    rows = pairwise(DIMENSIONS, base=configs)
    return _unique([_case(**r) for r in rows] + _edge_cases() + _property_cases()) + list(INVALID)


def modes() -> list[Case]:
    """For the execution modes (adapters/modes.py), which compile per shape, dtype and epsilon:
    each plain and mixed dtype on one layout, then where compilers change the arithmetic: a long
    half-precision row (fused reductions), overflowing squares (upcasting), a multi-axis layout,
    the implementation's default epsilon, and a property case."""
    last, long = _layout("last", 1), _layout("long")
    out = [_case(last, dt, 1e-6, "normal", "rand") for dt in ("float32", "float16", "bfloat16", "float64", "mixed_float16")]
    out += [_case(long, "float16", 1e-5, "normal", "rand"), _case(last, "float16", 1e-6, "huge", "rand"),
            _case(_layout("trailing"), "float32", 1e-6, "normal", "signed"), _case(last, "float32", None, "normal", "rand"),
            _case(last, "float32", 0.0, "normal", "rand")]
    return out


def kernels() -> list[Case]:
    """Every pair of dtype, epsilon, distribution and scale at least once, the rows laid out over
    the kernel layouts in turn (each layout several times, never the full product of the largest
    ones); then the long float32 rows with spiky and outlier data (a one-lane float32 sum shows only
    there), and the property cases at the launch sizes of LAUNCH_PAIRS."""
    rows = pairwise({"dtype": KERNEL_DTYPES, "epsilon": KERNEL_EPSILONS, "distribution": KERNEL_DISTRIBUTIONS,
                     "scale": KERNEL_SCALES})
    out = [_case(KERNEL_LAYOUTS[k % len(KERNEL_LAYOUTS)], **r) for k, r in enumerate(rows)]
    long_rows = [lay for lay in KERNEL_LAYOUTS if lay.kind == "tokens" and lay.shape[-1] >= 8192]
    out += [_case(lay, "float32", 1e-6, dist, "trained") for lay in long_rows for dist in ("spike", "outliers")]
    # Every launch size of LAUNCH_PAIRS at one hidden size, so each property case meets its partner.
    launches = sorted({t for pair in LAUNCH_PAIRS for t in pair})
    out += [_case(Layout("tokens", (t, LAUNCH_HIDDEN), (-1,)), dt, eps, "normal", "rand") for t in launches
            for dt, eps in (("bfloat16", 1e-5), ("float32", 0.0))]
    return _unique(out)


def exhaustive() -> list[Case]:
    return [_case(*values) for values in itertools.product(*DIMENSIONS.values())]


SUITES: dict[str, Callable[[], list[Case]]] = {"smoke": smoke, "standard": standard, "modes": modes,
                                               "kernels": kernels, "exhaustive": exhaustive}


def _unique(cases: Iterable[Case]) -> list[Case]:
    seen, out = set(), []
    for c in cases:
        if c.id not in seen:
            seen.add(c.id)
            out.append(c)
    return out


# -- user suites (TOML) --------------------------------------------------------------
_GRID_KEYS = {"mode", "layouts", "dtypes", "epsilons", "distributions", "scales", "seeds"}


def _list_of(grid: dict, key: str, kinds: tuple[type, ...], where: str, default: list) -> list:
    """grid[key], a list whose items are exactly of `kinds` (no coercion: 8.9 is not 8, true is not 1)."""
    values = grid.get(key, default)
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where}: `{key}` must be a non-empty list, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ValueError(f"{where}: `{key}` holds {v!r}; each item must be {names}")
    return values


def _grid_cases(grid, where: str) -> list[Case]:
    if not isinstance(grid, dict):
        raise ValueError(f"{where}: must be a table")
    unknown = set(grid) - _GRID_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_GRID_KEYS)}")
    mode = grid.get("mode", "product")
    if mode not in ("product", "pairwise"):
        raise ValueError(f"{where}: mode must be 'product' or 'pairwise', not {mode!r}")
    layouts = []
    default_layouts = [{"shape": list(lay.shape), "axis": list(lay.axis)} for lay in LAYOUTS]
    for item in _list_of(grid, "layouts", (dict,), where, default_layouts):
        if set(item) != {"shape", "axis"}:
            raise ValueError(f"{where}: each layout is a table {{shape = [...], axis = [...]}}, got {item!r}")
        for key in ("shape", "axis"):
            if not isinstance(item[key], list) or any(isinstance(v, bool) or not isinstance(v, int) for v in item[key]):
                raise ValueError(f"{where}: layout {key} must be a list of integers, got {item[key]!r}")
        layouts.append(Layout("user", tuple(item["shape"]), tuple(item["axis"])))
    epsilons = _list_of(grid, "epsilons", (int, float, str), where, [1e-6])
    if any(isinstance(e, str) and e != "default" for e in epsilons):
        raise ValueError(f"{where}: `epsilons` items are numbers or \"default\", got {epsilons!r}")
    dims = {
        "layout": tuple(layouts),
        "dtype": tuple(_list_of(grid, "dtypes", (str,), where, ["float32"])),
        "epsilon": tuple(None if e == "default" else float(e) for e in epsilons),
        "distribution": tuple(_list_of(grid, "distributions", (str,), where, ["normal"])),
        "scale": tuple(_list_of(grid, "scales", (str,), where, ["rand"])),
    }
    seeds = _list_of(grid, "seeds", (int,), where, [0])
    rows = pairwise(dims) if mode == "pairwise" else [
        dict(zip(dims, values)) for values in itertools.product(*dims.values())
    ]
    return [_case(**row, seed=seed) for row in rows for seed in seeds]


def load_suite_file(path: Path) -> list[Case]:
    """Cases of a TOML suite file: `cases = [ids...]` and/or `[[grid]]` tables."""
    data = read_toml(path, "suite file")
    unknown = set(data) - {"name", "description", "cases", "grid"}
    if unknown:
        raise UsageError(f"suite file {path}: unknown key(s) {sorted(unknown)}; allowed: name, description, cases, [[grid]]")
    cases: list[Case] = []
    try:
        for case_id in _list_of(data, "cases", (str,), "`cases`", []) if "cases" in data else []:
            cases.append(parse_case(case_id))
        grids = data.get("grid", [])
        if not isinstance(grids, list):
            raise ValueError("`grid` must be an array of tables: write [[grid]]")
        for k, grid in enumerate(grids):
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
    if path.suffix == ".toml" or path.exists() or path.is_symlink():
        return load_suite_file(path)
    raise UsageError(f"unknown suite {name_or_path!r}: use one of {', '.join(SUITES)} or a path to a .toml suite file")
