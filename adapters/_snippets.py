"""An adapter's `snippet(spec)`, made from the very functions the adapter runs (for `conformance repro`).

Each framework adapter writes its framework code once, as module-level functions that its
methods call (`build` and `call`, and the training step where `call` returns its primal output).
`snippet()` hands those functions to conformance/commands/repro.py, which writes their source
(`inspect.getsource`, as ONNX's backend test exporter does) into a script that needs no suite,
followed by one statement that builds the layer and one that calls it.  So a script runs the
adapter's code, not a copy of it that can drift.

The rules those functions keep:
- numpy and the framework only; the framework imported inside the function (an adapter imports
  its framework in `load()`, never at module import), so nothing in them imports this project;
- a parameter named like one of SCRIPT_NAMES is bound to the case's value of that name, by the
  adapter (`bind(fn, spec)`) as by the script (`invoke("layer", fn)`), so the adapter and the
  script pass the same arguments; other parameters are given explicitly to both;
- the functions, classes, constants and modules of adapters/ that a function refers to by name
  go into the script with it (`sources`), so a snippet names only its entry points.
"""
from __future__ import annotations

import inspect
import textwrap
import types

# The names a repro script defines from the case (conformance/commands/repro.py, SCRIPT_HEAD).
SCRIPT_NAMES = ("x", "scale", "dy", "axis", "axes", "eps", "input_shape", "dtype", "compute_dtype", "param_dtype",
                "dtype_args")
PACKAGE = __name__.rpartition(".")[0]  # conformance.adapters: where the functions a script may copy live


def spec_values(spec) -> dict:
    """The script's names, as the case's spec gives them (x and dy come with each call)."""
    return {"scale": spec.scale, "axis": tuple(spec.axis), "axes": spec.axes, "eps": spec.epsilon,
            "input_shape": tuple(spec.input_shape), "dtype": spec.dtype, "compute_dtype": spec.compute_dtype,
            "param_dtype": spec.param_dtype, "dtype_args": not spec.no_dtype_args}


def bind(fn, spec, **given):
    """`fn` called as the script calls it (`invoke`): parameters named like the script's names get
    the spec's values, the others `given`."""
    values = {**spec_values(spec), **given}
    return fn(**{p: values[p] for p in inspect.signature(fn).parameters})


class Source(str):
    """A given argument written into the script as this expression (other values are written with repr)."""

    def __repr__(self) -> str:
        return str(self)


def expression(fn, **given) -> str:
    """The script's call of `fn`, with the arguments `bind` passes: the script's names as they are,
    `given` by keyword (and every argument after the first of them)."""
    args, keyword = [], False
    for p in inspect.signature(fn).parameters:
        if p in given:
            args.append(f"{p}={given[p]!r}")
            keyword = True
        else:
            args.append(f"{p}={p}" if keyword else p)
    return f"{fn.__name__}({', '.join(args)})"


def invoke(target: str, fn, **given) -> str:
    """The script's statement `target = fn(...)` (see `expression`)."""
    return f"{target} = {expression(fn, **given)}"


def _names(code: types.CodeType):
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _codes(obj):
    if inspect.isfunction(obj):
        yield obj.__code__
    elif inspect.isclass(obj):
        for member in vars(obj).values():
            member = getattr(member, "__func__", member)
            if inspect.isfunction(member):
                yield member.__code__


def _literal(value) -> bool:
    if isinstance(value, (bool, int, float, str, type(None))):
        return True
    if isinstance(value, (tuple, list)):
        return all(_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_literal(k) and _literal(v) for k, v in value.items())
    return False


def sources(*entries) -> str:
    """The source of `entries` and of everything of adapters/ they refer to by name, each once,
    what a function uses before it; the modules they use as imports, their constants as literals."""
    imports: list[str] = []
    defined: dict[str, str] = {}  # name -> source, in the order the script defines them
    seen: set[int] = set()

    def visit(obj) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        module_globals = vars(inspect.getmodule(obj))
        for code in _codes(obj):
            for name in _names(code):
                if name not in module_globals or name in defined:
                    continue
                value = module_globals[name]
                if isinstance(value, types.ModuleType):
                    line = f"import {value.__name__}" + ("" if value.__name__ == name else f" as {name}")
                    if line not in imports:
                        imports.append(line)
                elif (inspect.isfunction(value) or inspect.isclass(value)) and \
                        value.__module__.startswith(PACKAGE + "."):
                    visit(value)
                elif inspect.getmodule(obj).__name__.startswith(PACKAGE + ".") and _literal(value) and \
                        name.isupper():
                    defined[name] = f"{name} = {value!r}\n"
        defined.setdefault(obj.__name__, textwrap.dedent(inspect.getsource(obj)))

    for entry in entries:
        visit(entry)
    return "\n".join(imports) + ("\n\n\n" if imports else "") + "\n\n".join(defined.values())


# The end of every call part: the output as repro.py's script reports it (float64() is the script's).
OUTPUT = """
out = np.asarray(out)
y_dtype = "bfloat16" if out.dtype == np.uint16 else out.dtype.name  # uint16: bfloat16's bits, without ml_dtypes
y_bytes, y64 = np.ascontiguousarray(out).tobytes(), float64(out)
"""


def snippet(*entries, build: str, call: str, env: dict | None = None, imports: tuple[str, ...] = ()) -> dict:
    """An adapter's snippet, {"imports", "functions", "build", "call"} as source text: the source of
    `entries` and what they use (`sources`); `build`, a statement that sets `layer` from the
    script's names; `call`, one that sets `out`, the output as a numpy array, which the call
    part then reports as y_dtype, y_bytes and y64.  `env` is set before any import: the
    framework reads it when imported (KERAS_BACKEND, JAX's float64)."""
    head = [f"os.environ.update({dict(env)!r})  # read by the framework when it is imported"] if env else []
    return {"imports": "\n".join([*head, *imports]), "functions": sources(*entries), "build": build,
            "call": call + "\n" + OUTPUT.strip()}
