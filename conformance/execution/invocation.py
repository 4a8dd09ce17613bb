"""How the commands the suite prints (rerun, repro, a fuzz replay) invoke it, so that they work
pasted into a shell in another folder, with another PATH: which `conformance` executable, and
the PYTHONPATH a user's module (loading.import_root) and, where needed, the suite itself need.

The executable is decided where the run starts and written in its `run` record (resume.py), so
the reports written later from results.jsonl print the same one."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import conformance

BARE = "conformance"  # what results from before the run record said which print


def conformance_command(argv0: str | None = None, executable: str | None = None,
                        path: str | None = None) -> tuple[str, tuple[str, ...]]:
    """(the shell words that start `conformance`, the folders it needs on PYTHONPATH).

    The `conformance` script running (`argv0`), else the one beside the interpreter
    (`executable`): bare `conformance` where PATH (`path`, default $PATH) finds that very script,
    else its full path.  Neither (the suite imported, not installed with its script): the
    interpreter's `-m conformance.cli`, with the folder it imported the suite from when that came
    from PYTHONPATH or the current folder."""
    argv0 = sys.argv[0] if argv0 is None and sys.argv else argv0
    executable = executable or sys.executable
    candidates = [Path(argv0)] if argv0 and Path(argv0).name == BARE else []
    candidates.append(Path(executable).parent / BARE)  # the venv's bin, never resolved past its python link
    for script in candidates:
        if script.is_file() and os.access(script, os.X_OK):
            found = shutil.which(BARE, path=path)
            if found and os.path.samefile(found, script):
                return BARE, ()
            return shlex.quote(str(script.absolute())), ()
    root = Path(conformance.__file__).resolve().parent.parent
    searched = {Path(p or ".").resolve() for p in [*os.environ.get("PYTHONPATH", "").split(os.pathsep), os.getcwd()]}
    return shlex.join([executable, "-m", "conformance.cli"]), (str(root),) if root in searched else ()


def command_prefix(command: str = BARE, paths=()) -> str:
    """`PYTHONPATH=A:B COMMAND`, or `COMMAND` where nothing is needed on PYTHONPATH: the start of a
    printed line (the user's folders first, then the suite's; each once)."""
    unique = list(dict.fromkeys(p for p in paths if p))
    return (f"PYTHONPATH={shlex.quote(os.pathsep.join(unique))} " if unique else "") + command
