"""`conformance repro CASE --adapter NAME --out DIR`: a reproduction that needs no suite.

DIR/inputs.npz holds the case's arrays (bfloat16 as its bits) and DIR/repro.py
builds the layer the way the adapter does, runs it, computes the float64 formula
inline and prints the discrepancy, a hash of the output's bytes and the versions it
ran with: what one pastes into an upstream issue.  A small case's arrays are written
into the script itself (`literal_data`), so it needs no inputs.npz.  The adapter's optional `snippet(spec)` gives the
framework code: {"imports", "functions", "build", "call"}, each source text, the
functions the very ones the adapter runs (adapters/_snippets.py); `build` sets
`layer` from the names SCRIPT_HEAD defines, `call` sets y_dtype, y_bytes and y64.
An adapter without one gets a script that imports the adapter (and so needs the suite).
The command also runs the adapter itself once, in its own environment, and
prints the same hash, so the script can be checked against the suite.

That run is a worker process (conformance.execution.worker.serve): the adapter's stdout goes to
stderr (a log in a temporary folder, whose last lines an error quotes), and the result comes over
the worker's private copy of stdout, so nothing the adapter prints can pass for it.  Loading has
LOAD_TIMEOUT_S, the case (build, call, writing the files) `--timeout`; a hang kills the worker
with everything it started.  A `snippet()` that raises, or gives source that does not compile,
gets the generic script, and the command says why.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np

from conformance.adapter import provides
from conformance.commands.report import EXIT_FAIL, EXIT_PASS
from conformance.errors import UsageError

INPUT_HELPERS = '''
def array(name):
    """An input in its dtype; bfloat16 is stored as its 16 bits (read as bfloat16 with ml_dtypes)."""
    a = data[name]
    if meta["dtypes"][name] == "bfloat16":
        try:
            import ml_dtypes  # installed with JAX and TensorFlow, which take bfloat16 numpy arrays
        except ImportError:
            return a
        return a.view(ml_dtypes.bfloat16)
    return a


def float64(a):
    if a.dtype == np.uint16:  # bfloat16 bits: the top half of a float32
        return (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return np.asarray(a).astype(np.float64)
'''  # the script's two input helpers, shared with `conformance issue` drafts (written once)

SCRIPT_HEAD = '''"""Reproduction of {case} on {adapter} ({versions}).

