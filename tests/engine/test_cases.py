"""Case ids are stable keys; arrays follow from the case alone; suites cover their space."""
import itertools

import numpy as np
import pytest

from conformance.cases.case import Case, materialize, parse_case
from conformance.cases.dimensions import DIMENSIONS
from conformance.cases.suites import SUITES, load_suite, pairwise, smoke, standard
from conformance.errors import UsageError


def test_ids_are_readable_and_fixed():
    assert Case((2, 8, 8), (1,), "float16", 1e-6, "huge", "rand", 0).id == "f16/2x8x8/ax1/eps1e-06/huge/rand/s0"
    assert Case((), (), "bfloat16", None, "normal", "ones", 3).id == "bf16/scalar/axnone/epsdefault/normal/ones/s3"
    assert Case((4, 32), (-1, -2), "mixed_float16", 0.0).id == "mf16/4x32/ax-1,-2/eps0/normal/rand/s0"


@pytest.mark.parametrize("suite", ["smoke", "standard"])
def test_ids_parse_back(suite):
    for case in SUITES[suite]():
        assert parse_case(case.id) == case


def test_values_are_rounded_once_to_the_case_dtype():
    a = materialize(Case((4, 8), (-1,), "float16", 1e-6, "normal"))
    assert a.x.dtype == np.float16 and a.dy.dtype == np.float16
    m = materialize(Case((4, 8), (-1,), "mixed_float16", 1e-6, "normal"))
    assert m.x.dtype == np.float16 and m.scale.dtype == np.float32


def test_rows_are_the_normalized_slices():
    a = materialize(Case((2, 8, 8), (1,), "float32", 1e-6, "spike"))
    # one spike per normalized slice x[i, :, j]
    assert ((np.abs(a.x) > 50).sum(axis=1) == 1).all()


def test_standard_covers_every_pair_of_dimension_values():
    cases = [c for c in standard() if isinstance(c, Case)]
    rows = [
        {"layout": (c.shape, c.axis), "dtype": c.dtype, "epsilon": c.epsilon, "distribution": c.distribution, "scale": c.scale}
        for c in cases
    ]
    values = {k: [(lay.shape, lay.axis) for lay in v] if k == "layout" else list(v) for k, v in DIMENSIONS.items()}
    for p, q in itertools.combinations(values, 2):
        seen = {(r[p], r[q]) for r in rows}
        missing = [(a, b) for a in values[p] for b in values[q] if (a, b) not in seen]
        assert not missing, f"standard misses {p} x {q}: {missing[:3]}"


def test_pairwise_with_base_keeps_base_rows():
    dims = {"a": (1, 2, 3), "b": ("x", "y"), "c": (True, False)}
    base = [{"a": 1}, {"a": 2}, {"a": 3}]
    rows = pairwise(dims, base=base)
    assert {r["a"] for r in rows} == {1, 2, 3}
    assert len(pairwise(dims)) >= 6


def test_smoke_is_small():
    assert 10 <= len(smoke()) <= 40


def test_standard_includes_every_invalid_configuration():
    from conformance.cases.invalid import INVALID

    assert set(INVALID) <= set(standard())


def test_toml_suite(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text(
        'name = "mine"\ncases = ["f32/4x32/ax-1/eps1e-06/normal/rand/s0"]\n'
        '[[grid]]\nlayouts = [{shape = [2, 8], axis = [-1]}]\ndtypes = ["float16", "float32"]\nepsilons = [1e-5, "default"]\nseeds = [0, 1]\n'
    )
    cases = load_suite(str(f))
    assert len(cases) == 1 + 2 * 2 * 2
    assert "f16/2x8/ax-1/epsdefault/normal/rand/s1" in {c.id for c in cases}


@pytest.mark.parametrize(
    "text, expect",
    [
        ("cases = [", "not valid TOML"),
        ('cases = ["f32/4x32/bad"]', "malformed case id"),
        ("[[grid]]\ndtypes = [\"float8\"]", "unknown dtype"),
        ("[[grid]]\nshapes = [[1]]", "unknown key"),
        ('name = "empty"', "defines no cases"),
    ],
)
def test_toml_suite_errors_are_clear(tmp_path, text, expect):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UsageError, match=expect):
        load_suite(str(f))
