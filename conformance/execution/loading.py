"""Finding an adapter's class from its reference, and checking the metadata the runner keys on.

`python -m conformance.execution.loading REF` imports a user's module in a child process and prints
the class's name, env, device family, worker group and import root as JSON, so a module that
exits, raises or crashes at import is an input error, not the CLI's death."""
from __future__ import annotations

import importlib
import re
import sys

from conformance.adapter import REQUIRED, Adapter
from conformance.adapters import BUILTIN
from conformance.errors import UsageError


FUNCTION_PREFIX = "function:"  # `function:KIND:package.module:name`: a plain function (adapters/function.py)
FUNCTION_KINDS = ("torch", "jax", "numpy")


def function_ref(ref: str, kind: str | None) -> str:
    """`run --function KIND`: a user's `package.module:name` as `function:KIND:package.module:name`
    (a built-in name, or a ref that already says its kind, is left as it is)."""
    if not kind or ref in BUILTIN or ":" not in ref or ref.startswith(FUNCTION_PREFIX):
        return ref
    if kind not in FUNCTION_KINDS:
        raise UsageError(f"--function {kind!r}: choose from {', '.join(FUNCTION_KINDS)}")
    return f"{FUNCTION_PREFIX}{kind}:{ref}"


def import_adapter(ref: str) -> type[Adapter]:
    """The class for a built-in name, a `package.module:ClassName`, or a function wrapped as
    `function:KIND:package.module:name`; UsageError otherwise."""
    if ref.startswith(FUNCTION_PREFIX):
        return _import_function(ref)
    target = BUILTIN.get(ref, ref)
    if ":" not in target:
        raise UsageError(
            f"unknown adapter {ref!r}: use one of {', '.join(BUILTIN)} or package.module:ClassName"
        )
    module_name, _, class_name = target.partition(":")
    module = _import_module(module_name, ref)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        hint = (f" ({class_name!r} is a function: add --function torch, jax or numpy to wrap f(x, weight, eps))"
                if callable(cls) else "")
        raise UsageError(f"module {module_name!r} has no class {class_name!r} (adapter {ref!r}){hint}")
    for method in REQUIRED:
        if not callable(getattr(cls, method, None)):
            raise UsageError(f"adapter {ref!r} lacks the method {method}(); see the adapter contract in docs/adapters.md")
    return cls


def user_module(ref: str) -> str | None:
    """The module a user's reference names (`a.b` of `a.b:C` or `function:numpy:a.b:f`); None for
    a built-in."""
    if ref.startswith(FUNCTION_PREFIX):
        ref = ref[len(FUNCTION_PREFIX):].partition(":")[2]
    return ref.partition(":")[0] if ref not in BUILTIN and ":" in ref else None


def import_root(ref: str) -> str | None:
    """The sys.path folder the (imported) module of a user's reference was found under: for `a.b.c`
    in /x/a/b/c.py, /x.  A printed command puts it on PYTHONPATH, so that it works from any folder.
    None for a built-in, a module without a file, or one in site-packages (importable anyway)."""
    import site
    from pathlib import Path

    name = user_module(ref)
    file = getattr(sys.modules.get(name or ""), "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    if path.name.startswith("__init__."):
        path = path.parent
    depth = len(name.split("."))
    if len(path.parents) < depth:
        return None
    root = path.parents[depth - 1]
    installed = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    return None if root in installed else str(root)


def _import_module(module_name: str, ref: str):
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's input to fix
        raise UsageError(
            f"cannot import module {module_name!r} for adapter {ref!r} ({type(exc).__name__}: {exc}); "
            "check the name and that it is on PYTHONPATH"
        ) from None


def _import_function(ref: str) -> type[Adapter]:
    """`function:KIND:package.module:name`: the adapter class wrapping that function (a class
    named there is used as it is)."""
    kind, _, target = ref[len(FUNCTION_PREFIX):].partition(":")
    if kind not in FUNCTION_KINDS or ":" not in target:
        raise UsageError(f"adapter {ref!r}: a function reference is function:KIND:package.module:name "
                         f"with KIND one of {', '.join(FUNCTION_KINDS)}")
    module_name, _, attr = target.partition(":")
    module = _import_module(module_name, ref)
    obj = getattr(module, attr, None)
    if isinstance(obj, type):
        return import_adapter(target)
    if not callable(obj):
        raise UsageError(f"module {module_name!r} has no function {attr!r} (adapter {ref!r})")
    from conformance.adapters.function import wrap

    return wrap(obj, kind, ref)


# Names key records, baselines and log files: a short, path-safe word.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def adapter_name(cls: type, ref: str) -> str:
    """The class's `name`, or for a user class without one, its reference with `:` as `.`."""
    name = getattr(cls, "name", "")
    return name if name or not isinstance(name, str) else ref.replace(":", ".")


def check_metadata(ref: str, name, env) -> None:
    """UsageError unless `name` is a path-safe word and `env` a dict of str to str."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"adapter {ref!r} has the name {name!r}: a name is 1-64 characters of letters, digits "
                         "and . _ + -, starting with a letter or digit; set the class attribute `name`")
    if not isinstance(env, dict):
        raise UsageError(f"adapter {ref!r}: `env` is a {type(env).__name__}, it must be a dict of str to str")
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise UsageError(f"adapter {ref!r}: environment variable name {key!r} is not valid "
                             "(a non-empty string without '=' or NUL)")
        if not isinstance(value, str) or "\0" in value:
            raise UsageError(f"adapter {ref!r}: environment variable {key} = {value!r} is not a string without NUL")


def describe_main(argv: list[str]) -> int:
    """`python -m conformance.execution.loading REF`: import REF's class, print its name, env, device
    family, worker group and import root (import_root) as JSON.

    The CLI runs this in a child process, so a user module that exits, raises or
    crashes at import is an input error, not the CLI's death."""
    import json
    import os

    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the module prints goes to stderr
    try:
        cls = import_adapter(argv[0])
        name, env = adapter_name(cls, argv[0]), getattr(cls, "env", {})
        check_metadata(argv[0], name, env)
        family, group = getattr(cls, "device_family", None), getattr(cls, "worker_group", None)
        message = {"name": name, "env": env, "family": family if family in ("torch", "jax") else None,
                   "group": group if isinstance(group, str) else None, "import_root": import_root(argv[0])}
    except UsageError as exc:
        message = {"error": str(exc)}
    proto.write(json.dumps(message) + "\n")
    proto.flush()
    return 0


if __name__ == "__main__":
    sys.exit(describe_main(sys.argv[1:]))
