"""Crashes diagnosed: an exception's message turned into its cause.

A record whose check raised carries "STEP raised CLASS: text (file:line)" (checks/records.py;
"(file:line, in the adapter's own code)" for an adapter's own bug).  `crash(message, record)`
reads the step, the error class and the *stable* part of the text (no addresses, paths, node
or variable names, and none of the wrappers frameworks put around an error), names the kind of
error where the catalogue below knows it, and checks it against what the case asked for (its
shape, axes and dtype): "the scale is built as (8, 4) for axes (1, -1) of a (2, 4, 8) input,
the sizes of the axes in the order given".  Its id groups records by that stable cause,
never by a message's incidental numbers, so one defect is one finding per adapter.

Pure functions of the message and the record's case parameters: reports apply them again to
records written by an older suite.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

_MESSAGE = re.compile(r"^(\w+) raised (\w+)(?:: (.*?))?(?: \(([^()\s]+):(\d+)(, in the adapter's own code)?\))?$", re.S)
_STOP = {"a", "an", "the", "of", "to", "in", "for", "and", "or", "be", "is", "at", "on", "with", "by", "as", "it",
         "that", "this", "was", "not", "are", "but", "from", "must"}


@dataclass(frozen=True)
class Raised:
    step: str  # build, call, grad, supports, config, parameters, or a check's name
    error: str  # the exception's class name
    text: str  # its message, as recorded
    frame: str  # "file.py:line" of the innermost frame, or ""
    adapter_own: bool  # the innermost frame is the adapter's own code (checks/records.py: adapter_own)


def parse(message: str) -> Raised | None:
    m = _MESSAGE.match(message.strip())
    if not m:
        return None
    step, error, text, file, line, own = m.groups()
    return Raised(step, error, text or "", f"{file}:{line}" if file else "", bool(own))


def stable_message(text: str) -> str:
    """The part of an error message that does not change from run to run or case to case of one
    cause: without the wrappers (Keras's "Exception encountered when calling ...", its dump of the
    arguments, TensorFlow's function node, onnxruntime's status prefix), addresses, paths, node,
    variable and layer names."""
    t = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    t = re.sub(r"^Exception encountered when calling [\w.]+\(\)\.\s*", "", t)
    t = re.sub(r"\s*Arguments received by [\w.]+\(\):.*$", "", t, flags=re.S)
    t = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", t)
    t = re.sub(r"\s*\[Op:\w+\](?: name:\S*)?", "", t)
    t = re.sub(r"\s*Target variable: <[^>]*>", "", t)  # Keras: the variable's path and values
    t = re.sub(r"<(\w+)[^<>]*\bat 0x[0-9a-fA-F]+>", r"<\1>", t)  # object reprs
    t = re.sub(r"0x[0-9a-fA-F]+", "0x…", t)
    t = re.sub(r"(?:[A-Za-z]:)?(?:[/\\][\w.+-]+){2,}", "…", t)  # file paths
    t = re.sub(r"\b(node|output arg|input arg) \(([^()]*)\)", r"\1 (…)", t)  # ONNX node and argument names
    t = re.sub(r"\bwith name '[^']*'", "with name …", t)
    t = re.sub(r"\bpath=[\w/.-]+", "path=…", t)
    return " ".join(t.split()).strip(" .:;")


def slug(stable: str, words: int = 6) -> str:
    """A short stable name from a message's first sentence: its words without numbers, quoted or
    bracketed parts and small words ("shape-target-variable-shape-target-value")."""
    first = re.split(r"(?<=[a-z)\]])\. ", stable, maxsplit=1)[0]
    for _ in range(4):  # nested brackets, innermost first
        first = re.sub(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}", " ", first)
    first = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", " ", first)
    kept = [w for w in re.findall(r"[a-z]+", first.lower()) if len(w) > 1 and w not in _STOP]
    return "-".join(kept[:words]) or "error"


# -- what the case asked for ---------------------------------------------------------------------

def _shape(record: dict) -> tuple[int, ...] | None:
    s = record.get("shape")
    return tuple(s) if isinstance(s, list) else None


def _axis(record: dict) -> tuple[int, ...] | None:
    a = record.get("axis")
    return tuple(a) if isinstance(a, list) else None


def _canonical(axis, rank) -> tuple[int, ...] | None:
    try:
        out = sorted(a % rank for a in axis) if rank else []
    except (TypeError, ZeroDivisionError):
        return None
    return tuple(out) if len(set(out)) == len(out) and all(-rank <= a < rank for a in axis) else None


def _tuple_text(t) -> str:
    return "(" + ", ".join(str(v) for v in t) + ("," if len(t) == 1 else "") + ")"


def asked(record: dict | None) -> str:
    """What the case asked for, e.g. "axes (1, -1) of a (2, 4, 8) float16 input"."""
    if not record:
        return ""
    shape, axis, dtype = _shape(record), _axis(record), record.get("dtype")
    if shape is None or axis is None:
        return ""
    what = "a 0-d" if not shape else f"a {_tuple_text(shape)}"
    axes = "no axes" if not axis else f"axis {axis[0]}" if len(axis) == 1 else f"axes {_tuple_text(axis)}"
    return f"{axes} of {what} {dtype or ''} input".replace("  ", " ")


def pattern(record: dict | None) -> str:
    """The axes and rank a case asked for, without sizes or dtype ("axes (1, -1) of rank-3 inputs")."""
    shape, axis = (_shape(record), _axis(record)) if record else (None, None)
    if shape is None or axis is None:
        return ""
    if not shape:
        return "0-d inputs"
    axes = "no axes" if not axis else f"axis {axis[0]}" if len(axis) == 1 else f"axes {_tuple_text(axis)}"
    return f"{axes} of rank-{len(shape)} inputs"


# -- the kinds of error the catalogue knows ----------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    id: str
    matches: re.Pattern
    summary: str  # what the error says, in words (a finding's title)
    check: Callable[[re.Match, str, dict], tuple[str, str | None] | None] | None = None  # -> (detail, cause)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in re.findall(r"\d+", text))


def _check_assign(m: re.Match, stable: str, record: dict):
    """Keras-style `variable.assign`: which shape was built, and whether it is the axes' sizes in
    the order the case gave them (sorted before they were made non-negative)."""
    built = re.search(r"variable\.shape=\(([\d, ]*)\)", stable)
    value = re.search(r"value\.shape=(?:torch\.Size\(\[)?\(?([\d, ]*)", stable)
    shape, axis = _shape(record), _axis(record)
    if not (built and value and shape is not None and axis):
        return None
    b, v = _ints(built.group(1)), _ints(value.group(1))
    detail = f"the scale variable is built as {_tuple_text(b)} for {asked(record)}, and the scale assigned is {_tuple_text(v)}"
    try:
        as_given = tuple(shape[a] for a in sorted(axis))
    except IndexError:
        return detail, None
    if b == as_given and b != v:
        return (detail + f": the sizes of the axes sorted as given, {_tuple_text(tuple(sorted(axis)))}, before they "
                "were made non-negative", "scale-built-for-unsorted-axes")
    return detail, None


def _broadcast_check(m: re.Match, stable: str, record: dict):
    """Shapes that do not broadcast: is it the scale laid along the trailing axes of a case whose
    axes are not the trailing ones (the sizes of the normalized axes against the last ones)?"""
    shape, axis = _shape(record), _axis(record)
    canon = _canonical(axis, len(shape)) if shape is not None and axis is not None else None
    if not canon or canon == tuple(range(len(shape) - len(canon), len(shape))):
        return None
    scale = tuple(shape[a] for a in canon)
    trailing = shape[len(shape) - len(scale):]
    if all(s == t or s == 1 or t == 1 for s, t in zip(scale, trailing)):
        return None
    return (f"the scale of shape {_tuple_text(scale)} for {asked(record)} is applied along the trailing axes, "
            f"whose sizes are {_tuple_text(trailing)}: the two do not broadcast", "scale-wrong-axis")


def _check_vjp(m: re.Match, stable: str, record: dict):
    """JAX's VJP: a cotangent shaped as the input, an output of another shape."""
    shape = _shape(record)
    got, expected = (tuple(_ints(g)) for g in (m.group(1), m.group(2)))
    if shape is None or got != shape or expected == shape:
        return None
    return (f"the output has shape {_tuple_text(expected)} for {asked(record)}; the gradient's seed, shaped as the "
            "input, does not fit it", "shape-differs")


