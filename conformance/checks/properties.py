"""Properties beyond the oracle: statements about an implementation that need no
reference values, or need a reference the first-order oracle does not give.

Each check is one record, defined exactly:

- `batch_invariance`: every row's output is bit-identical whether it is computed in the case's
  batch or in batches of BATCH_SIZES along the first axis that is not normalized (the case's
  slices repeated; for a one-row layout such as (4, 32), a batch of 1 is a row alone).  A case
  whose batch is one of a pair of launch sizes the suites declare (dimensions.LAUNCH_PAIRS: 255
  and 300 tokens, where vLLM's block size changes; 1 and 4096) is compared with its partner's
  launch instead.
- `determinism`: three calls of one layer on one input give identical bits.
- `sign_symmetry`: f(-x) = -f(x), bit for bit.
- `scale_invariance`: f(2^k x) = f(x) bit for bit, with epsilon 0 (the property holds exactly
  there: every intermediate is scaled by a power of two), for a k that keeps every scaled input
  normal and the sum of squares finite in the input's format.
- `layout`: non-contiguous inputs (LAYOUTS: a transposed view, a strided slice, negative strides,
  channels-last) give the same bits as the contiguous input; through the adapter's optional
  `call_layout(layer, x, layout)`, which makes that layout in its framework.
- `jvp`: the forward-mode derivative (optional `jvp(layer, x, v) -> (y, t)`) against the float64
  directional derivative, with the gradient's tolerance (the same terms, see tolerance.py).
- `hvp`: a second-order check (optional `hvp(layer, x, dy, v)`: the gradient in x of
  <dx(x; dy), v>, through the framework's own autodiff, twice) against the float64 formula.

Every call for a bitwise comparison goes to a freshly built layer (its first call), so a layer
that changes its output from call to call fails `determinism` and nothing else.  The checks
run on the cases `applies()` selects (normal inputs, a random scale, epsilon 0 or 1e-5: an
implementation that refuses epsilon 0 still gets every property but scale invariance, which holds
exactly only with epsilon 0), which each suite includes.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from conformance.cases.case import MAX_ELEMENTS, Case
from conformance.cases.dimensions import LAUNCH_PAIRS, PROPERTY_EPSILONS
from conformance.checks.context import CaseRun
from conformance.diagnosis.diagnose import diagnosis
from conformance.numerics import tolerance
from conformance.numerics.compare import numeric_array, score
from conformance.numerics.arrays import into
from conformance.numerics.oracle import Blocked, placed, row_blocks
from conformance.spec import LayerSpec

BATCH_SIZES = (1, 7, 64, 1000)
MAX_BATCH_ELEMENTS = 1 << 20  # larger batches are skipped: the property is shown by the smaller ones
LAYOUTS = ("transposed", "strided", "row-strided", "negative-strides", "channels-last")
SCALE_EXPONENTS = (3, -3, 1, -1)


def applies(case) -> bool:
    """The cases the property checks run on: normal inputs, a random scale and an epsilon of
    PROPERTY_EPSILONS, in whatever layout and dtype a suite gives them.  Each batch size is a new
    shape (a new compilation for XLA, a new export for torch-onnx), so the suites hold few such
    cases (suites.py)."""
    return (isinstance(case, Case) and case.distribution == "normal" and case.epsilon in PROPERTY_EPSILONS
            and case.scale == "rand")


def applies_at_epsilon_zero(case) -> bool:
    """scale_invariance's cases: f(2^k x) = f(x) holds exactly only without epsilon."""
    return applies(case) and case.epsilon == 0.0


def launch_sizes(rows: int) -> tuple[tuple[int, ...], int]:
    """The batch sizes a case of `rows` is compared with, and the largest batch tried: its
    partners in LAUNCH_PAIRS (whatever their size: those thresholds are the point), else
    BATCH_SIZES up to MAX_BATCH_ELEMENTS."""
    partners = tuple(b if a == rows else a for a, b in LAUNCH_PAIRS if rows in (a, b))
    return (partners, MAX_ELEMENTS) if partners else (BATCH_SIZES, MAX_BATCH_ELEMENTS)


def fresh_call(s: CaseRun, x: np.ndarray, spec: LayerSpec | None = None) -> np.ndarray:
    """The first call of a newly built layer."""
    layer = s.adapter.build(spec or s.spec)
    return numeric_array(s.adapter.call(layer, x))


def respec(s: CaseRun, shape: tuple[int, ...]) -> LayerSpec:
    return replace(s.spec, input_shape=tuple(shape))


def _bits(a: np.ndarray) -> np.ndarray:
    """Raw bits, so that -0.0 differs from 0.0 and any NaN equals itself."""
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize in (1, 2, 4, 8) else a


