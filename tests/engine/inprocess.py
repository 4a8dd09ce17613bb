"""Adapters evaluated in this process, through the checks' entry point: no worker, no CLI.

`evaluate(adapter, case)` (conformance/checks/pipeline.py) is what a worker runs for each case;
here it runs on planted numpy layers directly, so a test costs milliseconds.  Never use it for
the adapters of tests/planted/hostile.py or the crashing and hanging ones of
tests/planted/adapters.py: they end or stop their process, which here is pytest's.
"""
from __future__ import annotations

import importlib
import warnings
from functools import cache

from conformance.cases.case import parse_case
from conformance.checks.pipeline import evaluate

NUMPY_REFERENCE = "conformance.adapters.numpy_reference:NumpyReference"


@cache
def loaded(ref: str):
    """The adapter of "module:Class", instantiated and loaded once per test session."""
    module, name = ref.split(":")
    adapter = getattr(importlib.import_module(module), name)()
    adapter.load()
    return adapter


def run(ref: str, cases) -> list[dict]:
    """Every record of `cases` (ids or Case objects) on the adapter `ref`, as a worker returns them
    (computed once per session: a test reads them, never changes them)."""
    return list(_run(ref, tuple(c if isinstance(c, str) else c.id for c in cases)))


@cache
def _run(ref: str, case_ids: tuple[str, ...]) -> tuple[dict, ...]:
    adapter = loaded(ref)
    out = []
    with warnings.catch_warnings():  # numpy's overflow warnings: a worker sends them to its log
        warnings.simplefilter("ignore", RuntimeWarning)
        for case in case_ids:
            out += evaluate(adapter, parse_case(case))
    return tuple(out)


def by_check(ref: str, case: str) -> dict[str, dict]:
    """The records of one case, by check."""
    return {r["check"]: r for r in run(ref, [case])}


def not_passing(records: list[dict]) -> list[dict]:
    return [r for r in records if r["status"] not in ("pass", "unsupported")]
