"""`CaseRun`: one case on one adapter while its checks run.

The pipeline (pipeline.py) builds the layer once and makes a CaseRun; each check of the registry
(registry.py) reads what it needs from it.  The forward output and the gradients are computed
once, by the first check that asks, and shared by the checks that depend on them (the
registry's `after`), so `forward` and `out_dtype` judge one call, `grad_x` and `grad_scale` one
backward pass.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.cases.case import Case, CaseArrays
from conformance.checks.records import record
from conformance.diagnosis.diagnose import diagnose
from conformance.diagnosis.hypotheses import Arrays
from conformance.numerics.oracle import Reference, oracle
from conformance.spec import LayerSpec


@dataclass(frozen=True)
class Called:
    """What one call into the adapter gave: its value, or the exception it raised, and its seconds."""

    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


def _call(fn, *args) -> Called:
    start = time.perf_counter()
    try:
        value = fn(*args)
    except BaseException as exc:  # the adapter's SystemExit too: that check's error, not the worker's end
        return Called(error=exc, seconds=time.perf_counter() - start)
    return Called(value, seconds=time.perf_counter() - start)


class CaseRun:
    """The layer, the oracle and the results the checks of one case share (working state,
    not a value: the memoized calls fill in as the checks run)."""

    def __init__(self, adapter, case: Case, spec: LayerSpec, arrays: CaseArrays, layer, config: dict | None,
                 config_problem: str, eps: float, scale: np.ndarray, before: dict[str, np.ndarray]):
        self.adapter, self.case, self.spec, self.arrays, self.layer = adapter, case, spec, arrays, layer
        self.config, self.config_problem = config, config_problem
        self.eps, self.scale = eps, scale  # what the layer really applies (effective.py)
        self.before = before  # the bits of the arrays handed over, taken before build (untouched.py)
        self.common = {"epsilon_used": eps}
        self.ref: Reference = oracle(arrays.x, scale, arrays.dy, case.axes, eps)
        self.y = None  # the forward output where it is numeric (set by the forward check)
        self.parameters_outcome = None  # (status, message, fields) of the parameters check, or None
        self._once: dict[str, Called] = {}

    def record(self, check: str, status: str, message: str = "", **fields) -> dict:
        return record(self.case, self.adapter.name, check, status, message, **fields, **self.common)

    def once(self, key: str, fn, *args) -> Called:
        """`fn(*args)` the first time `key` is asked for; what it gave, every time."""
        if key not in self._once:
            self._once[key] = _call(fn, *args)
        return self._once[key]

    def forward(self) -> Called:
        """`call(layer, x)`, once."""
        return self.once("call", self.adapter.call, self.layer, self.arrays.x)

    def gradients(self) -> Called:
        """`grad(layer, x, dy)`, once."""
        return self.once("grad", self.adapter.grad, self.layer, self.arrays.x, self.arrays.dy)

    def diagnose(self, check: str, observed, expected, fmt, tol, magnitude) -> dict:
        """The diagnosis of a result that does not pass, on the case's real arrays."""
        f64 = lambda v: np.asarray(v).astype(np.float64)  # noqa: E731
        prec = self.case.precision
        a = Arrays(f64(self.arrays.x), f64(self.scale), f64(self.arrays.dy), self.case.axes, self.eps, check,
                   f64(observed), prec.compute.name, prec.param.name, expected=expected)
        return diagnose(a, expected, fmt, tol, magnitude)