Written by `conformance {command}`; needs numpy and the framework only.  Run: python {script}
"""
import hashlib
import os
import sys

import numpy as np

{data}
meta = {meta}


{input_helpers}


x, scale, dy = array("x"), array("scale"), array("dy")
axis, axes, eps, input_shape = tuple(meta["axis"]), tuple(meta["axes"]), meta["epsilon"], tuple(meta["shape"])
dtype, compute_dtype, param_dtype = meta["dtype"], meta["compute_dtype"], meta["param_dtype"]
dtype_args = meta["dtype_args"]  # False: the layer is built with no dtype arguments (the framework's defaults)
'''

SCRIPT_TAIL = '''
# -- the float64 formula: y = x / sqrt(mean(x**2 over axes) + eps) * scale ---------------------
eps_used = meta["epsilon_used"]
x64 = float64(x)
s64 = np.reshape(float64(scale), [x.shape[k] if k in axes else 1 for k in range(x.ndim)])
with np.errstate(all="ignore"):
    formula = x64 / np.sqrt(np.mean(x64 * x64, axis=axes, keepdims=True) + eps_used) * s64
    gap = np.abs(y64 - formula) if y64.shape == formula.shape else None
print("output dtype:", y_dtype, "shape:", tuple(y64.shape))
print("output sha256:", hashlib.sha256(y_bytes).hexdigest())
if gap is None:
    print("shape differs from the formula's", formula.shape)
else:
    gap = np.where(np.isnan(gap), np.where(np.isnan(y64) == np.isnan(formula), 0.0, np.inf), gap)
    i = np.unravel_index(int(np.argmax(gap)), gap.shape) if gap.size else ()
    if gap.size:
        print(f"max |y - formula| = {{gap[i]:.6g}} at {{[int(k) for k in i]}}: got {{float(y64[i])!r}}, "
              f"formula {{float(formula[i])!r}} (epsilon {{eps_used!r}})")
'''

# The versions this script runs with, printed last (the framework is imported by then).
VERSIONS_TAIL = '''
def _version(name):
    if name == "python":
        return sys.version.split()[0]
    found = getattr(sys.modules.get(name), "__version__", None)
    if found:
        return str(found)
    try:
        from importlib import metadata

        return metadata.version(name)
    except Exception:  # noqa: BLE001 - a version unknown is said so
        return "unknown"


print("versions:", ", ".join(f"{k} {_version(k)}" for k in sorted(meta["versions"])))
'''

NPZ_DATA = '''HERE = os.path.dirname(os.path.abspath(__file__))
data = np.load(os.path.join(HERE, "inputs.npz"))'''
LITERAL_LIMIT = 160  # arrays of at most this many elements are written into the script as literals


def _literal(a: np.ndarray) -> str:
    """Source for `a` (bfloat16 as its uint16 bits): exact, each value the shortest that reads back."""
    a = _bits(np.asarray(a))
    if a.dtype.kind in "biu":
        values = a.ravel().tolist()
    else:
        values = [np.format_float_positional(v, unique=True, trim="-") if np.isfinite(v) else
                  ("float('nan')" if np.isnan(v) else f"float('{'-' if v < 0 else ''}inf')") for v in a.ravel()]
    body = ", ".join(str(v) for v in values)
    return f"np.array([{body}], dtype=np.{a.dtype.name}).reshape({tuple(a.shape)!r})"


def literal_data(arrays: dict, limit: float = LITERAL_LIMIT) -> str | None:
    """`data = {...}`: the case's arrays as literals in the script, where each is small (at most
    `limit` elements) and reads back bit for bit; None otherwise (inputs.npz, or a seed)."""
    if any(np.asarray(a).size > limit for a in arrays.values()):
        return None
    source = "data = {" + ", ".join(f"{k!r}: {_literal(a)}" for k, a in arrays.items()) + "}"
    read = {}
    exec(source, {"np": np}, read)  # noqa: S102 - our own generated source, checked bit for bit
    for k, a in arrays.items():
        got, want = read["data"][k], _bits(np.asarray(a))
        if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
            return None
    return "# The case's inputs, exactly (bfloat16 as its 16 bits).\n" + source


GENERIC = '''
# This adapter gives no framework snippet: the suite's adapter builds and runs the layer.
sys.path.insert(0, {cwd!r})  # where the adapter's module was imported from
from conformance.execution.loading import import_adapter
from conformance.spec import LayerSpec

cls = import_adapter({ref!r})
adapter = cls()
adapter.load()
layer = adapter.build(LayerSpec(input_shape, tuple(axis), eps, dtype, scale))
y = np.asarray(adapter.call(layer, x))
y_dtype, y_bytes, y64 = y.dtype.name, np.ascontiguousarray(y).tobytes(), y.astype(np.float64)
'''


def _import_root(ref: str, cls: type) -> str:
    """The folder the adapter's top-level package is imported from: the user's module of `ref`
    (loading.import_root; a wrapped function's class lives in the suite's module), else the class's."""
    from conformance.execution.loading import import_root

    root = import_root(ref)
    if root:
        return root
    module = sys.modules[cls.__module__]
    path = Path(getattr(module, "__file__", "") or ".").resolve()
    if path.name == "__init__.py":
        path = path.parent
    parts = cls.__module__.split(".")
    return str(path.parents[len(parts) - 1]) if len(path.parents) >= len(parts) else os.getcwd()


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16) if a.dtype.name == "bfloat16" else a


def output_hash(y) -> tuple[str, str]:
    y = np.ascontiguousarray(np.asarray(y))
    return y.dtype.name, hashlib.sha256(y.tobytes()).hexdigest()


