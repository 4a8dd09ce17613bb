"""The tolerance policy: every number a pass/fail decision uses, with its reasoning.

Notation: u = 2**-p is the unit roundoff of the case's compute dtype (float16:
2**-11, bfloat16: 2**-8, float32: 2**-24, float64: 2**-53), n the number of
elements in one normalized slice, B the number of slices (rows).

Forward, scored in ULPs of the case dtype against the exact float64 result.
  A good implementation evaluates sum(x**2) with a blocked or pairwise
  reduction: relative error <= (log2(n) + 1) u (the squares and the sum), plus
  one rounding each for the mean, the +eps, the sqrt and the reciprocal; r sees
  half of the sum's error through the square root.  Two more roundings for
  x*r and *scale and the final rounding to the output dtype give

      |y - y_ref| / |y_ref| <= (log2(n)/2 + FORWARD_BASE_UNITS) u.

  A relative error of k*u is at most k ULPs (one ULP of v is between u|v| and
  2u|v|), so that bound, in ULPs, is the tolerance.  An implementation that
  upcasts half precision has roughly 0.5 ULP; one that sums n float16 squares
  one after another can lose every bit (the running sum stagnates), which is
  a finding, not noise.  For float64 cases the oracle's own error is of the
  same size, so the allowance is counted twice.

Gradients, scored in units of u relative to the gradient's *magnitude* (the
sum of |terms| it is computed from, see oracle.py), element by element.
  dx = r*s*dy - x*r**3*mean(s*dy*x): r enters cubed (3 times r's error), the
  projection is a mean of n products (log2(n) + 2), and each term carries a
  few roundings.  dscale sums B products dy*x*r (log2(B) + r's error + 2).
  Measuring against the magnitude rather than |dx| keeps cancellation, which
  no floating-point evaluation avoids, from being mistaken for a bug; below the
  smallest normal number the denominator is floored there, because rounding to
  a subnormal is an absolute, not a relative, error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from conformance.numerics.dtypes import FloatFormat

# Roundings outside the reduction in the forward pass (see module docstring):
# mean, +eps, sqrt, reciprocal, x*r, *scale, final cast, and one of slack for
# a fused rsqrt that is faithfully rather than correctly rounded.
FORWARD_BASE_UNITS = 8.0
# Roundings outside the reductions in the gradients: 3x r's fixed part plus the
# products forming each term, the subtraction and the final cast.
GRAD_BASE_UNITS = 16.0


@dataclass(frozen=True)
class Tolerance:
    metric: str  # "ulp" (forward) or "units" (gradients: error / magnitude / u)
    limit: float

    def to_json(self) -> dict:
        return {"metric": self.metric, "limit": round(self.limit, 3)}


def _log2(k: int) -> float:
    return math.log2(k) if k > 1 else 0.0


def _oracle_factor(fmt: FloatFormat) -> float:
    # The float64 oracle's error only matters when the case is float64 as well.
    return 2.0 if fmt.digits >= 53 else 1.0


def forward(fmt: FloatFormat, n: int) -> Tolerance:
    return Tolerance("ulp", _oracle_factor(fmt) * (FORWARD_BASE_UNITS + _log2(n) / 2))


def grad_x(fmt: FloatFormat, n: int) -> Tolerance:
    r_error = 3 * (_log2(n) / 2)
    projection = _log2(n) + 2
    return Tolerance("units", _oracle_factor(fmt) * (GRAD_BASE_UNITS + r_error + projection))


def grad_scale(fmt: FloatFormat, n: int, rows: int) -> Tolerance:
    return Tolerance("units", _oracle_factor(fmt) * (GRAD_BASE_UNITS + _log2(n) / 2 + _log2(rows)))


def hvp(fmt: FloatFormat, n: int) -> Tolerance:
    """The HVP is the gradient of a gradient: r enters squared, three row means (a, b, p in
    properties.hvp_reference) each carry a reduction's error, and the backward of dx repeats
    dx's own roundings; scored, like the gradients, against the magnitude of its terms."""
    r_error = 2 * (_log2(n) / 2)
    means = 3 * (_log2(n) + 2)
    return Tolerance("units", _oracle_factor(fmt) * (2 * GRAD_BASE_UNITS + r_error + means))


# -- the fused forms (conformance/numerics/fused.py, conformance/checks/fused*.py) ----------------
def residual_sum(fmt: FloatFormat) -> Tolerance:
    """The written-back residual of the fused add: x + residual is exact in float32 for two
    half-precision values (and in float64 for two float32s), so whether a kernel adds in the
    input dtype or in float32 and rounds once, the stored sum is the exact sum correctly rounded:
    within half an ULP, nothing more."""
    return Tolerance("ulp", 0.5)


def quantized_zone(fmt: FloatFormat, n: int) -> float:
    """Where a quantized output may be one fp8 unit off the oracle: the exact value x·r·s/scale
    lies within this relative distance of a rounding boundary of the fp8 grid.  A correct kernel
    quantizes an intermediate in float32 (or the compute dtype) carrying at most the forward
    pass's relative error, (FORWARD_BASE_UNITS + log2(n)/2) u of the compute dtype (the reasoning
    of the forward tolerance above); that error can move a value across a boundary, never by a
    whole fp8 unit (3 mantissa bits: u = 2**-4).  Everywhere else the fp8 value is exact: a
    rounding toward zero is off by one unit where the value is far from a boundary, and fails."""
    return forward(fmt, n).limit * fmt.unit_roundoff


def quantized() -> Tolerance:
    """fp8 units (steps of the float8_e4m3fn grid): exact, or one unit inside quantized_zone."""
    return Tolerance("fp8-units", 1.0)


# Which of two semantics an output follows (the residual sum rounded to the input dtype or kept in
# float32; 1 + w computed in float32 or in the weight's dtype): the two differ by one rounding of
# the input to the normalization, under an ULP of the output, so no tolerance tells them apart.
# On the elements where the two candidates, correctly rounded to the output dtype, differ, a kernel
# that rounds its result once equals one of them nearly everywhere: it follows that one when it
# equals it on at least SEMANTICS_SHARE of those elements and SEMANTICS_RATIO times as often as
# the other, on at least SEMANTICS_MIN_ELEMENTS of them; otherwise the answer is "indistinguishable"
# (a kernel with a few ULPs of noise of its own, or a case where the two semantics coincide).
SEMANTICS_MIN_ELEMENTS = 4
SEMANTICS_SHARE = 0.6
SEMANTICS_RATIO = 3.0
