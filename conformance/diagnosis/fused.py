"""The diagnoses of the fused forms: their own alternative semantics, and the catalogue's.

A fused form's result that does not pass is explained as a plain one is (diagnose.py): each
alternative is a short numpy prediction, the observed result is scored against it with the
check's own tolerance, and it explains the result only where it is sound (at the evidence
element, where the result is furthest from the oracle, the prediction is within the tolerance
and the oracle is not).  The form's own alternatives come first, each the classic bug of that
form (the residual not added, the sum rounded to a half dtype, 1 + w in the weight's dtype,
fp8 without saturation, rounded toward zero, the scale multiplied); where none explains it, the
plain catalogue is asked about the normalization inside the form (the sum normalized with
another epsilon is `eps-different` of the fused add); `unexplained` otherwise.

The ids and titles of the form's own alternatives are `OWN`, which the registry gives the
form's checks as their own diagnoses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from conformance.diagnosis.diagnose import diagnosis, diagnose
from conformance.diagnosis.formula import Arrays
from conformance.numerics.compare import nonfinite_mismatch, ulp_of

# id -> (class, finding title), the fused forms' own diagnoses.
OWN: dict[str, tuple[str, str]] = {
    # the fused add
    "normalizes-x": ("semantics", "{family}: x is normalized, not the sum x + residual"),
    "sum-lower-precision": ("precision", "{family}: the sum x + residual is computed in a lower precision "
                                         "than declared or than the input's"),
    "sum-precision-undeclared": ("precision", "{family}: the sum x + residual is kept in another precision "
                                              "than the adapter declares"),
    "residual-not-written": ("semantics", "{family}: the residual is not written back (the residual output "
                                          "is the residual input)"),
    "residual-is-output": ("semantics", "{family}: the residual output holds the normalized output, "
                                        "not the sum"),
    "residual-dtype": ("dtype", "{family}: the written-back residual is not in the input's dtype"),
    "fused-inputs-modified": ("property", "{family}: an input of the fused add is written in place where "
                                          "the adapter does not declare the in-place form"),
    "in-place-residual-not-sum": ("semantics", "{family}: the in-place form leaves the residual buffer "
                                               "without the sum"),
    "grad-residual-dropped": ("semantics", "{family}: the gradient of the written-back residual is not "
                                           "added to d(x) and d(residual)"),
    # the offset
    "offset-in-weight-dtype": ("precision", "{family}: offset + w is computed in the weight's half dtype"),
    "offset-in-float32": ("precision", "{family}: offset + w is computed in float32 for float64 weights"),
    "offset-ignored": ("semantics", "{family}: the offset is not added to the weight"),
    # the quantized output
    "fp8-no-saturation": ("range", "{family}: values beyond ±448 become NaN instead of saturating"),
    "fp8-toward-zero": ("semantics", "{family}: fp8 values are rounded toward zero, not to nearest even"),
    "fp8-scale-multiplied": ("semantics", "{family}: the output is multiplied by the scale instead of "
                                          "divided"),
    "quantized-dtype": ("dtype", "{family}: the quantized output is not float8_e4m3fn"),
    "fp8-half-intermediate": ("precision", "{family}: the output is rounded to the input's half dtype before it is "
                              "quantized"),
}


def own(id_: str, detail: str, evidence: dict | None = None) -> dict:
    """One of the form's own diagnoses (its class from OWN)."""
    return diagnosis(id_, OWN[id_][0], detail, evidence)


@dataclass(frozen=True)
class Alternative:
    id: str  # a key of OWN
    detail: str
    values: np.ndarray  # the prediction, float64, shaped as the result


def ulp_errors(observed, reference, fmt, magnitude=None) -> np.ndarray:
    """Each element's error in ULPs of `fmt` (or, with `magnitude`, in units of u relative to it);
    Inf where the NaN/Inf pattern differs, 0 where both are the same NaN/Inf."""
    o, ref = np.asarray(observed, np.float64), np.asarray(reference, np.float64)
    with np.errstate(all="ignore"):
        diff = np.abs(o - ref)
        err = diff / ulp_of(ref, fmt) if magnitude is None else diff / np.maximum(magnitude, fmt.tiny) / fmt.unit_roundoff
        bad = nonfinite_mismatch(o, ref.astype(fmt.np_dtype).astype(np.float64))
    return np.where(bad, np.inf, np.where(np.isnan(err), 0.0, err))


def explain(observed, expected, alternatives: list[Alternative], errors: Callable, limit: float) -> dict | None:
    """The first alternative that explains the observed result: within `limit` everywhere (in the
    unit `errors(observed, reference)` measures), and sound at the evidence element."""
    o = np.asarray(observed, np.float64)
    if o.shape != np.shape(expected) or not o.size:
        return None
    off = errors(o, expected)
    at = tuple(int(k) for k in np.unravel_index(int(np.argmax(off)), off.shape))
    for alt in alternatives:
        values = np.asarray(alt.values, np.float64)
        if values.shape != o.shape:
            continue
        mine = errors(o, values)
        if mine.max(initial=0.0) <= limit and off[at] > limit:
            ev = {"index": list(at), "got": float(o[at]), "expected": float(np.asarray(expected)[at]),
                  "predicted": float(values[at])}
            return own(alt.id, alt.detail, ev)
    return None


def catalogue(x, scale, dy, axes, eps, check: str, observed, compute, param, expected, fmt, tol, magnitude=None) -> dict:
    """The plain catalogue's diagnosis of the normalization inside a fused form (x: what is
    normalized, the sum for the fused add), or `unexplained` (diagnose.py)."""
    f64 = lambda v: np.asarray(v, np.float64)  # noqa: E731
    a = Arrays(f64(x), f64(scale), f64(dy), axes, eps, check, f64(observed), compute, param, expected=f64(expected))
    return diagnose(a, f64(expected), fmt, tol, magnitude)
