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


def framework_error(where: str, exc: BaseException) -> str:
    """"WHERE raised TYPE: text (file:line)": the diagnosis of a crash reads WHERE and TYPE."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    text = " ".join(_ANSI.sub("", str(exc)).split())[:400]
    return f"{where} raised {type(exc).__name__}: {text}{at}"


def suite_error(where: str, exc: BaseException) -> str:
    """An exception of the suite's own code: never the adapter's fault, always a bug to report."""
    return f"the suite could not finish {where} ({type(exc).__name__}: {exc}); please report this"
