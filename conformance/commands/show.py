"""`conformance show CASE`: a case's arrays and the float64 oracle's outputs in an .npz, and a summary."""
from __future__ import annotations

from pathlib import Path

from conformance.commands.report import EXIT_PASS
from conformance.errors import UsageError


def cmd_show(args) -> int:
    """A case's inputs, as the adapters get them, and the oracle's outputs, for a hand check."""
    import numpy as np

    from conformance.cases.case import Case, materialize, parse_case
    from conformance.numerics.oracle import oracle

    try:
        case = parse_case(args.case)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(case, Case):
        raise UsageError(f"{args.case} is an invalid configuration: it has no arrays to show")
    eps = case.epsilon if case.epsilon is not None else args.epsilon
    if eps is None:
        raise UsageError(f"{case.id} runs each implementation at its own default epsilon: give the one to use with --epsilon")
    arrays = materialize(case)
    ref = oracle(arrays.x, arrays.scale, arrays.dy, case.axes, eps)
    path = Path(args.out or case.id.replace("/", "_") + ".npz")
    bits = lambda a: a.view(np.uint16) if a.dtype.name == "bfloat16" else a  # noqa: E731  npz has no bfloat16
    try:
        np.savez(path, x=bits(arrays.x), scale=bits(arrays.scale), dy=bits(arrays.dy), y=ref.y, dx=ref.dx,
                 dscale=ref.dscale)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"{case.id}: shape {case.shape}, axes {list(case.axes)} (requested {list(case.axis)}), epsilon {eps:g}, "
          f"dtype {case.dtype}")
    for name, a in (("x", arrays.x), ("scale", arrays.scale), ("dy", arrays.dy), ("y (oracle)", ref.y),
                    ("dx (oracle)", ref.dx), ("dscale (oracle)", ref.dscale)):
        v = np.asarray(a, np.float64)
        finite = v[np.isfinite(v)]
        stats = f"min {finite.min():.6g}, max {finite.max():.6g}, mean {finite.mean():.6g}" if finite.size else "no finite values"
        print(f"  {name:16s} {a.dtype.name:9s} {str(a.shape):14s} {stats}" + (f", {v.size - finite.size} non-finite"
                                                                             if finite.size < v.size else ""))
    print(f"wrote {path} (bfloat16 arrays as their 16 bits: view them as ml_dtypes.bfloat16)")
    return EXIT_PASS
