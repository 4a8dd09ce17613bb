"""The registry of checks: one record per check, read by the pipeline, the reports, the schema,
xfail lists, the pytest plugin and the grouping of results into findings.

A check is a `Check`: its name (the `check` of a record), its family, what it means when it
fails (the finding title where no more specific diagnosis names one), the cases it applies to,
the optional adapter method it needs (without it, the check is `unsupported` with the name of
that method), the checks it depends on (`after`: they run first and leave what it reads on the
`CaseRun`), how it runs (`run(ctx) -> record`) and the diagnoses it gives itself, with their
finding titles.  Adding a check is one entry below and its planted test.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from conformance.adapter import OPTIONAL, provides
from conformance.cases.case import Case
from conformance.cases.invalid import CHECK as INVALID_CHECK
from conformance.cases.invalid import Invalid
from conformance.checks import configuration, effective, fused_add, numeric, offset, properties, quantized, untouched
from conformance.checks.fused import applies as fused_form, titles as fused_titles
from conformance.checks.invalid import invalid_config
from conformance.diagnosis.crashes import title as crash_title
from conformance.diagnosis.diagnose import of_error
from conformance.diagnosis.hypotheses import BY_ID as HYPOTHESES


def regular(case) -> bool:
    return isinstance(case, Case)


def trained_scale(case) -> bool:
    """The configuration checks: cases with a trained-looking (random positive) scale cover
    every layout and dtype at small cost."""
    return isinstance(case, Case) and case.scale == "rand"


@dataclass(frozen=True)
class Check:
    name: str
    family: str  # forward, dtype, gradient, parameters, configuration, property, invalid-configuration
    title: str  # what a failure means, when no diagnosis of its own says more
    run: Callable[..., dict]  # (CaseRun, or InvalidRun for invalid configurations) -> the record
    applies: Callable[[object], bool] = regular
    needs: str | None = None  # the optional adapter method it cannot run without
    after: tuple[str, ...] = ()  # checks that run first: this one reads what they leave on the CaseRun
    diagnoses: dict[str, str] = field(default_factory=dict)  # its own diagnosis ids -> finding titles
    # The first part of its finding ids: the family, except for the properties, whose ids were
    # keyed by the check's own name before families existed (baselines compare finding ids).
    finding_key: str = ""
    # False: no record at all without `needs` (the effective parameters of an adapter that does
    # not declare them are the requested ones; a record would only dilute its coverage).
    recorded_without: bool = True

    @property
    def finding_prefix(self) -> str:
        return self.finding_key or self.family


SHAPE = {"shape-differs": "{family}: the output shape differs from the input's"}
EFFECTIVE = "the layer applies other parameters than requested: {detail:.80}"


def _property(name: str, statement, diagnosis_id: str, title: str, needs: str | None = None,
              applies=properties.applies) -> Check:
    return Check(name, "property", title, properties.as_check(name, diagnosis_id, statement), applies,
                 needs, diagnoses={diagnosis_id: "{family}: " + title}, finding_key=name)


REGISTRY: tuple[Check, ...] = (
    Check("parameters", "parameters", "the layer applies other parameters than requested", effective.parameters,
          needs="effective", recorded_without=False,
          diagnoses={k: EFFECTIVE for k in ("effective-epsilon", "effective-scale", "effective-epsilon+effective-scale")}),
    Check("forward", "forward", "the output differs from the formula", numeric.forward, diagnoses=SHAPE),
    Check("out_dtype", "dtype", "the output dtype differs from the input's", numeric.out_dtype, after=("forward",),
          diagnoses={"out-dtype": "the output dtype differs from the input's"}),
    Check("grad_x", "gradient", "dx differs from the formula", numeric.grad_x, needs="grad", diagnoses=SHAPE),
    Check("grad_scale", "gradient", "dscale differs from the formula", numeric.grad_scale, needs="grad",
          diagnoses=SHAPE),
    Check("inputs_untouched", "property", "the arrays handed to the layer are modified (an in-place kernel)",
          untouched.inputs_untouched, after=("forward", "grad_x", "grad_scale"),
          diagnoses={"inputs-modified": "the arrays handed to the layer are written in place"}),
    Check("structure", "configuration", "the scale parameter is not laid out as the normalized axes",
          configuration.structure, trained_scale, needs="parameters"),
    Check("config_roundtrip", "configuration", "a layer rebuilt from its own configuration differs",
          configuration.config_roundtrip, trained_scale, needs="rebuild", after=("forward",)),
    Check("save_load", "configuration", "a layer saved and loaded in the framework's format differs",
          configuration.save_load, trained_scale, needs="save_load", after=("forward",)),
    _property("batch_invariance", properties.batch_invariance, "batch-variant",
              "a row's output depends on the batch it is computed in"),
    _property("determinism", properties.determinism, "nondeterministic",
              "repeated calls on the same input give different bits"),
    _property("sign_symmetry", properties.sign_symmetry, "sign-asymmetric", "f(-x) differs from -f(x)"),
    _property("scale_invariance", properties.scale_invariance, "scale-variant",
              "f(2^k x) differs from f(x) with epsilon 0", applies=properties.applies_at_epsilon_zero),
    _property("layout", properties.layout, "layout-dependent",
              "a non-contiguous input gives other bits than the contiguous one", needs="call_layout"),
    _property("jvp", properties.jvp, "jvp-differs", "the forward-mode derivative differs from the formula",
              needs="jvp"),
    _property("hvp", properties.hvp, "hvp-differs", "the second-order derivative differs from the formula",
              needs="hvp"),
    # The fused forms (conformance/checks/fused.py): each a family of its own, on the last-axis cases.
    Check("fused_add", "fused-add", "the fused add's output differs from rmsnorm(x + residual)", fused_add.output,
          fused_form, needs="call_fused_add",
          diagnoses=fused_titles("normalizes-x", "sum-lower-precision", "sum-precision-undeclared")),
    Check("fused_add_residual", "fused-add", "the written-back residual differs from x + residual",
          fused_add.residual_out, fused_form, needs="call_fused_add", after=("fused_add",),
          diagnoses=fused_titles("residual-not-written", "residual-is-output", "residual-dtype",
                                 "sum-lower-precision")),
    Check("fused_add_untouched", "fused-add", "the fused add writes into its inputs", fused_add.untouched,
          fused_form, needs="call_fused_add", after=("fused_add", "fused_add_residual"),
          diagnoses=fused_titles("fused-inputs-modified", "in-place-residual-not-sum")),
    Check("fused_add_grad", "fused-add", "the fused add's gradients differ from the formula", fused_add.grad,
          fused_form, needs="grad_fused_add", after=("fused_add",), diagnoses=fused_titles("grad-residual-dropped")),
    Check("offset_forward", "offset", "the offset layer's output differs from rmsnorm(x) * (1 + w)", offset.forward,
          fused_form, needs="build_offset",
          diagnoses=fused_titles("offset-in-weight-dtype", "offset-in-float32", "offset-ignored")),
    Check("offset_grad", "offset", "the offset layer's gradients differ from the formula", offset.grad, fused_form,
          needs="build_offset", after=("offset_forward",), diagnoses=fused_titles("offset-ignored")),
    Check("quantized", "quantized", "the fp8 output differs from fp8(saturate(rmsnorm(x) * w / scale))",
          quantized.quantized, fused_form, needs="call_quantized",
          diagnoses=fused_titles("fp8-no-saturation", "fp8-toward-zero", "fp8-scale-multiplied", "quantized-dtype")),
    Check(INVALID_CHECK, "invalid-configuration", "an invalid configuration is accepted", invalid_config,
          lambda case: isinstance(case, Invalid)),
)
BY_NAME: dict[str, Check] = {c.name: c for c in REGISTRY}
ALL_CHECKS: tuple[str, ...] = tuple(BY_NAME)  # any record's check is one of these


def names(family: str) -> tuple[str, ...]:
    """The checks of one family, in the registry's order (the columns of a report's table)."""
    return tuple(c.name for c in REGISTRY if c.family == family)


def applicable(case) -> tuple[Check, ...]:
    return tuple(c for c in REGISTRY if c.applies(case))


def checks_for(case) -> tuple[str, ...]:
    """The checks every adapter has a record of for `case` (an adapter with `effective` one more)."""
    return tuple(c.name for c in applicable(case) if c.recorded_without)


def missing(adapter, check: Check) -> str | None:
    """Why `check` cannot run on this adapter whatever the case, naming the method that would
    enable it; None if it can."""
    if check.needs is None or provides(adapter, check.needs):
        return None
    return f"the adapter does not provide {check.needs}(), which {OPTIONAL[check.needs]} need"


# -- from diagnosed records to findings --------------------------------------------------------
# One adapter's exception, configuration problem or unexplained result says nothing about another's.
PER_ADAPTER = ("crash", "configuration", "unexplained")


def finding_prefix(check: str) -> str:
    c = BY_NAME.get(check)
    return c.finding_prefix if c else check


def finding_id(r: dict) -> str | None:
    """The stable id of the finding a diagnosed record belongs to: check family / diagnosis (/ adapter)."""
    d = r.get("diagnosis")
    if not d:
        return None
    if d["class"] == "crash":  # a build that raises errors every check of the case: one finding
        if d["id"].startswith("adapter-error-"):  # the adapter's own bug, apart from the framework's crashes
            return f"adapter-error/{d['id'].removeprefix('adapter-error-')}/{r['adapter']}"
        return f"crash/{d['id']}/{r['adapter']}"
    fid = f"{finding_prefix(r['check'])}/{d['id']}"
    return f"{fid}/{r['adapter']}" if d["class"] in PER_ADAPTER else fid


def attach_diagnosis(r: dict) -> dict:
    """A record that fails or errors gets its diagnosis (from what it is, if not numeric) and finding."""
    if r["status"] in ("pass", "unsupported"):
        return r
    r = r if "diagnosis" in r else r | {"diagnosis": _non_numeric(r)}
    return r | {"finding": finding_id(r)}


def _non_numeric(r: dict) -> dict:
    from conformance.diagnosis.diagnose import diagnosis

    if r["status"] == "error":
        return of_error(r.get("message", ""), r)
    c = BY_NAME.get(r["check"])
    if c and c.family in ("configuration", "invalid-configuration"):
        outcome = r.get("outcome")
        return diagnosis(f"{r['check']}-{outcome.replace(' ', '-')}" if outcome else r["check"], "configuration",
                         r.get("message", ""))
    return diagnosis("unexplained", "unexplained", r.get("message", ""))


def finding_title(d: dict, check: str) -> str:
    """The title of a finding, from its diagnosis and the check of its smallest record."""
    family, c = finding_prefix(check), BY_NAME.get(check)
    h = HYPOTHESES.get(d["id"])
    if h:
        return f"{family}: {h.title}"
    if d["class"] == "crash":  # never the exception's text: that is the evidence (the record's message)
        return crash_title(d)
    own = c.diagnoses.get(d["id"]) if c else None
    if own:
        return own.format(family=family, detail=d.get("detail", ""))
    if d["class"] == "configuration":  # ids "CHECK" or "CHECK-OUTCOME" (_non_numeric)
        named = BY_NAME.get(d["id"].split("-", 1)[0])
        title = named.title if named else d["id"]
        return title + (f" ({d['id'].split('-', 1)[1].replace('-', ' ')})" if "-" in d["id"] else "")
    return f"{family}: the result differs from the formula in a way no hypothesis explains"