def _save_atomic(path: Path, save) -> None:
    """`save(file)` into a temporary file beside `path`, renamed onto it: never half written."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            save(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _snippet_body(adapter, spec) -> tuple[str | None, str | None]:
    """The framework code of the adapter's snippet, or (None, why not) for the generic script."""
    if not provides(adapter, "snippet"):
        return None, None
    try:
        snippet = adapter.snippet(spec)
    except NotImplementedError:  # not for this case: the generic script
        return None, None
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        return None, f"snippet() raised {type(exc).__name__}: {first}"
    if not snippet:
        return None, None
    keys = ("imports", "functions", "build", "call")
    if not isinstance(snippet, dict) or not all(isinstance(snippet.get(k) or "", str) for k in keys):
        return None, f"snippet() returned {type(snippet).__name__}, not a dict of source texts"
    parts = [textwrap.dedent(snippet[k]).strip() for k in keys if snippet.get(k)]
    return "\n# -- the layer, as the adapter builds and calls it " + "-" * 40 + "\n" + "\n\n\n".join(parts) + "\n", None


def write(case, adapter_ref: str, adapter, versions: dict, epsilon_used: float, out: Path) -> tuple[Path, str | None]:
    """inputs.npz and repro.py for `case` on `adapter` (loaded, in this process); and why the
    script is the generic one despite a snippet (None if it is not)."""
    from conformance.cases.case import layer_spec, materialize

    arrays = materialize(case)
    spec = layer_spec(case, arrays)
    _save_atomic(out / "inputs.npz", lambda f: np.savez(f, x=_bits(arrays.x), scale=_bits(arrays.scale),
                                                          dy=_bits(arrays.dy)))
    meta = {"dtypes": {k: getattr(arrays, k).dtype.name for k in ("x", "scale", "dy")}, "axis": list(case.axis),
            "axes": list(case.axes), "epsilon": case.epsilon, "epsilon_used": epsilon_used, "shape": list(case.shape),
            "dtype": spec.dtype, "compute_dtype": spec.compute_dtype, "param_dtype": spec.param_dtype,
            "dtype_args": not spec.no_dtype_args, "versions": dict(sorted(versions.items()))}
    data = literal_data({"x": arrays.x, "scale": arrays.scale, "dy": arrays.dy}) or NPZ_DATA
    head = SCRIPT_HEAD.format(input_helpers=INPUT_HELPERS, case=case.id, adapter=adapter.name, meta=repr(meta), data=data, command="repro",
                              script="repro.py", versions=", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    tail = SCRIPT_TAIL.replace("{{", "{").replace("}}", "}") + VERSIONS_TAIL
    body, note = _snippet_body(adapter, spec)
    if body is not None:
        try:
            compile(head + body + tail, "repro.py", "exec")
        except (SyntaxError, ValueError) as exc:
            body, note = None, f"snippet() gave source that does not compile ({type(exc).__name__}: {exc})"
    if body is None:
        body = GENERIC.format(ref=adapter_ref, cwd=_import_root(adapter_ref, type(adapter)))
    script = out / "repro.py"
    _save_atomic(script, lambda f: f.write((head + body + tail).encode()))
    return script, note


RESULT = "repro"  # the child's one message after "ready": the script written and the adapter's output


def main(argv: list[str]) -> int:
    """`python -m conformance.commands.repro REF CASE OUT`: in the adapter's environment, a worker
    (its protocol on a private copy of stdout) that writes the reproduction and sends "ready",
    then one RESULT message with the adapter's own output hash, then "end"."""
    from conformance.execution import protocol
    from conformance.execution.worker import serve

    ref, case_id, out = argv

    def body(adapter, versions, send):
        send(protocol.ready(adapter.name, versions))
        try:
            result = _reproduce(ref, adapter, versions, case_id, Path(out))
        except OSError as exc:  # the folder was checked writable: a full disk, say
            result = {"write_error": f"cannot write into {out}: {exc.strerror or exc}"}
        send({"event": RESULT, **result})

    return serve(ref, body)


def _reproduce(ref: str, adapter, versions: dict, case_id: str, out: Path) -> dict:
    from conformance.cases.case import layer_spec, materialize, parse_case
    from conformance.checks.pipeline import checked_config, _epsilon_used

    case = parse_case(case_id)
    arrays = materialize(case)
    spec = layer_spec(case, arrays)
    reason = adapter.supports(spec)
    if reason:
        return {"error": f"{adapter.name} does not support {case.id}: {reason}"}
    try:
        layer = adapter.build(spec)
        config, _ = checked_config(adapter, layer)
        eps = _epsilon_used(case, config)
        y = adapter.call(layer, arrays.x)
    except Exception as exc:  # a crash finding: the script reproduces the framework's exception
        script, note = write(case, ref, adapter, versions, case.epsilon or 0.0, out)
        return {"script": str(script), "note": note, "raised": f"{type(exc).__name__}: {exc}"[:400]}
    script, note = write(case, ref, adapter, versions, eps if eps is not None else 0.0, out)
    dtype, digest = output_hash(y)
    return {"script": str(script), "note": note, "dtype": dtype, "sha256": digest}


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-2:])[:400]


