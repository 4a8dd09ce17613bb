"""Reading the user's files (suites, xfail lists): size-capped, strict UTF-8, errors as input errors."""
from __future__ import annotations

import tomllib
from pathlib import Path

from conformance.errors import UsageError

MAX_INPUT_BYTES = 16 << 20  # a suite or xfail file is a few kB; more is not one (e.g. /dev/zero)


def read_text(path: Path, what: str) -> str:
    """The text of a regular file of at most MAX_INPUT_BYTES; UsageError saying what is wrong."""
    path = Path(path)
    try:
        if not path.is_file():
            raise UsageError(f"{what} {path} " + ("is not a regular file" if path.exists() else "does not exist"))
        with open(path, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise UsageError(f"{what} {path} is larger than {MAX_INPUT_BYTES >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def read_toml(path: Path, what: str) -> dict:
    text = read_text(path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{what} {path} is not valid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # 5000-digit integers, tables nested 5000 deep
        raise UsageError(f"{what} {path} cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from None
