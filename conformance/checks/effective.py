"""Effective parameters: what a layer really applies, where it can only approximate the request.

An adapter's optional `effective(layer)` returns `{"epsilon": float, "scale": array}` as the
layer applies them (ONNX stores epsilon as a 32-bit float; GemmaRMSNorm multiplies by
`1 + w`, computed in float32 from a weight in the parameter dtype).  Outputs are then
scored against the oracle run with those values, so the numerics are judged on their
own, and the `parameters` check compares effective with requested: a difference beyond
the representation error of the parameter dtype (one rounding, u) is a `parameters`
finding, e.g. "epsilon stored as float32: 9.99999975e-06 for 1e-05" in a float64 case.
"""
from __future__ import annotations

import numpy as np

from conformance.adapter import provides
from conformance.diagnosis.diagnose import diagnosis


def effective_parameters(adapter, layer, eps: float, scale: np.ndarray, param_format):
    """(epsilon, scale) to score against, and (status, message, fields) of the `parameters`
    check, or None when the adapter does not declare effective parameters."""
    if not provides(adapter, "effective"):
        return eps, scale, None
    try:
        declared = adapter.effective(layer) or {}
        eff_eps = float(declared.get("epsilon", eps))
        eff_scale = np.asarray(declared.get("scale", scale), np.float64).reshape(np.shape(scale))
    except BaseException as exc:
        return eps, scale, ("error", f"effective() raised {type(exc).__name__}: {exc}", {})
    u = param_format.unit_roundoff
    problems, ids = [], []
    if abs(eff_eps - eps) > u * abs(eps):
        name = " as float32" if eff_eps == float(np.float32(eps)) else ""
        problems.append(f"epsilon stored{name}: {eff_eps!r} for {eps!r}")
        ids.append("effective-epsilon")
    want = np.asarray(scale, np.float64)
    with np.errstate(all="ignore"):
        gap = np.abs(eff_scale - want) / np.maximum(np.abs(want), param_format.tiny)
    if gap.size and float(np.nanmax(gap)) > u:
        i = np.unravel_index(int(np.nanargmax(gap)), gap.shape)
        problems.append(f"the scale applied differs from the one requested by up to {float(gap[i]):.3g} relative "
                        f"(at {[int(k) for k in i]}: {float(eff_scale[i])!r} for {float(want[i])!r})")
        ids.append("effective-scale")
    metrics = {"effective_epsilon": eff_eps, "requested_epsilon": eps}
    if not problems:
        return eff_eps, eff_scale, ("pass", "", {"metrics": metrics})
    d = diagnosis("+".join(ids), "parameters", "; ".join(problems))
    return eff_eps, eff_scale, ("fail", "; ".join(problems), {"metrics": metrics, "diagnosis": d})


def parameters(ctx) -> dict:
    """The registry's run function: the outcome the pipeline found when it set the case up."""
    status, message, fields = ctx.parameters_outcome
    return ctx.record("parameters", status, message, **fields)