def run(adapter_ref_env: tuple[str, dict], case_id: str, out: Path, timeout: float,
        load_timeout: float | None = None, module: str = "conformance.commands.repro") -> dict:
    """Run `main` of `module` (this one's, or `conformance issue`'s) in a worker process with the
    adapter's environment: its RESULT message, or {"error": why} when it failed to load, crashed
    or hung (killed, with what it started)."""
    from conformance.execution import protocol
    from conformance.execution.adapter_refs import LOAD_TIMEOUT_S
    from conformance.execution.procs import WorkerExited, WorkerGarbled, WorkerProcess, WorkerSilent

    ref, env = adapter_ref_env
    load_timeout = LOAD_TIMEOUT_S if load_timeout is None else load_timeout
    with tempfile.TemporaryDirectory(prefix="conformance-repro-") as tmp:
        log = Path(tmp) / "adapter.log"  # its stderr, and its stdout, which the worker points there
        worker = WorkerProcess([sys.executable, "-m", module, ref, case_id, str(out)], env, log, threading.Event())
        loading = True
        try:
            message = worker.message(load_timeout)
            if message.get("event") == protocol.LOAD_ERROR:
                return {"error": f"the adapter failed to load: {message.get('message')}"}
            loading = False
            message = worker.message(timeout)
            if message.get("event") != RESULT:
                return {"error": f"the adapter's worker sent {message.get('event')!r} instead of a result"}
            return message
        except WorkerSilent:
            if loading:
                return {"error": f"the adapter did not load within {load_timeout:.0f}s; its processes were killed"}
            return {"error": f"the case did not finish within {timeout:g}s (--timeout); the adapter's processes were "
                             "killed"}
        except (WorkerExited, WorkerGarbled) as exc:
            what = f"wrote a line that is not a protocol message ({exc})" if isinstance(exc, WorkerGarbled) else \
                f"ended ({exc})"
            tail = _tail(log)
            return {"error": f"the adapter's process {what} while {'loading' if loading else 'running the case'}"
                             + (f": {tail}" if tail else "")}
        finally:
            worker.kill()  # done or not: nothing it started outlives the command


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def cmd_repro(args) -> int:
    from conformance.execution.adapter_refs import resolve, worker_env
    from conformance.cases.case import parse_case
    from conformance.cases.invalid import Invalid
    from conformance.execution.outdir import OutputFolder
    from conformance.execution.runner import DEFAULT_CASE_TIMEOUT_S

    try:
        case = parse_case(args.case)
    except ValueError as exc:
        raise UsageError(f"{exc}") from None
    if isinstance(case, Invalid):
        raise UsageError(f"{args.case} is an invalid configuration: there is no formula to reproduce against")
    (adapter,) = resolve([args.adapter])
    folder = OutputFolder(Path(args.out))
    folder.acquire("overwrite" if args.overwrite else "new")
    try:
        result = run((adapter.ref, worker_env(adapter)), case.id, folder.path, args.timeout or DEFAULT_CASE_TIMEOUT_S)
    finally:
        folder.release()
    if "write_error" in result:
        raise UsageError(result["write_error"])
    if "error" in result:
        print(f"{adapter.name}: {result['error']}")
        return EXIT_FAIL
    print(f"wrote {folder.path / 'inputs.npz'}, {result['script']}")
    if result.get("note"):
        print(f"{adapter.name}: {result['note']}; repro.py imports the adapter instead (it needs this suite)")
    if "raised" in result:
        print(f"{adapter.name} raises {result['raised'].splitlines()[0]} (repro.py raises the same when it reproduces "
              "the adapter)")
    else:
        print(f"{adapter.name} output: {result['dtype']}, sha256 {result['sha256']} (repro.py prints the same when "
              "it reproduces the adapter)")
    print(f"run it: {shlex.join(['python', result['script']])}")
    return EXIT_PASS
