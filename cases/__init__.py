"""The case model, its dimensions and the named suites."""

from conformance.cases.case import Case, CaseArrays, materialize

__all__ = ["Case", "CaseArrays", "materialize"]
