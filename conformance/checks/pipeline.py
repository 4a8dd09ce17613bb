"""One case through one adapter: materialize, build, call, differentiate, score.

Runs inside the adapter's worker process and returns the finished records, so
only small JSON crosses the process boundary.  Every call into the adapter
catches BaseException: an adapter's SystemExit or KeyboardInterrupt is that
check's `error`, and the worker's life is the runner's to end (by signal).
"""
from __future__ import annotations

import json
import re
import tempfile
import time
import traceback

import numpy as np

from conformance.checks import properties
from conformance.numerics import tolerance
from conformance.adapter import Adapter
from conformance.cases.case import Case, layer_spec, materialize
from conformance.cases.invalid import CHECK as INVALID_CHECK
from conformance.cases.invalid import Invalid
from conformance.numerics.compare import Score, numeric_array, score
from conformance.diagnosis.diagnose import attach_diagnosis, diagnose, diagnosis
from conformance.checks.effective import CHECK as PARAMETERS_CHECK
from conformance.checks.effective import effective_parameters
from conformance.diagnosis.hypotheses import Arrays
from conformance.numerics.dtypes import FORMATS, dtype_name
from conformance.numerics.oracle import oracle
from conformance.spec import LayerSpec, canonical_axes

GRAD_CHECKS = ("grad_x", "grad_scale")
# out_dtype: the forward output's dtype, judged apart from its values (a right value in
# float32 for a float16 input is a dtype finding, not a wrong number).
CHECKS = ("forward", "out_dtype", *GRAD_CHECKS)
# Checks of the configuration side of the contract, on cases with a trained-looking
# (random positive) scale: enough to cover every layout and dtype at small cost.
CONFIG_CHECKS = ("structure", "config_roundtrip", "save_load")
ALL_CHECKS = CHECKS + CONFIG_CHECKS + (INVALID_CHECK, PARAMETERS_CHECK) + properties.PROPERTY_CHECKS  # any record's


def checks_for(case) -> tuple[str, ...]:
    if isinstance(case, Invalid):
        return (INVALID_CHECK,)
    out = CHECKS + CONFIG_CHECKS if case.scale == "rand" else CHECKS
    return out + properties.PROPERTY_CHECKS if properties.applies(case) else out


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


def _scored(case, name: str, check: str, s: Score, tol, seconds: float, common: dict) -> dict:
    return record(case, name, check, s.status, s.message, metrics=s.metrics, tolerance=tol.to_json(),
                  seconds=seconds, **common)


def _score_check(case, name: str, check: str, tol, seconds: float, common: dict, result, expected, fmt,
                 expected_dtype: str, diagnoser=None, **kwargs) -> dict:
    """Score one result, and diagnose it if it does not pass; an exception of the scoring
    itself is that check's `error`, nothing more."""
    try:
        s = score(result, expected, fmt, expected_dtype, tol, **kwargs)
        out = _scored(case, name, check, s, tol, seconds, common)
    except BaseException as exc:
        return record(case, name, check, "error", _suite_error("scoring", exc), **common)
    if s.status != "pass" and diagnoser is not None and "out_dtype" in s.metrics:
        try:
            out["diagnosis"] = diagnoser(check, numeric_array(result), expected, fmt, tol, kwargs.get("magnitude"))
        except BaseException as exc:
            out["diagnosis"] = diagnosis("unexplained", "unexplained", _suite_error("the diagnosis", exc))
    return out


def _no_gradients(r: dict) -> dict:
    return r | {"status": "unsupported", "message": "the adapter has no gradients (forward only)"}


def _not_applicable(adapter: Adapter, r: dict) -> dict:
    """A record of a check the adapter cannot run whatever the case is `unsupported`, even where
    the case itself failed (a forward-only adapter's gradients, a property without its method)."""
    if r["check"] in GRAD_CHECKS and not adapter.gradients:
        return _no_gradients(r)
    why = properties.missing(adapter, r["check"])
    return r | {"status": "unsupported", "message": why} if why else r


def _out_dtype(case, name: str, y, expected: str, common: dict) -> dict:
    got = dtype_name(numeric_array(y))
    if got == expected:
        return record(case, name, "out_dtype", "pass", metrics={"out_dtype": got}, **common)
    return record(case, name, "out_dtype", "fail", f"returns {got} for a {case.dtype} case (expected {expected})",
                  metrics={"out_dtype": got},
                  diagnosis=diagnosis("out-dtype", "dtype", f"returns {got} where the case's dtype is {expected}"),
                  **common)


