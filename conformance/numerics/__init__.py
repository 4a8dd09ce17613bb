"""Numerics: floating-point formats, the float64 oracle, tolerances, scoring, input layouts."""
