"""Diagnosis: which alternative semantics explains a result that does not pass.

Runs in the worker, on the real arrays.  Every hypothesis of the catalogue (hypotheses.py)
predicts the output; the observed result is scored against each prediction with the check's
own tolerance, and of those it passes the diagnosis is the one that explains it best:

1. sound: its prediction agrees with the observed value at the evidence element (where the
   result is furthest from the formula) and the formula does not, so a label never contradicts
   its own evidence; a fit with as many solved values as data explains nothing; and a
   degenerate prediction (all zeros, all NaN, one constant), or any prediction of a degenerate
   result, explains nothing when a range or precision hypothesis (the computation in the
   case's own formats) fits as well;
   A semantic or parameter prediction must also be DECISIVE times closer to the result than the
   formula is (a result just beyond the tolerance is fitted by any small change of the formula);
2. the fewest values solved from the observed result: a prediction from the inputs alone before
   a solved epsilon or divisor, before a factor per row (a fit always fits a little better);
3. then the smallest error (predictions within a factor 4 of the best, or within 1 ULP / unit of
   the gradient's magnitude, tie: rounding noise tells nothing apart), then the catalogue's order.

None passing is `unexplained`, an honest answer; so is a diagnosis that fails (it never raises:
the reason is its detail).  A record whose check raised, crashed or hung is diagnosed from its
message (`of_error`); the grouping of diagnoses into findings is the registry's
(conformance/checks/registry.py), the laws of solved parameters across a finding's cases
reports/findings.py's.
"""
from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np

from conformance.diagnosis import sample
from conformance.diagnosis.formula import Arrays, Prediction
from conformance.diagnosis.hypotheses import CATALOGUE
from conformance.numerics import tolerance
from conformance.numerics.compare import nonfinite_mismatch, score, ulp_of
from conformance.numerics.dtypes import FORMATS
from conformance.numerics.threads import ordered

CLASSES = ("semantics", "precision", "parameters", "dtype", "range", "special-values", "crash", "configuration",
           "property", "unexplained")
# The classes whose hypotheses are the computation in the case's own range and precision (IEEE
# special values included): where one of them fits, a degenerate prediction of another class
# explains nothing.
OWN_FORMATS = ("range", "precision", "special-values")
TIE = 4.0  # predictions whose errors are within this factor of the best one fit as well
# A semantic or parameter prediction explains a result only if it is this many times closer to it
# than the formula is: a float32 sum 16 ULP off on a long spiky row is also "fitted" by ignoring an
# epsilon that moves the result by 13 ULP, a coincidence, not a cause (unexplained is the honest
# answer there).  The computation in the case's own formats (OWN_FORMATS) models rounding itself,
# which is all a marginal result may show: it is exempt.
DECISIVE = 2.0


def diagnosis(id_: str, klass: str, detail: str, evidence: dict | None = None) -> dict:
    out = {"id": id_, "class": klass, "detail": detail}
    if evidence:
        out["evidence"] = evidence
    return out


def elementwise(observed, reference, fmt, magnitude) -> np.ndarray:
    """Each element's error in the check's own unit (ULPs of `fmt`, or units of u relative to the
    magnitude for gradients); Inf where the NaN/Inf pattern differs."""
    with np.errstate(all="ignore"):
        diff = np.abs(observed - reference)
        err = diff / ulp_of(reference, fmt) if magnitude is None else \
            diff / np.maximum(magnitude, fmt.tiny) / fmt.unit_roundoff
        bad = nonfinite_mismatch(observed, reference.astype(fmt.np_dtype).astype(np.float64))
    # NaN: both sides the same NaN/Inf (the pattern decides); Inf: an error too large for float64
    # (a float64 value against an exact 0, whose ULP is 5e-324), which is no match.
    return np.where(bad, np.inf, np.where(np.isnan(err), 0.0, err))


def _worst(observed, expected, fmt, magnitude) -> tuple | None:
    """The element where the result is furthest from the formula, in the check's own unit."""
    if observed.shape != expected.shape or not observed.size:
        return None
    err = elementwise(observed, expected, fmt, magnitude)
    return tuple(int(k) for k in np.unravel_index(int(np.argmax(err)), err.shape))