def _suite_error(where: str, exc: BaseException) -> str:
    return f"the suite could not finish {where} ({type(exc).__name__}: {exc}); please report this"


def error_records(adapter_name: str, case, message: str) -> list[dict]:
    """An `error` record for every check of a case that could not run (a crash, a hang, a fault)."""
    return [attach_diagnosis(record(case, adapter_name, check, "error", message)) for check in checks_for(case)]


def harness_error_records(adapter_name: str, case, exc: BaseException) -> list[dict]:
    """Records for a case whose evaluation raised where no check could catch it."""
    return error_records(adapter_name, case, _suite_error("this case", exc))


def _epsilon_used(case: Case, config: dict | None) -> float | None:
    if case.epsilon is not None:
        return case.epsilon
    eps = (config or {}).get("epsilon")
    return float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) else None


def checked_config(adapter: Adapter, layer) -> tuple[dict | None, str]:
    """(config, "") or (None, why it is unusable): a dict that JSON can write."""
    try:
        config = adapter.config(layer)
    except BaseException as exc:
        return None, _framework_error("config", exc)
    if not isinstance(config, dict):
        return None, f"config() returned {type(config).__name__}, not a dict"
    try:  # a plain copy: nothing the adapter's object does later can reach the suite
        return json.loads(json.dumps(config)), ""
    except BaseException as exc:
        return None, f"config() is not JSON-safe: {type(exc).__name__}: {exc}"


def evaluate(adapter: Adapter, case) -> list[dict]:
    """Every record of one case; each non-passing one carries its diagnosis."""
    if isinstance(case, Invalid):
        return [attach_diagnosis(evaluate_invalid(adapter, case))]
    return [attach_diagnosis(r) for r in _evaluate(adapter, case)]


def _evaluate(adapter: Adapter, case: Case) -> list[dict]:
    name = adapter.name
    arrays = materialize(case)
    spec = layer_spec(case, arrays)

    def all_checks(status, message, **fields):
        return [record(case, name, check, status, message, **fields) for check in checks_for(case)]

    try:
        reason = adapter.supports(spec)
    except BaseException as exc:
        return all_checks("error", _framework_error("supports", exc))
    if reason:
        return all_checks("unsupported", str(reason))
    try:
        layer = adapter.build(spec)
    except BaseException as exc:
        failed = all_checks("error", _framework_error("build", exc))
        return [_not_applicable(adapter, r) for r in failed]
    config, config_problem = checked_config(adapter, layer)
    eps = _epsilon_used(case, config)
    if eps is None:
        why = config_problem or "the adapter's config() does not say which epsilon the layer uses"
        return all_checks("error", f"epsilon=None: {why}")
    prec = case.precision
    n = case.reduction_length
    out = []
    # Scored against what the layer really applies; the difference from the request is its own check.
    eps, scale, parameters = effective_parameters(adapter, layer, eps, arrays.scale, prec.param)
    if parameters:
        status, message, fields = parameters
        out.append(record(case, name, PARAMETERS_CHECK, status, message, **fields))
    ref = oracle(arrays.x, scale, arrays.dy, case.axes, eps)
    common = {"epsilon_used": eps}

    def diagnoser(check, observed, expected, fmt, tol, magnitude):
        f64 = lambda v: np.asarray(v).astype(np.float64)  # noqa: E731
        a = Arrays(f64(arrays.x), f64(scale), f64(arrays.dy), case.axes, eps, check, f64(observed),
                   prec.compute.name, prec.param.name)
        return diagnose(a, expected, fmt, tol, magnitude)

    start = time.perf_counter()
    y = None
    try:
        y = adapter.call(layer, arrays.x)
    except BaseException as exc:
        out.append(record(case, name, "forward", "error", _framework_error("call", exc), **common))
    else:
        try:  # the values are judged here, the dtype by out_dtype
            got_dtype = dtype_name(numeric_array(y))
        except TypeError:
            got_dtype = prec.compute.name
        out.append(_score_check(case, name, "forward", tolerance.forward(prec.compute, n), time.perf_counter() - start,
                                common, y, ref.y, prec.compute, got_dtype, diagnoser, axes=case.axes))
        if out[-1]["status"] != "pass" and "out_dtype" not in out[-1]["metrics"]:
            y = None  # not an array: nothing a rebuilt layer's output could be compared with
    if y is None:
        out.append(record(case, name, "out_dtype", "unsupported", "no numeric forward output (see the forward record)",
                          **common))
    else:
        out.append(_out_dtype(case, name, y, prec.compute.name, common))
    out += _gradients(adapter, case, layer, arrays, ref, common, diagnoser)
    if "structure" in checks_for(case):
        out += configuration_checks(adapter, case, layer, arrays, y, config, config_problem)
    if properties.applies(case):
        out += property_checks(properties.Subject(adapter, case, spec, arrays, eps), common)
    return out