def _differ(a: np.ndarray, b: np.ndarray) -> str:
    """'' when a and b are the same bits, else where and how they first differ."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"{a.dtype}{list(a.shape)} against {b.dtype}{list(b.shape)}"
    bad = _bits(a) != _bits(b)
    if not bad.any():
        return ""
    i = tuple(int(k) for k in np.argwhere(bad)[0])
    return f"{int(bad.sum())} of {bad.size} elements, first at {list(i)}: {a[i]!r} against {b[i]!r}"


# -- the bitwise properties ------------------------------------------------------------------
def batch_invariance(s: CaseRun) -> tuple[str, str, dict]:
    case, x = s.case, s.arrays.x
    others = [a for a in range(len(case.shape)) if a not in case.axes]
    if not others or case.rows == 0:
        return "unsupported", "the case has no batch axis (every axis is normalized)", {}
    # The batch grows or shrinks along the first axis that is not normalized: every other
    # axis, and so the memory layout of each row, stays the case's own.
    lead = others[0]
    per_slice = x.size // x.shape[lead]
    base = fresh_call(s, x)
    tried = []
    sizes, largest = launch_sizes(x.shape[lead])
    for count in sizes:
        if count * per_slice > largest:
            continue
        pick = np.arange(count) % x.shape[lead]
        xb = np.take(x, pick, axis=lead)
        tried.append(count)
        why = _differ(fresh_call(s, xb, respec(s, xb.shape)), np.take(base, pick, axis=lead))
        if why:
            return "fail", f"{count} along axis {lead} (the case has {x.shape[lead]}): {why}", {"batch_sizes": tried}
    return "pass", "", {"batch_sizes": tried}


def determinism(s: CaseRun) -> tuple[str, str, dict]:
    layer = s.adapter.build(s.spec)
    first = numeric_array(s.adapter.call(layer, s.arrays.x))
    for call in (2, 3):
        why = _differ(numeric_array(s.adapter.call(layer, s.arrays.x)), first)
        if why:
            return "fail", f"call {call} against call 1: {why}", {}
    return "pass", "", {}


def sign_symmetry(s: CaseRun) -> tuple[str, str, dict]:
    y = fresh_call(s, s.arrays.x)
    why = _differ(fresh_call(s, -s.arrays.x), -y)
    return ("fail", f"f(-x) against -f(x): {why}", {}) if why else ("pass", "", {})


def _scale_exponent(x: np.ndarray, fmt, n: int) -> int | None:
    """A k for which 2^k x is exact (every nonzero value stays normal) and n max(2^k x)^2 is finite."""
    a = np.abs(np.asarray(x))
    if a.dtype.itemsize < 4:  # half formats in float32, exactly: numpy's reductions where= on them
        a = a.astype(np.float32)
    nonzero = a > 0  # NaN is left out, as zero is
    if not nonzero.any():
        return None
    # Reductions over the nonzero values in place of a copy of them (a kernel-sized case).
    lo = float(np.min(a, where=nonzero, initial=np.inf))
    hi = float(np.max(a, where=nonzero, initial=0.0))
    for k in SCALE_EXPONENTS:
        if lo * 2.0**k >= fmt.tiny and max(n, 1) * (hi * 2.0**k) ** 2 < fmt.max:
            return k
    return None


def scale_invariance(s: CaseRun) -> tuple[str, str, dict]:
    fmt = s.case.precision.compute
    k = _scale_exponent(s.arrays.x, fmt, s.case.reduction_length)
    if k is None:
        return "unsupported", "no power of two keeps this case's inputs normal and their squares finite", {}
    scaled = (s.arrays.x.astype(np.float64) * 2.0**k).astype(s.arrays.x.dtype)
    why = _differ(fresh_call(s, scaled), fresh_call(s, s.arrays.x))
    return ("fail", f"f(2^{k} x) against f(x): {why}", {"exponent": k}) if why else ("pass", "", {"exponent": k})


def layout(s: CaseRun) -> tuple[str, str, dict]:
    y = fresh_call(s, s.arrays.x)
    tried = []
    for name in LAYOUTS:
        layer = s.adapter.build(s.spec)
        try:
            got = s.adapter.call_layout(layer, s.arrays.x, name)
        except NotImplementedError:
            continue
        tried.append(name)
        why = _differ(numeric_array(got), y)
        if why:
            return "fail", f"{name} input against the contiguous one: {why}", {"layouts": tried}
    if not tried:
        return "unsupported", "no non-contiguous layout applies to this case's shape", {}
    return "pass", "", {"layouts": tried}


# -- derivatives against float64 formulas ----------------------------------------------------
def _tangent(s: CaseRun) -> np.ndarray:
    """A direction v for jvp and hvp: standard normal, in the compute dtype, from the case's seed
    (drawn once for both: a kernel-sized case's draw is seconds)."""
    kept = s.__dict__.setdefault("tangent", [])
    if not kept:
        rng = np.random.default_rng([s.case.seed, 0x9E37])
        kept.append(rng.standard_normal(s.case.shape).astype(s.case.precision.compute.np_dtype))
    return kept[0]


def _row_terms(x, scale, axes, eps):
    x = np.asarray(x, np.float64)
    s = placed(np.asarray(scale, np.float64), x.ndim, axes)
    r = 1.0 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
    return x * r, r, s


def jvp_reference(x, scale, v, axes, eps) -> tuple[np.ndarray, np.ndarray]:
    """(t, magnitude): t = J v = r s (v - xn mean(xn v)), with xn = x r."""
    v = np.asarray(v, np.float64)
    with np.errstate(all="ignore"):
        xn, r, s = _row_terms(x, scale, axes, eps)
        # Each product once, in place (arrays.into), in the order the formula is written: the same bits.
        p = xn * v
        proj = np.mean(p, axis=axes, keepdims=True)
        proj_abs = np.mean(np.abs(p, out=into(p)), axis=axes, keepdims=True)
        t = xn * proj
        t = np.multiply(r * s, np.subtract(v, t, out=into(t)), out=into(t))  # r s (v - xn proj)
        m = np.abs(xn)
        m = np.add(np.abs(v), np.multiply(m, proj_abs, out=into(m)), out=into(m))
        return t, np.multiply(r * np.abs(s), m, out=into(m))  # r |s| (|v| + |xn| proj_abs)


def hvp_reference(x, scale, dy, v, axes, eps) -> tuple[np.ndarray, np.ndarray]:
    """(h, magnitude): h = grad_x <dx(x; dy), v> = r^2 (3 p b xn - a xn - b s dy - p v),
    with a = mean(v s dy), b = mean(v xn), p = mean(s dy xn) over each row."""
    dy, v = np.asarray(dy, np.float64), np.asarray(v, np.float64)
    with np.errstate(all="ignore"):
        xn, r, s = _row_terms(x, scale, axes, eps)
        sdy = s * dy

        def mean(t):
            return np.mean(t, axis=axes, keepdims=True)

        products = (v * sdy, v * xn, sdy * xn)  # once each, for both their means
        a, b, p = (mean(t) for t in products)
        aa, ba, pa = (mean(np.abs(t)) for t in products)
        return (_combined(r * r, ((3 * p * b, xn), (a, xn), (b, sdy), (p, v)), np.subtract),
                _combined(r * r, ((3 * pa * ba, np.abs(xn)), (aa, np.abs(xn)), (ba, np.abs(sdy)), (pa, np.abs(v))),
                          np.add))


def _combined(factor, terms, op):
    """factor * (((c0 t0 op c1 t1) op c2 t2) op ...), left to right as the formula is written (the
    same bits), in place where the operands are arrays: each term's product made once."""
    c, t = terms[0]
    out = c * t
    for c, t in terms[1:]:
        out = op(out, c * t, out=into(out))
    return np.multiply(factor, out, out=into(out))


def _scored(s: CaseRun, got, reference, tol) -> tuple[str, str, dict]:
    """`got` against `reference(rows)` -> (values, magnitude) of those rows, computed block by
    block as it is scored (kept nowhere), each row's error relative to its RMS as grad_x's."""
    fmt, x = s.case.precision.compute, s.x
    blocked = Blocked(x.shape, row_blocks(x.shape, s.case.axes), reference)
    sc = score(got, blocked, fmt, fmt.name, tol, axes=s.case.axes)
    return sc.status, sc.message, {"metrics": sc.metrics, "tolerance": tol.to_json()}


def jvp(s: CaseRun) -> tuple[str, str, dict]:
    v = _tangent(s)
    _, t = s.adapter.jvp(s.adapter.build(s.spec), s.arrays.x, v.copy())  # a copy: v is kept for hvp
    x, axes = s.x, s.case.axes  # as handed over (an in-place kernel writes into the case's arrays)
    return _scored(s, t, lambda b: jvp_reference(x[b], s.spec.scale, v[b], axes, s.eps),
                   tolerance.grad_x(s.case.precision.compute, s.case.reduction_length))


def hvp(s: CaseRun) -> tuple[str, str, dict]:
    v = _tangent(s)
    h = s.adapter.hvp(s.adapter.build(s.spec), s.arrays.x, s.arrays.dy, v.copy())
    x, dy, axes = s.x, s.dy, s.case.axes
    return _scored(s, h, lambda b: hvp_reference(x[b], s.spec.scale, dy[b], v[b], axes, s.eps),
                   tolerance.hvp(s.case.precision.compute, s.case.reduction_length))


def as_check(check: str, diagnosis_id: str, statement):
    """The registry's run function of a property: `statement(s) -> (status, message, fields)`
    as a record; NotImplementedError from the adapter's method is `unsupported` for this case."""
    def run(s: CaseRun) -> dict:
        start = time.perf_counter()
        try:
            status, message, fields = statement(s)
        except NotImplementedError as exc:
            return s.record(check, "unsupported", str(exc) or f"the adapter does not implement what {check} needs")
        if "metrics" not in fields:  # the bitwise checks give their metrics alone
            fields = {"metrics": fields}
        if status == "fail":
            fields["diagnosis"] = diagnosis(diagnosis_id, "property", message)
        return s.record(check, status, message, seconds=round(time.perf_counter() - start, 6), **fields)
    return run
