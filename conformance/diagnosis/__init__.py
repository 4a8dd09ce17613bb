"""Diagnosis: the catalogue of alternative semantics and the search that explains a result."""