def _check_type(m: re.Match, stable: str, record: dict):
    declared, inferred = m.group(1), m.group(2)
    dtype = record.get("dtype") or ""
    param = "float32" if dtype.startswith(("mixed_", "default_")) else dtype
    detail = f"the graph declares its output {declared}, the runtime infers {inferred}"
    if inferred in ("float", "float32") and param == "float32" and declared != inferred:
        detail += f" from the float32 scale, for {asked(record)}: the output's type follows the scale's, not the input's"
        return detail, "output-type-follows-scale"
    return detail, None


def _check_kernel(m: re.Match, stable: str, record: dict):
    return f"no {m.group(1)} kernel for {asked(record)}", None


KINDS: tuple[Kind, ...] = (
    Kind("scale-assign-shape", re.compile(r"shape of the target variable and the shape of the target value"),
         "the scale variable is built in another shape than the scale assigned to it", _check_assign),
    Kind("shapes-do-not-broadcast", re.compile(r"could not be broadcast|Incompatible shapes|must match the size of "
                                               r"tensor|not broadcastable|cannot broadcast", re.I),
         "two shapes do not broadcast", _broadcast_check),
    Kind("empty-normalized-shape", re.compile(r"normalized_shape to be at least 1-dimensional"),
         "the kernel refuses an empty list of normalized dimensions"),
    Kind("gradient-seed-shape", re.compile(r"for argument to VJP function: got \w+\[([\d,]*)\], but expected "
                                           r"\w+\[([\d,]*)\]"),
         "the output's shape does not fit a gradient seed shaped as the input", _check_vjp),
    Kind("invalid-reduction-dimension", re.compile(r"Invalid reduction dimension"),
         "a reduction over a dimension the tensor does not have"),
    Kind("output-type-mismatch", re.compile(r"Type \(tensor\((\w+)\)\) of output arg \(…\) of node \(…\) does not "
                                            r"match expected type \(tensor\((\w+)\)\)"),
         "the runtime refuses the output type the graph declares", _check_type),
    Kind("no-kernel", re.compile(r"Could not find an implementation for (\w+\(\d+\))"),
         "the runtime has no {0} kernel for this dtype", _check_kernel),
    Kind("dtype-not-implemented", re.compile(r"not implemented for '(\w+)'"),
         "an operator is not implemented for this dtype", _check_kernel),
    Kind("out-of-memory", re.compile(r"out of memory|OOM|Unable to allocate", re.I), "memory ran out"),
)


