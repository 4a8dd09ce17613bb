"""`conformance show CASE`: a case's arrays and the float64 oracle's outputs in an .npz, and a summary.

The file is the path given, which must end in .npz (numpy would add the suffix to any other, and
write somewhere the user did not name), or by default the case id with / as _ and .npz, in the
current folder.  An existing file or symbolic link there is refused unless --overwrite, which
replaces the path itself (a rename: a link is replaced, never written through); a folder, FIFO,
device or socket is always refused.  The file is written under a temporary name beside it and
renamed into place, so a write error (a full disk, a missing folder, no permission) is one line,
exit 2, and leaves nothing behind.
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
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
    path = _target(args.out if args.out is not None else case.id.replace("/", "_") + ".npz", args.overwrite)
    arrays = materialize(case)
    ref = oracle(arrays.x, arrays.scale, arrays.dy, case.axes, eps)
    bits = lambda a: a.view(np.uint16) if a.dtype.name == "bfloat16" else a  # noqa: E731  npz has no bfloat16
    _write(path, args.overwrite, lambda f: np.savez(f, x=bits(arrays.x), scale=bits(arrays.scale), dy=bits(arrays.dy),
                                                    y=ref.y, dx=ref.dx, dscale=ref.dscale))
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


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
          (stat.S_ISSOCK, "a socket"))


def _target(given: str, overwrite: bool) -> Path:
    """The path to write, checked before anything is computed; UsageError (one line) otherwise."""
    if not given.endswith(".npz"):
        raise UsageError(f"--out {given!r}: give a file name ending in .npz (it is written as given, nothing added)")
    path = Path(given)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        if not overwrite:
            raise UsageError(f"{path} is a symbolic link (to {os.readlink(path)}); --overwrite replaces the link itself "
                             "(never its target), or choose another --out")
    elif not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
        raise UsageError(f"{path} is {kind}, not a regular file: choose another --out")
    elif not overwrite:
        raise UsageError(f"{path} already exists; --overwrite replaces it, or choose another --out")
    return path


def _write(path: Path, overwrite: bool, save) -> None:
    """`save(file)` under a temporary name beside `path`, then renamed onto it: the path holds the
    whole file or what it held before, and a refused or failed write leaves nothing behind."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            save(f)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # as a plain open() would create it, not mkstemp's 0600
        if overwrite:
            os.replace(tmp, path)  # a symbolic link is replaced, not followed
        else:
            _place_new(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _place_new(tmp: str, path: Path) -> None:
    """`tmp` at `path`, which must not exist: a hard link fails rather than replace what appeared there."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UsageError(f"{path} already exists (it appeared while the case was computed); --overwrite replaces "
                         "it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(path):  # a file system without hard links: check, then rename
            raise UsageError(f"{path} already exists; --overwrite replaces it") from None
        os.rename(tmp, path)
