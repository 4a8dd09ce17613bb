"""Adapter references (a built-in name or `package.module:ClassName`) resolved to a name and
an environment, validated, without importing any framework; and the environment of a worker."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace

from conformance.execution.loading import adapter_name, check_metadata, import_adapter
from conformance.adapters import BUILTIN
from conformance.adapters._environment import WORKER_ENV as FRAMEWORK_ENV
from conformance.errors import UsageError
from conformance.execution.procs import describe_exit

# Workers run one thread each: --jobs decides parallelism, and thread pools of
# several frameworks on two cores only fight.  Reductions of the sizes in the
# suites are single-threaded in every framework anyway.  The frameworks' own
# settings are the adapters' (adapters/_environment.py).
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    **FRAMEWORK_ENV,
    "PYTHONUNBUFFERED": "1",
}
LOAD_TIMEOUT_S = 300.0  # importing a framework cold can take tens of seconds on a busy machine


@dataclass(frozen=True)
class AdapterRef:
    ref: str  # as the user gave it: a built-in name or package.module:ClassName
    name: str
    env: dict = field(default_factory=dict)
    family: str | None = None  # the adapter's device_family
    group: str | None = None  # the adapter's worker_group
    builtin: bool = False  # one of conformance.adapters.BUILTIN
    # Folders first on the worker's sys.path (an overlay of other releases: overlays.py), and the
    # interpreter that runs the worker (None: this one); `run --with`, `run --python`.
    path_prefix: tuple[str, ...] = ()
    python: str | None = None
    # The folder a user's module was imported from (loading.import_root): the PYTHONPATH that the
    # commands printed for it carry.  None: a built-in, or a module importable from anywhere.
    import_root: str | None = None


def share_key(adapter: AdapterRef, with_builtins: bool = False) -> tuple:
    """Adapters with equal keys may share a worker process: the same worker group and the same
    environment (device placement and caches included), and both built-ins or both the user's
    unless `with_builtins` (`--share-with-builtins`): a user's adapter that changes the process
    state is caught (state.py), but a built-in's verdicts should not even depend on that."""
    if adapter.group is None:
        return ("alone", adapter.name)
    side = () if with_builtins else ("builtin" if adapter.builtin else "user",)
    return ("group", adapter.group, tuple(sorted(adapter.env.items())), adapter.path_prefix, adapter.python, *side)


def place(adapters: list[AdapterRef], requested: str) -> list[AdapterRef]:
    """The adapters with the environment of `--device requested` (UsageError if one cannot)."""
    from conformance.execution import devices

    placements = devices.place(requested, {a.name: a.family for a in adapters})
    return [replace(a, env={**a.env, **devices.worker_env(placements[a.name], a.family)}) for a in adapters]


def with_cache(adapters: list[AdapterRef], folder) -> list[AdapterRef]:
    """The adapters with the compilation caches of `folder` (None: none) in their environment;
    an adapter's own env wins where it sets the same variable."""
    from conformance.execution import cache

    env = cache.worker_env(folder)
    return [replace(a, env={**env, **a.env}) for a in adapters]


def with_overlay(adapters: list[AdapterRef], folder) -> list[AdapterRef]:
    """The adapters with the overlay `folder` (overlays.overlay; None: none) first on their
    workers' sys.path."""
    if folder is None:
        return list(adapters)
    return [replace(a, path_prefix=(str(folder), *a.path_prefix)) for a in adapters]


def with_python(adapters: list[AdapterRef], python: str | None) -> list[AdapterRef]:
    """The adapters with their workers run by `python` (None: this interpreter)."""
    return [replace(a, python=python) for a in adapters]


def worker_argv(adapter: AdapterRef, *args: str) -> list[str]:
    """The command line of an adapter's worker: its interpreter, `-m conformance.execution.worker`."""
    return [adapter.python or sys.executable, "-m", "conformance.execution.worker", *args]


def worker_env(adapter: AdapterRef) -> dict:
    """The environment of an adapter's worker process."""
    env = {**os.environ, **WORKER_ENV, **adapter.env}
    # Whatever the parent could import (a user's adapter module), the worker can; an overlay's
    # releases before everything else.  Another interpreter (--python) gets the current folder
    # and the user's PYTHONPATH, not this one's packages.
    inherited = sys.path if adapter.python is None else os.environ.get("PYTHONPATH", "").split(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [*adapter.path_prefix, os.getcwd(), *inherited] if p)
    return env


def _describe_user_adapter(ref: str) -> tuple[str, dict, str | None, str | None, str | None]:
    """Import a user's adapter module in a child process: its exit, exception or crash
    at import is the user's input to fix, not the end of the CLI."""
    probe = AdapterRef(ref, ref)
    try:
        p = subprocess.run([sys.executable, "-m", "conformance.execution.loading", ref], capture_output=True, text=True,
                           env=worker_env(probe), timeout=LOAD_TIMEOUT_S, start_new_session=True,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UsageError(f"importing adapter {ref!r} did not finish within {LOAD_TIMEOUT_S:.0f}s") from None
    lines = p.stdout.strip().splitlines()
    message = json.loads(lines[-1]) if lines else None
    if not message:
        tail = " | ".join(p.stderr.strip().splitlines()[-2:])[:300]
        raise UsageError(f"importing the module of adapter {ref!r} ended the process ({describe_exit(p.returncode)}) "
                         f"before its class could be read" + (f": {tail}" if tail else ""))
    if "error" in message:
        raise UsageError(message["error"])
    return message["name"], message["env"], message.get("family"), message.get("group"), message.get("import_root")


def resolve(refs: list[str]) -> list[AdapterRef]:
    """Each adapter's name and env, validated, without importing any framework.

    Names must be unique, and a user's adapter may not take a built-in's name:
    results, baselines and logs are keyed by it."""
    out: list[AdapterRef] = []
    for ref in refs:
        family = group = root = None
        if ref in BUILTIN:
            cls = import_adapter(ref)
            name, env = adapter_name(cls, ref), dict(getattr(cls, "env", {}) or {})
            family, group = getattr(cls, "device_family", None), getattr(cls, "worker_group", None)
        elif ":" in ref:
            name, env, family, group, root = _describe_user_adapter(ref)
        else:
            import_adapter(ref)  # raises the "unknown adapter" UsageError
        check_metadata(ref, name, env)
        if ref not in BUILTIN and name in BUILTIN:
            raise UsageError(f"adapter {ref!r} is named {name!r}, like a built-in adapter; give it its own `name`")
        clash = next((a for a in out if a.name == name), None)
        if clash and clash.ref == ref:
            continue  # the same adapter named twice
        if clash:
            raise UsageError(f"adapters {clash.ref!r} and {ref!r} are both named {name!r}; names must be unique")
        out.append(AdapterRef(ref, name, env, family, group, builtin=ref in BUILTIN, import_root=root))
    return out


def adapter_flag(ref: str) -> str:
    """The command-line option that selects the adapter `ref`, as a user would type it."""
    import shlex

    return f"--adapter {shlex.quote(ref)}" if ":" in ref else f"--adapters {shlex.quote(ref)}"