def _evidence(observed: np.ndarray, expected: np.ndarray, predicted: np.ndarray | None, at: tuple | None,
              solved: dict | None = None) -> dict | None:
    """Got / expected / predicted at `at` (where the result is furthest from the formula), and the
    parameters the hypothesis solved.  The values are floats: full precision in results.jsonl."""
    out = dict(solved or {})
    if at is not None:
        out.update(index=list(at), got=float(observed[at]), expected=float(expected[at]))
        if predicted is not None and np.shape(predicted) == observed.shape:
            out["predicted"] = float(np.asarray(predicted)[at])
    return out or None


class Exact(float):
    """A float that shows every digit whatever format renders it (repr: 17 significant digits
    where float64 needs them): the reports' short formats (.3g) would hide the very difference an
    evidence line shows (`got -3.3, expected -3.3`).  JSON writes it as the float it is."""

    def __format__(self, spec: str) -> str:
        return repr(float(self)) if spec and spec[-1] in "eEfFgG%" else float.__format__(self, spec)


def evidence_text(e: dict) -> str:
    """An evidence line with every digit that tells the values apart (repr: 17 significant
    digits where float64 needs them, at least the 9 of a float32)."""
    if not e or "index" not in e:
        return ""
    text = f"at {e['index']}: got {e['got']!r}, expected {e['expected']!r}"
    return text + (f", the hypothesis predicts {e['predicted']!r}" if "predicted" in e else "")


def _never_raises(fn):
    """A diagnosis that fails is `unexplained`, with the reason: the record keeps its status."""
    def guarded(*args, **kw) -> dict:
        try:
            return fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001
            return diagnosis("unexplained", "unexplained", f"the diagnosis itself failed: {type(exc).__name__}: {exc}")
    return functools.wraps(fn)(guarded)


@_never_raises
def diagnose(a: Arrays, expected: np.ndarray, fmt, tol, magnitude=None) -> dict:
    """The diagnosis of a non-passing `a.check` result (`a.observed`) against `expected`; never
    raises (a failure of the diagnosis itself is `unexplained`, with the reason).

    A float64 result that fits no hypothesis at float64's tolerance is tried again
    at float32's: two findings at once (another semantics, computed in float32)."""
    expected = np.asarray(expected, np.float64)
    if sample.needed(a):
        if a.observed.shape != expected.shape:
            return diagnosis("unexplained", "unexplained", f"not diagnosed: the case has {a.x.size} elements, above "
                             f"the {sample.SAMPLE_ELEMENTS} diagnosed whole, and its shape differs")
        if a.check == "grad_scale":  # a sum over every row: no sample gives it; the own-format hypotheses only
            return _diagnose_dscale(a, expected, fmt, tol, magnitude)
        mag = magnitude if magnitude is None or np.shape(magnitude) == expected.shape else None
        rows = sample.sampled(a, sample.row_errors(elementwise(a.observed, expected, fmt, mag), a.axes))
        if rows is not None:
            return diagnose_sample(rows, rows.rows_of(expected), None if mag is None else rows.rows_of(mag), fmt,
                                   tol)
    return _diagnose(a, expected, fmt, tol, magnitude)


@_never_raises
def _diagnose_dscale(a: Arrays, expected: np.ndarray, fmt, tol, magnitude) -> dict:
    """dscale of a large case (above sample.SAMPLE_ELEMENTS), whole: the own-format hypotheses only."""
    found = _diagnose(a, np.asarray(expected, np.float64), fmt, tol, magnitude, classes=OWN_FORMATS)
    if found["id"] == "unexplained":
        return {**found, "detail": f"{found['detail']}: {sample.DSCALE_NOTE}"}
    return {**found, "detail": f"{found['detail']} ({sample.DSCALE_NOTE})", "sampled": sample.DSCALE_NOTE}


@_never_raises
def diagnose_sample(rows: sample.Sample, expected: np.ndarray, magnitude, fmt, tol) -> dict:
    """The diagnosis of a large case's forward or dx on a sample of its rows (sample.sampled), its
    evidence in the case's own coordinates, the record saying it was sampled."""
    a = dataclasses.replace(rows.arrays, expected=expected)
    found = _diagnose(a, expected, fmt, tol, magnitude)
    if "index" in found.get("evidence", {}):
        found["evidence"] = {**found["evidence"], "index": rows.index(found["evidence"]["index"])}
    return {**found, "detail": f"{found['detail']} ({rows.note})", "sampled": rows.note}


