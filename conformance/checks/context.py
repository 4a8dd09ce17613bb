"""`CaseRun`: one case on one adapter while its checks run.

The pipeline (pipeline.py) builds the layer once and makes a CaseRun; each check of the registry
(registry.py) reads what it needs from it.  The forward output and the gradients are computed
once, by the first check that asks, and shared by the checks that depend on them (the
registry's `after`), so `forward` and `out_dtype` judge one call, `grad_x` and `grad_scale` one
backward pass.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.cases.case import Case, CaseArrays
from conformance.checks import untouched
from conformance.checks.records import record
from conformance.diagnosis import sample
from conformance.diagnosis.diagnose import diagnose, diagnose_sample, elementwise
from conformance.diagnosis.hypotheses import Arrays
from conformance.numerics.oracle import Oracle, Reference
from conformance.numerics.threads import ordered
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
        # x and dy as handed over (their snapshot): the oracle is computed when a check scores it,
        # after the calls, and an in-place kernel may have written into the case's own arrays.
        self.x, self.dy = (untouched.handed_over(before, arrays, name) for name in ("x", "dy"))
        self.oracle = Oracle(self.x, scale, self.dy, case.axes, eps)
        self.y = None  # the forward output where it is numeric (set by the forward check)
        self.parameters_outcome = None  # (status, message, fields) of the parameters check, or None
        self._once: dict[str, Called] = {}

    @property
    def ref(self) -> Reference:
        """The oracle over the whole case, every field (the checks that read whole arrays; the
        numeric ones score a kernel-sized case block by block: `oracle.blocked`)."""
        return self.oracle.full()

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

    def diagnose(self, check: str, observed: np.ndarray, fmt, tol) -> dict:
        """The diagnosis of a result that does not pass, on the case's real arrays: a kernel-sized
        case's forward and dx on a sample of its rows (sample.py), taken before anything is made
        float64, their reference computed for those rows only."""
        f64 = lambda v: np.asarray(v).astype(np.float64)  # noqa: E731
        prec, oracle = self.case.precision, self.oracle
        own = Arrays(self.x, self.scale, self.dy, self.case.axes, self.eps, check, observed,
                     prec.compute.name, prec.param.name)
        whole = lambda expected: dataclasses.replace(  # noqa: E731
            own, x=f64(own.x), scale=f64(own.scale), dy=f64(own.dy), observed=f64(observed), expected=expected)
        if check == "grad_scale":
            expected, magnitude = oracle.dscale()
            return diagnose(whole(expected), expected, fmt, tol, magnitude)
        field = "y" if check == "forward" else "dx"
        if sample.needed(own) and observed.shape == oracle.shape and own.axes:
            blocked = oracle.blocked(field)

            def errors(block):  # each row's largest error, the oracle's block computed for it
                ref, magnitude = blocked.at(block)
                return sample.row_errors(elementwise(f64(observed[block] if block else observed), ref, fmt, magnitude),
                                         own.axes)
            rows = sample.sampled(own, np.concatenate(list(ordered(errors, blocked.blocks))))
            ref = Oracle(rows.arrays.x, rows.arrays.scale, rows.arrays.dy, (1,), self.eps).full()
            return diagnose_sample(rows, ref.y if field == "y" else ref.dx, None if field == "y" else ref.dx_magnitude,
                                   fmt, tol)
        ref = oracle.full()
        expected, magnitude = (ref.y, None) if field == "y" else (ref.dx, ref.dx_magnitude)
        return diagnose(whole(expected), expected, fmt, tol, magnitude)