def property_checks(subject, common: dict) -> list[dict]:
    """The property checks (conformance/checks/properties.py), each its own record; whatever one of
    them raises is that check's `error`."""
    out = []
    for check in properties.PROPERTY_CHECKS:
        start = time.perf_counter()
        try:
            status, message, fields = properties.outcome(check, subject)
        except BaseException as exc:
            out.append(record(subject.case, subject.adapter.name, check, "error", _framework_error(check, exc), **common))
            continue
        out.append(record(subject.case, subject.adapter.name, check, status, message,
                          seconds=round(time.perf_counter() - start, 6), **fields, **common))
    return out


def _gradients(adapter, case, layer, arrays, ref, common, diagnoser=None) -> list[dict]:
    name, prec = adapter.name, case.precision
    n, rows = case.reduction_length, case.rows
    start = time.perf_counter()
    if not adapter.gradients:
        return [_no_gradients(record(case, name, c, "unsupported", "", **common)) for c in GRAD_CHECKS]
    try:
        dx, dscale = adapter.grad(layer, arrays.x, arrays.dy)  # a non-pair raises here: the adapter's error
    except NotImplementedError:
        return [record(case, name, c, "unsupported", "the adapter has no gradients", **common) for c in GRAD_CHECKS]
    except BaseException as exc:
        msg = _framework_error("grad", exc)
        return [record(case, name, c, "error", msg, **common) for c in GRAD_CHECKS]
    seconds = time.perf_counter() - start
    out = [_score_check(case, name, "grad_x", tolerance.grad_x(prec.compute, n), seconds, common,
                        dx, ref.dx, prec.compute, prec.compute.name, diagnoser, magnitude=ref.dx_magnitude,
                        axes=case.axes)]
    if dscale is None:
        out.append(record(case, name, "grad_scale", "unsupported", "the layer has no scale gradient", **common))
        return out
    # dscale is in the parameters' dtype, but its error is that of the compute dtype.
    out.append(_score_check(case, name, "grad_scale", tolerance.grad_scale(prec.compute, n, rows), seconds, common,
                            dscale, ref.dscale, prec.compute, prec.param_dtype_judged, diagnoser,
                            magnitude=ref.dscale_magnitude))
    return out


