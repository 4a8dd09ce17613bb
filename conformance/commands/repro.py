"""`conformance repro CASE --adapter NAME --out DIR`: a reproduction that needs no suite.

DIR/inputs.npz holds the case's arrays (bfloat16 as its bits) and DIR/repro.py
builds the layer the way the adapter does, runs it, computes the float64 formula
inline and prints the discrepancy and a hash of the output's bytes: what one
pastes into an upstream issue.  The adapter's optional `snippet(spec)` gives the
framework code: {"imports", "functions", "build", "call"}, each source text, the
functions the very ones the adapter runs (adapters/_snippets.py); `build` sets
`layer` from the names SCRIPT_HEAD defines, `call` sets y_dtype, y_bytes and y64.
An adapter without one gets a script that imports the adapter (and so needs the suite).
The command also runs the adapter itself once, in its own environment, and
prints the same hash, so the script can be checked against the suite.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from conformance.adapter import provides
from conformance.commands.report import EXIT_FAIL, EXIT_PASS
from conformance.errors import UsageError

SCRIPT_HEAD = '''"""Reproduction of {case} on {adapter} ({versions}).

Written by `conformance repro`; needs numpy and the framework only.  Run: python repro.py
"""
import hashlib
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
data = np.load(os.path.join(HERE, "inputs.npz"))
meta = {meta}


def array(name):
    """An input in its dtype; bfloat16 is stored as its 16 bits (kept as bits without ml_dtypes)."""
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
    return a.astype(np.float64)


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


def _import_root(cls: type) -> str:
    """The folder the adapter's top-level package is imported from."""
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


def write(case, adapter_ref: str, adapter, versions: dict, epsilon_used: float, out: Path) -> Path:
    """inputs.npz and repro.py for `case` on `adapter` (loaded, in this process)."""
    from conformance.cases.case import layer_spec, materialize

    arrays = materialize(case)
    spec = layer_spec(case, arrays)
    np.savez(out / "inputs.npz", x=_bits(arrays.x), scale=_bits(arrays.scale), dy=_bits(arrays.dy))
    meta = {"dtypes": {k: getattr(arrays, k).dtype.name for k in ("x", "scale", "dy")}, "axis": list(case.axis),
            "axes": list(case.axes), "epsilon": case.epsilon, "epsilon_used": epsilon_used, "shape": list(case.shape),
            "dtype": spec.dtype, "compute_dtype": spec.compute_dtype, "param_dtype": spec.param_dtype,
            "dtype_args": not spec.no_dtype_args}
    head = SCRIPT_HEAD.format(case=case.id, adapter=adapter.name, meta=repr(meta),
                              versions=", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    snippet = None
    if provides(adapter, "snippet"):
        try:
            snippet = adapter.snippet(spec)
        except NotImplementedError:  # not for this case: the generic script
            snippet = None
    if snippet:
        parts = [textwrap.dedent(snippet[k]).strip() for k in ("imports", "functions", "build", "call") if snippet.get(k)]
        body = "\n# -- the layer, as the adapter builds and calls it " + "-" * 40 + "\n" + "\n\n\n".join(parts) + "\n"
    else:
        body = GENERIC.format(ref=adapter_ref, cwd=_import_root(type(adapter)))
    script = out / "repro.py"
    script.write_text(head + body + SCRIPT_TAIL.replace("{{", "{").replace("}}", "}"))
    return script


def main(argv: list[str]) -> int:
    """`python -m conformance.commands.repro REF CASE OUT`: in the adapter's environment, write the
    reproduction and print the adapter's own output hash as JSON."""
    from conformance.cases.case import layer_spec, materialize, parse_case
    from conformance.checks.pipeline import checked_config, _epsilon_used
    from conformance.execution.worker import load_adapter

    ref, case_id, out = argv
    case = parse_case(case_id)
    adapter, versions = load_adapter(ref)
    arrays = materialize(case)
    spec = layer_spec(case, arrays)
    reason = adapter.supports(spec)
    if reason:
        print(json.dumps({"error": f"{adapter.name} does not support {case.id}: {reason}"}))
        return 0
    try:
        layer = adapter.build(spec)
        config, _ = checked_config(adapter, layer)
        eps = _epsilon_used(case, config)
        y = adapter.call(layer, arrays.x)
    except Exception as exc:  # a crash finding: the script reproduces the framework's exception
        script = write(case, ref, adapter, versions, case.epsilon or 0.0, Path(out))
        print(json.dumps({"script": str(script), "raised": f"{type(exc).__name__}: {exc}"[:400]}))
        return 0
    script = write(case, ref, adapter, versions, eps if eps is not None else 0.0, Path(out))
    dtype, digest = output_hash(y)
    print(json.dumps({"script": str(script), "dtype": dtype, "sha256": digest}))
    return 0


def run(adapter_ref_env: tuple[str, dict], case_id: str, out: Path, timeout: float) -> dict:
    """Run `main` in a child process with the adapter's environment."""
    ref, env = adapter_ref_env
    p = subprocess.run([sys.executable, "-m", "conformance.commands.repro", ref, case_id, str(out)], capture_output=True,
                       text=True, env=env, timeout=timeout, start_new_session=True, stdin=subprocess.DEVNULL)
    lines = p.stdout.strip().splitlines()
    if p.returncode or not lines:
        tail = " | ".join(p.stderr.strip().splitlines()[-2:])[:400]
        return {"error": f"the adapter could not build or run the case (exit {p.returncode}): {tail}"}
    return json.loads(lines[-1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def cmd_repro(args) -> int:
    from conformance.execution.adapter_refs import LOAD_TIMEOUT_S, resolve, worker_env
    from conformance.cases.case import parse_case
    from conformance.cases.invalid import Invalid
    from conformance.execution.outdir import OutputFolder

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
        result = run((adapter.ref, worker_env(adapter)), case.id, folder.path, LOAD_TIMEOUT_S)
    finally:
        folder.release()
    if "error" in result:
        print(f"{adapter.name}: {result['error']}")
        return EXIT_FAIL
    print(f"wrote {folder.path / 'inputs.npz'}, {result['script']}")
    if "raised" in result:
        print(f"{adapter.name} raises {result['raised'].splitlines()[0]} (repro.py raises the same when it reproduces "
              "the adapter)")
    else:
        print(f"{adapter.name} output: {result['dtype']}, sha256 {result['sha256']} (repro.py prints the same when "
              "it reproduces the adapter)")
    print(f"run it: python {result['script']}")
    return EXIT_PASS
