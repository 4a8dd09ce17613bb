"""The drafting half of `conformance issue`: the text of an upstream issue, no I/O of its own.

Split from commands/issue.py (which keeps the command, its arguments, the worker that runs the case
and writing the file) so that each holds one idea.  Here: the self-contained script (the data as
literals or drawn from the case's seed, the adapter's `snippet()`, the float64 analysis it prints,
the versions), what that analysis prints on the adapter's own output, and the Markdown of the
draft (title, environment, expected vs got, the other affected configurations).  It lives in
commands/ and not in reports/ because the script reuses `conformance repro`'s pieces
(commands/repro.py: `literal_data`, `GENERIC`, `VERSIONS_TAIL`) and asks the adapter for its
snippet, which only the adapter's worker can do; reports/ are pure functions of the results and
import no command.
"""
from __future__ import annotations

import inspect
import re
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np

# -- the script ------------------------------------------------------------------------------------

HEAD = '''"""{title}

Reproduction of case {case} on {adapter} (written by `conformance issue`): numpy and the
framework only.  Run: python repro.py
"""
import hashlib
import os
import sys

import numpy as np

{data}
meta = {meta}


{input_helpers}


x, scale = array("x"), array("scale")
dy = array("dy") if "dy" in data else None
axis, axes, eps, input_shape = tuple(meta["axis"]), tuple(meta["axes"]), meta["epsilon"], tuple(meta["shape"])
dtype, compute_dtype, param_dtype = meta["dtype"], meta["compute_dtype"], meta["param_dtype"]
dtype_args = meta["dtype_args"]  # False: the layer is built with no dtype arguments (the framework's defaults)
'''

# What the script prints after the layer ran; the worker runs the very same code on the adapter's
# own output, so the draft quotes what the script prints.
ANALYSIS = '''
# -- what the float64 formula gives: y = x / sqrt(mean(x**2 over axes) + eps) * scale -------------
def ulp(v, name):
    """The spacing of `name`'s numbers at |v| (subnormals: the smallest spacing)."""
    import math

    mantissa, lowest = {"float16": (10, -14), "bfloat16": (7, -126), "float32": (23, -126)}.get(name, (52, -1022))
    e = max(math.floor(math.log2(abs(v))), lowest) if v and math.isfinite(v) else lowest
    return 2.0 ** (e - mantissa)


eps_used = meta["epsilon_used"]
x64 = float64(x)
with np.errstate(all="ignore"):
    s64 = np.reshape(float64(scale), [x.shape[k] if k in axes else 1 for k in range(x.ndim)])
    formula = x64 / np.sqrt(np.mean(x64 * x64, axis=axes, keepdims=True) + eps_used) * s64
print(f"output: {y_dtype}, shape {tuple(y64.shape)}, sha256 {hashlib.sha256(y_bytes).hexdigest()}")
if y64.shape != formula.shape:
    print(f"the output's shape {tuple(y64.shape)} differs from the input's {tuple(formula.shape)}")
elif y64.size:
    with np.errstate(all="ignore"):
        gap = np.abs(y64 - formula)
        gap = np.where(np.isnan(gap), np.where(np.isnan(y64) == np.isnan(formula), 0.0, np.inf), gap)
    i = np.unravel_index(int(np.argmax(gap)), gap.shape)
    got, want = float(y64[i]), float(formula[i])
    far = abs(got - want) / ulp(want, compute_dtype) if np.isfinite(got) and np.isfinite(want) else float("nan")
    print(f"at {[int(k) for k in i]}: got {got!r}, the float64 formula gives {want!r} "
          f"({far:.4g} ULP of {compute_dtype}; epsilon {eps_used!r})")
'''


