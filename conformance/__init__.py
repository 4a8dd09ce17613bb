"""Cross-framework conformance suite for RMS normalization.

`y = x * rsqrt(mean(x**2, axes) + eps) * scale`, run through one adapter per
implementation, scored against a float64 oracle.  See README.md and docs/architecture.md.
"""

__version__ = "0.1.0"


def check(adapter, suite: str = "smoke", **options):
    """Run `suite` through `adapter` as `conformance run` does and return the Verdict of its
    reports (`.failed`, `.gating`, `.other`, `.uncovered`); see conformance/integrations/api.py."""
    from conformance.integrations.api import check as _check

    return _check(adapter, suite, **options)