def _diagnose(a: Arrays, expected: np.ndarray, fmt, tol, magnitude, classes: tuple[str, ...] | None = None) -> dict:
    tol_for = {"forward": lambda f: tolerance.forward(f, _n(a)), "grad_x": lambda f: tolerance.grad_x(f, _n(a)),
               "grad_scale": lambda f: tolerance.grad_scale(f, _n(a), _rows(a))}[a.check]
    if a.observed.shape != expected.shape:
        if a.observed.size != expected.size:
            return diagnosis("shape-differs", "semantics", f"returns shape {a.observed.shape} for "
                             f"{expected.shape}", None)
        # Same values in another shape (a scalar as (1,)): diagnose the values, name the shape.
        got = a.observed.shape
        a = dataclasses.replace(a, observed=a.observed.reshape(expected.shape))
        axes = a.axes if a.check != "grad_scale" else None
        if score(a.observed, expected, fmt, a.observed.dtype.name, tol, magnitude=magnitude, axes=axes).status == "pass":
            return diagnosis("shape-differs", "semantics", f"returns shape {got} for {expected.shape}; the values are right",
                             None)
    if magnitude is not None and np.shape(magnitude) != expected.shape:
        magnitude = None
    found = _best_explaining(a, expected, fmt, tol, magnitude, tol_for, classes)
    if found is None and a.compute == "float64":
        lower = FORMATS["float32"]
        found = _best_explaining(a, expected, lower, tol_for(lower), magnitude, tol_for, classes)
        if found is not None:
            found["detail"] += ", with float32 accuracy for a float64 input"
    if found is None:
        at = _worst(a.observed, expected, fmt, magnitude)
        return diagnosis("unexplained", "unexplained", "no hypothesis of the catalogue explains the result",
                         _evidence(a.observed, expected, None, at))
    return found


@dataclasses.dataclass(frozen=True)
class _Fit:
    hypothesis: object
    order: int  # the hypothesis's place in the catalogue, then the prediction's in its list
    prediction: Prediction
    error: float  # the largest error, in the case's own unit (ULPs or units of the gradient's magnitude)
    degenerate: bool


def _predictions(found) -> list[Prediction]:
    """A hypothesis's answer as Predictions: None, one, a tuple (values, detail[, judged_in]), or a list."""
    if found is None:
        return []
    out = []
    for p in found if isinstance(found, list) else [found]:
        if isinstance(p, Prediction):
            out.append(p)
        elif p:
            values, detail, *judged_in = p
            out.append(Prediction(values, detail, judged_in[0] if judged_in else None))
    return out


def _degenerate(values: np.ndarray) -> bool:
    """All NaN, all zeros, one constant: a prediction that carries no information about the data."""
    if values.size < 2:
        return False
    finite = values[np.isfinite(values)]
    return not finite.size or bool(np.all(finite == finite.flat[0]))


def _agrees_at(at, observed, predicted, expected, fmt, limit, mag, magnitude, own_format: bool) -> bool:
    """At the evidence element the prediction is within the tolerance of the observed value, where
    the formula is not: otherwise the label would contradict its own evidence (got -5.86, predicts
    0), or explain nothing the formula does not (a prediction indistinguishable from the formula,
    passing only because the observed one is close to both).  A hypothesis about the precision
    itself (judged in its own format) claims the formula, less accurately: only the first holds."""
    if at is None:
        return True

    def err(reference, m) -> float:
        return float(elementwise(observed[at][None], np.asarray(reference)[at][None], fmt,
                                  None if m is None else np.asarray(m)[at][None])[0])

    return err(predicted, mag) <= limit and (own_format or err(expected, magnitude) > limit)


