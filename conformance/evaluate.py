"""One case through one adapter: materialize, build, call, differentiate, score.

Runs inside the adapter's worker process and returns the finished records, so
only small JSON crosses the process boundary.
"""
from __future__ import annotations

import re
import time
import traceback

import numpy as np

from conformance import tolerance
from conformance.adapter import Adapter
from conformance.cases.case import Case, layer_spec, materialize
from conformance.compare import score
from conformance.oracle import oracle

CHECKS = ("forward", "grad_x", "grad_scale")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Keras colours its error messages


def record(case: Case, adapter_name: str, check: str, status: str, message: str = "", **fields) -> dict:
    """One line of results.jsonl; field names are a public contract (DESIGN.md section 4)."""
    return {
        "record": "result",
        "case": case.id,
        "adapter": adapter_name,
        "check": check,
        "status": status,
        **case.params(),
        "metrics": fields.pop("metrics", {}),
        "tolerance": fields.pop("tolerance", None),
        "message": message,
        **fields,
    }


def _framework_error(where: str, exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    text = " ".join(_ANSI.sub("", str(exc)).split())[:400]
    return f"{where} raised {type(exc).__name__}: {text}{at}"


def _epsilon_used(case: Case, config: dict) -> float | None:
    if case.epsilon is not None:
        return case.epsilon
    eps = config.get("epsilon")
    return float(eps) if isinstance(eps, (int, float)) else None


def evaluate(adapter: Adapter, case: Case) -> list[dict]:
    name = adapter.name
    arrays = materialize(case)
    spec = layer_spec(case, arrays)

    def all_checks(status, message, **fields):
        return [record(case, name, check, status, message, **fields) for check in CHECKS]

    reason = adapter.supports(spec)
    if reason:
        return all_checks("unsupported", reason)
    try:
        layer = adapter.build(spec)
        config = adapter.config(layer)
    except Exception as exc:
        return all_checks("error", _framework_error("build", exc))
    eps = _epsilon_used(case, config)
    if eps is None:
        return all_checks("error", "epsilon=None: the adapter's config() does not say which epsilon the layer uses")
    prec = case.precision
    n, rows = case.reduction_length, case.rows
    ref = oracle(arrays.x, arrays.scale, arrays.dy, case.axes, eps)
    common = {"epsilon_used": eps}
    out = []

    start = time.perf_counter()
    try:
        y = adapter.call(layer, arrays.x)
    except Exception as exc:
        out.append(record(case, name, "forward", "error", _framework_error("call", exc), **common))
    else:
        tol = tolerance.forward(prec.compute, n)
        s = score(y, ref.y, prec.compute, prec.compute.name, tol, axes=case.axes)
        out.append(record(case, name, "forward", s.status, s.message, metrics=s.metrics,
                          tolerance=tol.to_json(), seconds=time.perf_counter() - start, **common))

    start = time.perf_counter()
    try:
        dx, dscale = adapter.grad(layer, arrays.x, arrays.dy)
    except NotImplementedError:
        return out + [record(case, name, c, "unsupported", "the adapter has no gradients", **common)
                      for c in CHECKS[1:]]
    except Exception as exc:
        msg = _framework_error("grad", exc)
        return out + [record(case, name, c, "error", msg, **common) for c in CHECKS[1:]]
    seconds = time.perf_counter() - start
    tol = tolerance.grad_x(prec.compute, n)
    s = score(dx, ref.dx, prec.compute, prec.compute.name, tol, magnitude=ref.dx_magnitude, axes=case.axes)
    out.append(record(case, name, "grad_x", s.status, s.message, metrics=s.metrics,
                      tolerance=tol.to_json(), seconds=seconds, **common))
    if dscale is None:
        out.append(record(case, name, "grad_scale", "unsupported", "the layer has no scale gradient", **common))
        return out
    tol = tolerance.grad_scale(prec.compute, n, rows)
    # dscale is in the parameters' dtype, but its error is that of the compute dtype.
    s = score(np.asarray(dscale), ref.dscale, prec.compute, prec.param.name, tol, magnitude=ref.dscale_magnitude)
    out.append(record(case, name, "grad_scale", s.status, s.message, metrics=s.metrics,
                      tolerance=tol.to_json(), seconds=seconds, **common))
    return out
