"""Diagnosis: which alternative semantics explains a result that does not pass.

Runs in the worker, on the real arrays.  Each hypothesis of the catalogue
(hypotheses.py, simplest first) predicts the output; the observed result is
scored against the prediction with the check's own tolerance, and the first
prediction it passes against is the diagnosis.  None passing is `unexplained`,
an honest answer.  A record whose check raised, crashed or hung is diagnosed from its
message (`of_error`); the grouping of diagnoses into findings is the registry's
(conformance/checks/registry.py).
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from conformance.diagnosis.formula import Arrays
from conformance.diagnosis.hypotheses import CATALOGUE
from conformance.numerics import tolerance
from conformance.numerics.compare import score
from conformance.numerics.dtypes import FORMATS

CLASSES = ("semantics", "precision", "parameters", "dtype", "range", "special-values", "crash", "configuration",
           "property", "unexplained")


def diagnosis(id_: str, klass: str, detail: str, evidence: dict | None = None) -> dict:
    out = {"id": id_, "class": klass, "detail": detail}
    if evidence:
        out["evidence"] = evidence
    return out


def _evidence(observed: np.ndarray, expected: np.ndarray, predicted: np.ndarray | None) -> dict | None:
    """Got / expected / predicted at the element where the result is furthest from the formula."""
    if observed.shape != expected.shape or not observed.size:
        return None
    with np.errstate(all="ignore"):
        gap = np.abs(observed - expected)
        gap = np.where(np.isnan(gap), np.where(np.isnan(observed) == np.isnan(expected), 0.0, np.inf), gap)
    i = np.unravel_index(int(np.argmax(gap)), gap.shape)
    out = {"index": [int(k) for k in i], "got": float(observed[i]), "expected": float(expected[i])}
    if predicted is not None and np.shape(predicted) == observed.shape:
        out["predicted"] = float(np.asarray(predicted)[i])
    return out


def diagnose(a: Arrays, expected: np.ndarray, fmt, tol, magnitude=None) -> dict:
    """The diagnosis of a non-passing `a.check` result (`a.observed`) against `expected`.

    A float64 result that fits no hypothesis at float64's tolerance is tried again
    at float32's: two findings at once (another semantics, computed in float32)."""
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
    found = _first_explaining(a, expected, fmt, tol, magnitude, tol_for)
    if found is None and a.compute == "float64":
        lower = FORMATS["float32"]
        found = _first_explaining(a, expected, lower, tol_for(lower), magnitude, tol_for)
        if found is not None:
            found["detail"] += ", with float32 accuracy for a float64 input"
    return found or diagnosis("unexplained", "unexplained", "no hypothesis of the catalogue explains the result",
                              _evidence(a.observed, expected, None))


def _first_explaining(a: Arrays, expected, fmt, tol, magnitude, tol_for) -> dict | None:
    axes = a.axes if a.check != "grad_scale" else None
    observed = a.observed
    dtype_name = observed.dtype.name
    for h in CATALOGUE:
        if a.check not in h.checks:
            continue
        try:
            found = h.predict(a)
        except (ValueError, ZeroDivisionError, FloatingPointError):
            found = None
        for predicted, detail, *judged_in in found if isinstance(found, list) else [found] if found else []:
            own = FORMATS[judged_in[0]] if judged_in else None  # a hypothesis about the precision itself
            # A gradient's rounding error scales with its terms: the hypothesis's own, where larger.
            mag = None if magnitude is None else np.maximum(magnitude, np.abs(np.nan_to_num(predicted)))
            if score(observed, predicted, own or fmt, dtype_name, tol_for(own) if own else tol, magnitude=mag,
                     axes=axes).status == "pass":
                return diagnosis(h.id, h.klass, detail or h.title, _evidence(observed, expected, predicted))
    return None


def _n(a: Arrays) -> int:
    return int(np.prod([a.x.shape[k] for k in a.axes])) if a.axes else 1


def _rows(a: Arrays) -> int:
    n = _n(a)
    return a.x.size // n if n else 0


_RAISED = re.compile(r"^(\w+) raised (\w+)")


def of_error(message: str) -> dict:
    """A record whose check raised, crashed or hung: class `crash`, id naming where and what."""
    m = _RAISED.match(message)
    if m:
        return diagnosis(f"{m.group(1)}-raised-{m.group(2)}", "crash", message)
    if "timed out" in message:
        return diagnosis("timed-out", "crash", message)
    if "crashed" in message or "worker" in message:
        return diagnosis("worker-crashed", "crash", message)
    return diagnosis("error", "crash", message)