def crash(message: str, record: dict | None = None) -> dict | None:
    """The diagnosis fields of a raised error (None if the message is not one): `id` (step, class
    and the stable cause: "build-raised-ValueError-scale-assign-shape"), `summary` (the title's
    words), `detail`, `step`, `error`, `stable`, `kind`, `asked`, and `cause` where the check
    against the case names a cause a hypothesis would (e.g. "scale-wrong-axis")."""
    raised = parse(message)
    if raised is None:
        return None
    stable = stable_message(raised.text)
    kind, detail, cause = None, None, None
    for k in KINDS:
        m = k.matches.search(stable)
        if m:
            kind = k
            if k.check and record:
                try:
                    found = k.check(m, stable, record)
                except (ValueError, IndexError, TypeError, ZeroDivisionError):
                    found = None
                if found:
                    detail, cause = found
            break
    name = kind.id if kind else slug(stable)
    summary = kind.summary.format(*m.groups()) if kind else ""
    prefix = "adapter-error-" if raised.adapter_own else ""
    out = {"id": f"{prefix}{raised.step}-raised-{raised.error}-{name}", "step": raised.step, "error": raised.error,
           "stable": stable, "kind": name, "summary": summary, "asked": asked(record), "pattern": pattern(record)}
    what = f"{raised.step} raised {raised.error}" + (" in the adapter's own code" if raised.adapter_own else "")
    said = detail or summary
    out["detail"] = (f"{what}: {said}" if said else what) + (f" ({asked(record)})" if asked(record) and not detail else "") \
        + (f"; the message: {stable}" if stable else "") + (f" ({raised.frame})" if raised.frame else "")
    if cause and not raised.adapter_own:
        out["cause"] = cause
    if raised.adapter_own:
        out["adapter_own"] = True
    return out


# What a cause found by checking an error against the case means, for a finding's title.
CAUSES = {
    "scale-wrong-axis": "the scale, applied along the trailing axes instead of the normalized ones, does not broadcast",
    "scale-built-for-unsorted-axes": "the scale variable is built for the axes sorted as given (before they are "
                                     "made non-negative), so assigning the scale fails",
    "shape-differs": "the output's shape differs from the input's, so the gradient's seed does not fit it",
    "output-type-follows-scale": "the output is typed as the float32 scale, not as the half-precision input, so "
                                 "the graph's output type is refused",
}


def title(d: dict) -> str:
    """A crash finding's title from its diagnosis: the step, the class and what the error means
    ("build raises ValueError: the scale is built for the axes sorted as given ... (axes (1, -1) of
    rank-3 inputs)"); never the exception's text, which is the evidence."""
    step, error = d.get("step"), d.get("error")
    if not step or not error:  # timed out, worker crashed, or a message the suite did not write
        return d["id"].replace("-", " ")
    head = f"{step} raises {error}" + (" in the adapter's own code" if d.get("adapter_own") else "")
    said = CAUSES.get(d.get("cause", "")) or d.get("summary")
    where = d.get("pattern") if d.get("cause") or not said else ""
    return head + (f": {said}" if said else "") + (f" ({where})" if where else "")
