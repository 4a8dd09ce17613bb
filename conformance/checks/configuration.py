"""The configuration side of the contract: `structure`, `config_roundtrip`, `save_load`.

They run on cases with a trained-looking (random positive) scale: enough to cover every layout
and dtype at small cost.  Each is its own record: whatever one of them raises, the adapter's or
the suite's, is that check's `error` and leaves the others alone.
"""
from __future__ import annotations

import json
import tempfile

import numpy as np

from conformance.checks.context import CaseRun
from conformance.checks.records import framework_error
from conformance.numerics.dtypes import dtype_name


def checked_config(adapter, layer) -> tuple[dict | None, str]:
    """(config, "") or (None, why it is unusable): a dict that JSON can write."""
    try:
        config = adapter.config(layer)
    except BaseException as exc:
        return None, framework_error("config", exc)
    if not isinstance(config, dict):
        return None, f"config() returned {type(config).__name__}, not a dict"
    try:  # a plain copy: nothing the adapter's object does later can reach the suite
        return json.loads(json.dumps(config)), ""
    except BaseException as exc:
        return None, f"config() is not JSON-safe: {type(exc).__name__}: {exc}"


def _parameters(adapter, layer) -> dict:
    params = adapter.parameters(layer)
    if not isinstance(params, dict):
        raise TypeError(f"parameters() returned {type(params).__name__}, not a dict of arrays")
    return params


def _layer_parameters(ctx: CaseRun):
    """The built layer's parameters (once), None where the adapter has no parameters(), or the
    exception they raised."""
    if not _provides(ctx.adapter, "parameters"):
        return None
    called = ctx.once("parameters", _parameters, ctx.adapter, ctx.layer)
    if isinstance(called.error, NotImplementedError):  # provided, but not for this layer
        return None
    return called.value if called.error is None else called.error


def _provides(adapter, method: str) -> bool:
    from conformance.adapter import provides

    return provides(adapter, method)


def structure(ctx: CaseRun) -> dict:
    """The scale parameter as the case lays it out: shape of the normalized axes, parameter dtype."""
    params = _layer_parameters(ctx)
    if isinstance(params, BaseException):
        return ctx.record("structure", "error", framework_error("parameters", params))
    if params is None:
        return ctx.record("structure", "unsupported", "the adapter does not expose parameters()")
    case = ctx.case
    expected_shape, expected_dtype = case.scale_shape, case.precision.param_dtype_judged
    shapes = {k: list(np.shape(v)) for k, v in params.items()}
    dtypes = {k: dtype_name(np.asarray(v)) for k, v in params.items()}
    count = int(sum(np.size(v) for v in params.values()))
    problems = []
    if len(params) != 1:
        problems.append(f"{len(params)} trainable parameters {sorted(params)}, expected one scale")
    for k in params:
        if tuple(shapes[k]) != expected_shape:
            problems.append(f"scale {k!r} has shape {tuple(shapes[k])}, the normalized axes are {expected_shape}")
        if expected_dtype and dtypes[k] != expected_dtype:
            problems.append(f"scale {k!r} is {dtypes[k]}, expected {expected_dtype}")
    if count != int(np.prod(expected_shape)):
        problems.append(f"{count} trainable values, expected {int(np.prod(expected_shape))}")
    return ctx.record("structure", "fail" if problems else "pass", "; ".join(problems),
                      metrics={"parameter_shapes": shapes, "parameter_dtypes": dtypes, "trainable_values": count})


def _in_tempdir(fn, layer):
    with tempfile.TemporaryDirectory() as folder:
        return fn(layer, folder)


def _same_array(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _without_names(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "name"}  # Keras names are unique per layer


def _copy_check(check: str, make):
    """A check of a layer made anew from the built one (`make(adapter, layer)`): bit-identical
    output, equal parameters and configuration."""
    def run(ctx: CaseRun) -> dict:
        params = _layer_parameters(ctx)
        if isinstance(params, BaseException):
            return ctx.record(check, "error", framework_error("parameters", params))
        if ctx.y is None:  # counted once, in the forward record; a copy would raise the same
            return ctx.record(check, "unsupported", "the layer's forward raised (see the forward record): no output "
                              "to compare a rebuilt layer with")
        if ctx.config is None:
            return ctx.record(check, "error", f"cannot compare configurations: {ctx.config_problem}")
        adapter = ctx.adapter
        try:
            other = make(adapter, ctx.layer)
            y2 = adapter.call(other, ctx.arrays.x)
            params2 = _parameters(adapter, other) if params is not None else None
            config2, problem2 = checked_config(adapter, other)
        except NotImplementedError:
            return ctx.record(check, "unsupported", f"the adapter does not implement {check}")
        except BaseException as exc:
            return ctx.record(check, "error", framework_error(check, exc))
        problems = []
        if not _same_array(ctx.y, y2):
            a, b = np.asarray(ctx.y), np.asarray(y2)
            diff = int(np.sum(a.astype(np.float64) != b.astype(np.float64))) if a.shape == b.shape else a.size
            problems.append(f"outputs differ ({diff} element(s) not bit-identical)")
        if params is not None and (set(params) != set(params2) or
                                   not all(_same_array(params[k], params2[k]) for k in params)):
            problems.append(f"parameters differ: {sorted(params)} vs {sorted(params2)}")
        if config2 is None:
            problems.append(f"the new layer's configuration is unusable: {problem2}")
        elif _without_names(ctx.config) != _without_names(config2):
            changed = sorted(k for k in set(ctx.config) | set(config2)
                             if k != "name" and ctx.config.get(k) != config2.get(k))
            problems.append(f"configuration differs in {changed}")
        return ctx.record(check, "fail" if problems else "pass", "; ".join(problems))
    return run


config_roundtrip = _copy_check("config_roundtrip", lambda adapter, layer: adapter.rebuild(layer))
save_load = _copy_check("save_load", lambda adapter, layer: _in_tempdir(adapter.save_load, layer))
