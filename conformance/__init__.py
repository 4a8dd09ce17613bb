"""Cross-framework conformance suite for RMS normalization.

`y = x * rsqrt(mean(x**2, axes) + eps) * scale`, run through one adapter per
implementation, scored against a float64 oracle.  See README.md and docs/architecture.md.
"""

__version__ = "0.1.0"
