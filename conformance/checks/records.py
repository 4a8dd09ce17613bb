"""The records of results.jsonl, and the messages of checks that raised.

Field names are a public contract (`case`, `adapter`, `check`, `status`, the case's parameters,
`metrics`, `tolerance`, `message`, `diagnosis`, `finding`): add fields freely, never rename these.
"""
from __future__ import annotations

import re
import traceback

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Keras colours its error messages


def record(case, adapter_name: str, check: str, status: str, message: str = "", **fields) -> dict:
    """One line of results.jsonl."""
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


ADAPTER_OWN = ", in the adapter's own code"  # after file:line, marks an adapter's own bug (diagnose.of_error)
# What a bug of Python code raises by itself; an exception of these types, raised on a line of the
# adapter's own module, is the adapter's (a framework's refusal comes from the framework's code).
_PROGRAMMING_ERRORS = (AttributeError, NameError, KeyError, IndexError, TypeError, AssertionError,
                       ZeroDivisionError, RecursionError, ImportError)


def framework_error(where: str, exc: BaseException) -> str:
    """"WHERE raised TYPE: text (file:line)": the diagnosis of a crash reads WHERE and TYPE;
    "... (file:line, in the adapter's own code)" where `adapter_own(exc)`."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    own = ADAPTER_OWN if frame and adapter_own(exc) else ""
    at = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}{own})" if frame else ""
    text = " ".join(_ANSI.sub("", str(exc)).split())[:400]
    return f"{where} raised {type(exc).__name__}: {text}{at}"


def adapter_own(exc: BaseException) -> bool:
    """Whether `exc` is the adapter's own bug rather than its framework's: its innermost frame is
    in the adapter's own module (the module of its class or a base class; for a built-in, any
    module of conformance.adapters), on a `raise`/`assert` line of it, or raising what Python
    raises for a bug (AttributeError, KeyError, TypeError, ...).  A framework function that
    refuses its input from C code called on an adapter's line (torch's copy_ of a wrongly shaped
    scale) is the framework's; NotImplementedError is the contract's "not for this input"."""
    tb = exc.__traceback__
    if tb is None or isinstance(exc, NotImplementedError):
        return False
    files = set()
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if not files and owner is not None and callable(getattr(owner, "build", None)) \
                and callable(getattr(owner, "call", None)) and not type(owner).__module__.startswith("conformance.checks"):
            files = _adapter_files(type(owner))
        last = tb
        tb = tb.tb_next
    code = last.tb_frame.f_code
    if not files or _real(code.co_filename) not in files:
        return False
    import linecache

    line = linecache.getline(code.co_filename, last.tb_lineno).strip()
    return line.startswith(("raise", "assert")) or (type(exc).__module__ == "builtins"
                                                    and isinstance(exc, _PROGRAMMING_ERRORS))


def _real(path: str) -> str:
    import os

    return os.path.realpath(path)


def _adapter_files(cls: type) -> set[str]:
    """The source files of an adapter class and its bases (not the contract's base class)."""
    import os
    import sys

    files = set()
    for klass in cls.__mro__:
        module = sys.modules.get(klass.__module__)
        path = getattr(module, "__file__", None)
        if not path or klass.__module__ in ("builtins", "conformance.adapter"):
            continue
        if klass.__module__.startswith("conformance.adapters."):  # the built-ins' shared helpers too
            folder = os.path.dirname(_real(path))
            files |= {os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".py")}
        files.add(_real(path))
    return files


def suite_error(where: str, exc: BaseException) -> str:
    """An exception of the suite's own code: never the adapter's fault, always a bug to report."""
    return f"the suite could not finish {where} ({type(exc).__name__}: {exc}); please report this"