def _same_array(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _without_names(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "name"}  # Keras names are unique per layer


def configuration_checks(adapter: Adapter, case: Case, layer, arrays, y, config: dict | None,
                         config_problem: str = "") -> list[dict]:
    """structure, config_roundtrip and save_load (DESIGN.md roadmap: configuration and serialization).

    Each check is its own record: whatever one of them raises, the adapter's or
    the suite's, is that check's `error` and leaves the others alone."""
    name = adapter.name
    out = []
    try:
        params = _parameters(adapter, layer)
    except NotImplementedError:
        params = None
    except BaseException as exc:
        return [record(case, name, c, "error", _framework_error("parameters", exc)) for c in CONFIG_CHECKS]
    if params is None:
        out.append(record(case, name, "structure", "unsupported", "the adapter does not expose parameters()"))
    else:
        out.append(_guarded(case, name, "structure", lambda: _structure(case, name, params)))

    for check, make in (("config_roundtrip", adapter.rebuild),
                        ("save_load", lambda lay: _in_tempdir(adapter.save_load, lay))):
        if y is None:  # counted once, in the forward record; a copy would raise the same
            out.append(record(case, name, check, "unsupported", "the layer's forward raised (see the forward "
                              "record): no output to compare a rebuilt layer with"))
            continue
        if config is None:
            out.append(record(case, name, check, "error", f"cannot compare configurations: {config_problem}"))
            continue
        try:
            other = make(layer)
            y2 = adapter.call(other, arrays.x)
            params2 = _parameters(adapter, other) if params is not None else None
            config2, problem2 = checked_config(adapter, other)
        except NotImplementedError:
            out.append(record(case, name, check, "unsupported", f"the adapter does not implement {check}"))
            continue
        except BaseException as exc:
            out.append(record(case, name, check, "error", _framework_error(check, exc)))
            continue
        out.append(_guarded(case, name, check, lambda: _same_layer(case, name, check, (y, params, config),
                                                                   (y2, params2, config2), problem2)))
    return out


def _parameters(adapter: Adapter, layer) -> dict:
    params = adapter.parameters(layer)
    if not isinstance(params, dict):
        raise TypeError(f"parameters() returned {type(params).__name__}, not a dict of arrays")
    return params


def _guarded(case, name: str, check: str, make_record) -> dict:
    try:
        return make_record()
    except BaseException as exc:
        return record(case, name, check, "error", _suite_error(f"the {check} check", exc))


def _same_layer(case, name: str, check: str, first: tuple, second: tuple, config_problem: str) -> dict:
    """A rebuilt or reloaded layer: bit-identical output, equal parameters and configuration."""
    (y, params, config), (y2, params2, config2) = first, second
    problems = []
    if not _same_array(y, y2):
        a, b = np.asarray(y), np.asarray(y2)
        diff = int(np.sum(a.astype(np.float64) != b.astype(np.float64))) if a.shape == b.shape else a.size
        problems.append(f"outputs differ ({diff} element(s) not bit-identical)")
    if params is not None and (set(params) != set(params2) or not all(_same_array(params[k], params2[k]) for k in params)):
        problems.append(f"parameters differ: {sorted(params)} vs {sorted(params2)}")
    if config2 is None:
        problems.append(f"the new layer's configuration is unusable: {config_problem}")
    elif _without_names(config) != _without_names(config2):
        changed = sorted(k for k in set(config) | set(config2) if k != "name" and config.get(k) != config2.get(k))
        problems.append(f"configuration differs in {changed}")
    return record(case, name, check, "fail" if problems else "pass", "; ".join(problems))


def _in_tempdir(fn, layer):
    with tempfile.TemporaryDirectory() as folder:
        return fn(layer, folder)


def _structure(case: Case, name: str, params: dict) -> dict:
    """The scale parameter as the case lays it out: shape of the normalized axes, parameter dtype."""
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
    return record(case, name, "structure", "fail" if problems else "pass", "; ".join(problems),
                  metrics={"parameter_shapes": shapes, "parameter_dtypes": dtypes, "trainable_values": count})


def evaluate_invalid(adapter: Adapter, inv: Invalid) -> dict:
    """What the framework does with an invalid or borderline configuration (cases/invalid.py)."""
    x, scale = inv.arrays()
    spec = LayerSpec(inv.shape, inv.axis, inv.epsilon, inv.dtype, scale)

    def rec(status, outcome, message, **fields):
        return record(inv, adapter.name, INVALID_CHECK, status, message, outcome=outcome, **fields)

    try:
        reason = adapter.supports(spec)
    except BaseException as exc:  # the adapter's translation itself cannot express it
        reason = f"cannot be expressed ({type(exc).__name__}: {exc})"
    if reason:
        return rec("unsupported", "not expressible", str(reason))
    try:
        layer = adapter.build(spec)
    except BaseException as exc:
        return rec("pass", "error at build", _framework_error("build", exc))
    try:
        y = adapter.call(layer, x)
    except BaseException as exc:
        return rec("pass", "error at call", _framework_error("call", exc))
    try:
        y = numeric_array(y)
    except TypeError as exc:
        return rec("fail", "silent wrong result", f"returned {exc}")
    if not inv.has_reference:
        return rec("pass", "silent result", f"returned {dtype_name(y)} of shape {y.shape} without complaint; "
                   "there is no single right answer to score it against",
                   metrics={"out_dtype": dtype_name(y), "out_shape": list(y.shape)})
    axes = canonical_axes(inv.axis, len(inv.shape))
    ref = oracle(x.astype(np.float64), scale, np.zeros(x.shape), axes, inv.epsilon)
    metrics = {"out_dtype": dtype_name(y), "out_shape": list(y.shape)}
    if y.dtype.kind in "biu":  # a normalization cannot be an integer: the result was truncated
        return rec("fail", "silent wrong result", f"returned {dtype_name(y)} values {y.ravel()[:4].tolist()}, the "
                   f"formula gives {np.round(ref.y.ravel()[:4], 4).tolist()}", metrics=metrics)
    fmt = FORMATS["float32"]
    try:
        s = score(y, ref.y, fmt, dtype_name(y), tolerance.forward(fmt, x.shape[-1]), axes=axes)
    except (TypeError, ValueError) as exc:
        return rec("fail", "silent wrong result", f"returned something not comparable: {exc}", metrics=metrics)
    if s.status == "pass":
        return rec("pass", "silent result, agrees with the formula", "", metrics=s.metrics)
    return rec("fail", "silent wrong result", s.message, metrics=s.metrics)