def _generator_source(case) -> str:
    """`data = {...}`: the case's x and scale drawn in the script exactly as the suite draws them
    (cases/case.py: materialize), from the case's seed."""
    from conformance.cases import case as case_module
    from conformance.cases.distributions import DISTRIBUTIONS, SCALES

    prec = case.precision
    key = case.id.rsplit("/", 1)[0]
    draw, scale_fn = DISTRIBUTIONS[case.distribution], SCALES[case.scale]
    lines = [
        "# The case's inputs, drawn as the suite draws them (its cases/case.py) from the case's seed.",
        f"class fmt:  # the range of {prec.compute.name}",
        f"    max = {float(prec.compute.max)!r}",
        f"    tiny = {float(prec.compute.tiny)!r}",
        "", "", textwrap.dedent(inspect.getsource(draw)).strip(), "", "",
        textwrap.dedent(inspect.getsource(scale_fn)).strip(), "", "",
        textwrap.dedent(inspect.getsource(case_module._from_rows)).strip(), "", "",
        "def in_dtype(a, name):",
        '    """float64 values rounded once to `name`; bfloat16 as its 16 bits."""',
        '    if name != "bfloat16":',
        "        return a.astype(name)",
        "    try:",
        "        import ml_dtypes",
        "    except ImportError:  # round to float32, then to nearest even in the top 16 bits",
        "        b = a.astype(np.float32).view(np.uint32).astype(np.uint64)",
        "        return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)",
        "    return a.astype(ml_dtypes.bfloat16).view(np.uint16)",
        "", "",
        f"rng = np.random.default_rng([{case.seed}, {zlib.crc32(key.encode())}])",
        f"x = in_dtype(_from_rows({draw.__name__}(rng, {case.rows}, {case.reduction_length}, fmt), "
        f"{tuple(case.shape)!r}, {tuple(case.axes)!r}), {prec.compute.name!r})",
        f"scale = {scale_fn.__name__}(rng, {tuple(case.scale_shape)!r})",
    ]
    if prec.framework_defaults:  # exact in the input dtype, kept in float32
        if prec.compute.name == "bfloat16":
            lines.append("scale = (in_dtype(scale, 'bfloat16').astype(np.uint32) << 16).view(np.float32).astype(np.float64)")
        else:
            lines.append(f"scale = in_dtype(scale, {prec.compute.name!r}).astype(np.float64)")
    lines += [f"data = {{'x': np.ascontiguousarray(x), 'scale': in_dtype(scale, {prec.param.name!r})}}", "del x, scale"]
    return "\n".join(lines)


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.view(np.uint16) if a.dtype.name == "bfloat16" else a