def _best_explaining(a: Arrays, expected, fmt, tol, magnitude, tol_for, classes=None) -> dict | None:
    axes = a.axes if a.check != "grad_scale" else None
    observed = a.observed
    dtype_name = observed.dtype.name
    at = _worst(observed, expected, fmt, magnitude)
    formula_error = float(elementwise(observed, expected, fmt, magnitude).max(initial=0.0))

    def fitting(entry) -> list[_Fit]:  # the predictions of one hypothesis that explain the result
        k, h = entry
        try:
            predictions = _predictions(h.predict(a))
        except Exception:  # noqa: BLE001 - a hypothesis that cannot be evaluated here explains nothing
            return []
        out = []
        for j, p in enumerate(predictions):
            values = np.asarray(p.values, np.float64)
            if values.shape != observed.shape:
                continue
            own = FORMATS[p.judged_in] if p.judged_in else None  # a hypothesis about the precision itself
            # A gradient's rounding error scales with its terms: the hypothesis's own, where larger.
            mag = None if magnitude is None else np.maximum(magnitude, np.abs(np.nan_to_num(values)))
            judged = score(observed, values, own or fmt, dtype_name, tol_for(own) if own else tol, magnitude=mag,
                           axes=axes)
            if judged.status != "pass":
                continue
            limit = (tol_for(own) if own else tol).limit
            # score() reads an ULP error that overflows float64 as 0: checked here element by element.
            if elementwise(observed, values, own or fmt, mag).max(initial=0.0) > limit:
                continue
            if p.free and 2 * p.free > observed.size:  # as many solved values as data: a fit, no explanation
                continue
            if not _agrees_at(at, observed, values, expected, own or fmt, limit, mag, magnitude, own is not None):
                continue
            err = float(elementwise(observed, values, fmt, mag).max(initial=0.0))
            if own is None and h.klass not in OWN_FORMATS and err > formula_error / DECISIVE:
                continue  # a result just beyond the tolerance, which any small change of the formula also fits
            out.append(_Fit(h, k * 1000 + j, p, err, _degenerate(values)))
        return out

    # The hypotheses are independent: a kernel-sized case's are evaluated on the machine's cores
    # (threads.ordered), their fits taken in the catalogue's order as a loop would.
    tried = [(k, h) for k, h in enumerate(CATALOGUE)
             if a.check in h.checks and (classes is None or h.klass in classes)]
    fits: list[_Fit] = [f for found in (ordered(fitting, tried) if sample.needed(a) else map(fitting, tried))
                        for f in found]
    if not fits:
        return None
    if any(f.hypothesis.klass in OWN_FORMATS for f in fits):
        # An observed result that is itself degenerate (all zeros after an underflow) tells no
        # semantics apart: every prediction near zero fits it.
        # (All NaN/Inf observed is a pattern the special-values hypothesis reads, not vacuous.)
        vacuous = _degenerate(observed) and bool(np.isfinite(observed).all())
        fits = [f for f in fits if f.hypothesis.klass in OWN_FORMATS or not (f.degenerate or vacuous)]
    # A prediction from the inputs alone that fits explains more than one that needed values of
    # the observed result: the fewest solved values first, then the smallest error, then the order.
    fewest = min(f.prediction.free for f in fits)
    fits = [f for f in fits if f.prediction.free == fewest]
    best = min(f.error for f in fits)
    chosen = min((f for f in fits if f.error <= TIE * max(best, 1.0)), key=lambda f: f.order)
    p, h = chosen.prediction, chosen.hypothesis
    return diagnosis(h.id, h.klass, p.detail or h.title,
                     _evidence(observed, expected, np.asarray(p.values, np.float64), at, p.evidence))


def _n(a: Arrays) -> int:
    return int(np.prod([a.x.shape[k] for k in a.axes])) if a.axes else 1


def _rows(a: Arrays) -> int:
    n = _n(a)
    return a.x.size // n if n else 0


_RAISED = re.compile(r"^(\w+) raised (\w+)")


def of_error(message: str, record: dict | None = None) -> dict:
    """A record whose check raised, crashed or hung: class `crash`, id naming where, what and its
    stable cause ("build-raised-ValueError-scale-assign-shape"; "adapter-error-..." for the
    adapter's own bug), checked against what the case (`record`'s parameters) asked for
    (conformance/diagnosis/crashes.py); the raw message stays the record's."""
    from conformance.diagnosis.crashes import crash

    found = crash(message, record)
    if found:
        return {"class": "crash", **found}
    m = _RAISED.match(message)
    if m:
        return diagnosis(f"{m.group(1)}-raised-{m.group(2)}", "crash", message)
    if "timed out" in message:
        return diagnosis("timed-out", "crash", message)
    if "crashed" in message or "worker" in message:
        return diagnosis("worker-crashed", "crash", message)
    return diagnosis("error", "crash", message)
