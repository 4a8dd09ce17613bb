"""Adapters that print on stdout, hang, or give a broken snippet (tests/harness/test_repro_show.py).

Each is the numpy reference otherwise, so no framework is needed; `conformance repro` must give
the reference's own output hash for the printing ones, whatever they print.  Run them through
the CLI only (the hanging one sleeps for ten minutes).
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time

from conformance.adapters.numpy_reference import NumpyReference

# What a confused harness could take for its own result: a well-formed, wrong answer.
FAKE = {"event": "repro", "script": "/nonexistent/repro.py", "dtype": "planted", "sha256": "planted" * 9}


class PrintsNoNewline(NumpyReference):
    """Prints on stdout in build and call, without a trailing newline."""

    name = "printing-no-newline"

    def build(self, spec):
        sys.stdout.write("building...")
        sys.stdout.flush()
        return super().build(spec)

    def call(self, layer, x):
        os.write(1, b"calling...")  # the file descriptor itself, past sys.stdout
        return super().call(layer, x)


class PrintsAtExit(NumpyReference):
    """Prints on stdout when the interpreter exits, after the harness has said its last word."""

    name = "printing-at-exit"

    def load(self):
        atexit.register(lambda: print("goodbye from the adapter", flush=True))
        return super().load()


class PrintsJson(NumpyReference):
    """Prints JSON lines that look like a result, while it runs and at exit."""

    name = "printing-json"

    def load(self):
        atexit.register(lambda: print(json.dumps(FAKE), flush=True))
        print(json.dumps(FAKE))
        return super().load()

    def call(self, layer, x):
        print(json.dumps(FAKE), flush=True)
        print(json.dumps([1, 2, 3]), flush=True)
        return super().call(layer, x)


def _start_sleeper() -> None:
    """A helper in a session of its own: the kill of a hang must take it too."""
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class HangsInCall(NumpyReference):
    """Starts a helper, then hangs in call()."""

    name = "printing-hangs"

    def call(self, layer, x):
        _start_sleeper()
        time.sleep(600)


class HangsInBuild(NumpyReference):
    name = "printing-hangs-build"

    def build(self, spec):
        time.sleep(600)


class SnippetRaises(NumpyReference):
    """Provides snippet(), which raises: the script falls back to importing the adapter."""

    name = "printing-snippet-raises"

    def snippet(self, spec):
        raise RuntimeError("planted snippet failure\nsecond line")


class SnippetGarbage(NumpyReference):
    """snippet() returns source that does not compile."""

    name = "printing-snippet-garbage"

    def snippet(self, spec):
        return {"imports": "import numpy as np", "build": "layer = (", "call": "y = layer"}