def _read_back(source: str) -> dict:
    """The `data` a data source makes, as the script makes it."""
    def float64(a):
        if a.dtype == np.uint16:
            return (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return np.asarray(a).astype(np.float64)

    ns = {"np": np, "float64": float64}
    exec(source, ns)  # noqa: S102 - the source this module generated
    return ns["data"]


def _same(data: dict, arrays: dict) -> bool:
    for k, a in arrays.items():
        got, want = np.asarray(data.get(k)), _bits(a)
        if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
            return False
    return True


def _snippet_parts(adapter, spec) -> tuple[dict | None, str | None]:
    """The adapter's snippet: {"imports", "functions", "build", "call"} as source, or (None, why)."""
    from conformance.adapter import provides

    if not provides(adapter, "snippet"):
        return None, "the adapter has no snippet(): the script imports the adapter"
    try:
        snippet = adapter.snippet(spec)
    except NotImplementedError:
        return None, "the adapter's snippet() does not cover this case: the script imports the adapter"
    except Exception as exc:  # noqa: BLE001
        return None, f"snippet() raised {type(exc).__name__}: the script imports the adapter"
    keys = ("imports", "functions", "build", "call")
    if not isinstance(snippet, dict) or not all(isinstance(snippet.get(k) or "", str) for k in keys):
        return None, "snippet() did not return source texts: the script imports the adapter"
    return {k: textwrap.dedent(snippet.get(k) or "").strip() for k in keys}, None


def script_text(title: str, case, adapter, ref: str, arrays: dict, meta: dict, parts: dict | None,
                import_root: str) -> tuple[str, dict]:
    """The issue's script and the `data` it makes (for the worker to run the adapter on)."""
    from conformance.cases.case import Case
    from conformance.commands.repro import GENERIC, INPUT_HELPERS, VERSIONS_TAIL, literal_data

    data = literal_data(arrays)
    if data is None and isinstance(case, Case):
        data = _generator_source(case)
        if not _same(_read_back(data), arrays):  # rounding differs here: the exact values instead
            data = None
    if data is None:  # an issue's script carries its inputs, however large, when no seed makes them
        data = literal_data(arrays, limit=float("inf"))
    head = HEAD.format(input_helpers=INPUT_HELPERS, title=title.replace('"""', "'''"), case=case.id, adapter=adapter.name, data=data, meta=repr(meta))
    if parts:
        setup = "\n\n\n".join(p for p in (parts["imports"], parts["functions"]) if p)
        run = "\n".join(p for p in (parts["build"], parts["call"]) if p)
    else:
        setup, run = "", textwrap.dedent(GENERIC.format(ref=ref, cwd=import_root)).strip()
    body = ("\n# -- the layer, as the adapter builds and calls it " + "-" * 40 + "\n" + setup + "\n\n\ntry:\n"
            + textwrap.indent(run, "    ") + "\nexcept Exception as exc:\n"
            + '    print(f"raised {type(exc).__name__}: {exc}")\n    raise\n')
    return head + body + ANALYSIS + VERSIONS_TAIL, _read_back(data)


def _analysis(meta: dict, x, scale, y) -> list[str]:
    """What the script prints after the layer ran, computed on the adapter's own output."""
    from conformance.commands.repro import VERSIONS_TAIL

    out = np.asarray(y)
    lines: list[str] = []

    def float64(a):
        if a.dtype == np.uint16:
            return (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return np.asarray(a).astype(np.float64)

    y_dtype = "bfloat16" if out.dtype == np.uint16 else out.dtype.name
    ns = {"np": np, "sys": sys, "hashlib": __import__("hashlib"), "meta": meta, "x": x, "scale": scale,
          "axes": tuple(meta["axes"]), "compute_dtype": meta["compute_dtype"], "float64": float64,
          "y_dtype": y_dtype, "y_bytes": np.ascontiguousarray(out).tobytes(), "y64": float64(out),
          "print": lambda *a, **k: lines.append(" ".join(str(v) for v in a))}
    exec(ANALYSIS + VERSIONS_TAIL, ns)  # noqa: S102 - this module's own source, as the script runs it
    return lines


# -- the draft ---------------------------------------------------------------------------------------

def issue_title(defect: dict | None, finding: dict | None, record: dict) -> str:
    """A title a maintainer would write: the project, what goes wrong, on what input."""
    from conformance.diagnosis.crashes import asked, pattern
    from conformance.reports.defects import TRIGGER_TEXT

    owner = defect["owner"] if defect else ""
    what = (finding or defect)["title"]
    if defect and defect.get("trigger"):
        what = what.split(": ", 1)[1] if ": " in what else what
        where = TRIGGER_TEXT[defect["trigger"]]
    else:
        where = asked(record)
    what = _symptom(what.split("; ")[0])
    if pattern(record) and pattern(record) in what:
        where = ""
    return (f"{owner}: " if owner else "") + f"RMS normalization: {what}" + (f" ({where})" if where else "")


def _pick(records: list[dict]) -> dict:
    """The case to reproduce: the most readable forward record (the script runs the forward
    pass), else the most readable of all."""
    from conformance.reports.findings import smallest_readable

    forward = [r for r in records if r["check"] == "forward"]
    return smallest_readable(forward or records)


def _environment(meta: dict, owners: tuple) -> list[str]:
    versions = dict(meta.get("versions") or {})
    python = versions.pop("python", None)
    machine = meta.get("machine") or {}
    out = ["- packages: " + (", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "unknown")
           + f" (the projects that own these numerics: {', '.join(owners)})"]
    out.append(f"- Python {python or 'unknown'}; {machine.get('platform', 'OS unknown')}"
               + (f", {machine['processor']}" if machine.get("processor") else "")
               + (f", {machine['cpus']} CPUs" if machine.get("cpus") else ""))
    out.append(f"- device: {meta.get('device') or 'cpu'}")
    return out


def render(defect: dict | None, finding: dict | None, record: dict, meta: dict, result: dict, others: list[dict],
           rerun: str) -> str:
    """The issue as Markdown."""
    from conformance.reports.defects import owners_of

    title = issue_title(defect, finding, record)
    out = [f"# {title}", ""]
    known = (defect or {}).get("upstream") or []
    if known:
        refs = "; ".join(f"[{i['ref']}]({i['url']}) ({i['state']}: {i['title']})" for i in known)
        out += [f"> Already reported as {refs}: add to it rather than opening a new issue.", ""]
    d = record.get("diagnosis") or {}
    what = _symptom(_finding_title(defect, finding, record))
    detail = re.sub(r"^\w+ raised \w+( in the adapter's own code)?: ", "", (d.get("detail") or "").split("; the message: ")[0])
    sentence = f"{what[0].upper()}{what[1:]}" + (f": {detail}" if detail and detail not in what else "")
    out += ["**What happens.** " + sentence.rstrip(".") + ".", "",
            f"Case `{record['case']}` on `{record['adapter']}` (check `{record['check']}`): " + _case_words(record), ""]
    out += ["**Environment**", "", *_environment(meta, owners_of(record["adapter"], meta)), ""]
    script = Path(result["script"]).read_text()
    out += ["**Reproduction** (self-contained: numpy and the framework; `python repro.py`)", "", "```python",
            script.rstrip(), "```", "", "Running it prints:", "", "```", *result["lines"], "```", ""]
    if result.get("note"):
        out += [f"(Note: {result['note']}.)", ""]
    e = d.get("evidence") or {}
    if e and "got" in e and "expected" in e:
        out += [f"**Expected vs got** (the suite's evidence, at {e['index']}): expected {e['expected']!r} (the float64 "
                f"formula), got {e['got']!r}" + (f", the diagnosis predicts {e['predicted']!r}" if "predicted" in e else "")
                + (f"; {record['metrics']['max_ulp']:.4g} ULP at most over the output" if
                   (record.get("metrics") or {}).get("max_ulp") is not None else "") + ".", ""]
    elif record.get("message"):
        out += [f"**What the suite recorded**: {record['message']}", ""]
    if record["check"] != "forward":
        out += [f"The script runs the forward pass; this discrepancy is in `{record['check']}` (the rerun below shows it).", ""]
    total = (defect or finding)["results"]
    adapters = (defect or finding).get("per_adapter") or {}
    pairs = list(dict.fromkeys((r["case"], r["adapter"]) for r in others if r["case"] != record["case"]))
    shown = pairs[:5]
    out += [f"**Other affected configurations**: {total} result(s) in all, on "
            + ", ".join(f"{a} ({n})" for a, n in adapters.items()) + (
                f"; {len(pairs)} other (case, adapter) pair(s), e.g. " + ", ".join(f"`{c}` ({a})" for c, a in shown)
                if shown else "") + ".", "", f"**Rerun with the suite**: `{rerun}`", ""]
    return "\n".join(out)


def _symptom(title: str) -> str:
    from conformance.reports.defects import _symptom as symptom

    return symptom(title)


def _finding_title(defect: dict | None, finding: dict | None, record: dict) -> str:
    """The title of the finding the reproduced record is in (a defect's title lists them all)."""
    if finding:
        return finding["title"]
    for f in (defect or {}).get("finding_titles", {}).items():
        if f[0] == record.get("finding"):
            return f[1]
    return defect["title"] if defect else ""


def _case_words(record: dict) -> str:
    from conformance.diagnosis.crashes import asked

    eps = record.get("epsilon")
    return (asked(record) or "this configuration") + (f", epsilon {eps!r}" if eps is not None else
                                                      ", the implementation's default epsilon") \
        + (f", {record['distribution']} inputs" if record.get("distribution") else "") + "."


def script_of(draft: str) -> str:
    """The ```python block of a draft (for tests and for a user who wants it as a file)."""
    return draft.split("```python\n", 1)[1].split("\n```", 1)[0] + "\n"


def printed_of(draft: str) -> list[str]:
    """The lines the draft says the script prints."""
    return draft.split("Running it prints:\n\n```\n", 1)[1].split("\n```", 1)[0].splitlines()
