"""`conformance cache prune [--max-size SIZE]`: remove overlays (version environments of
`run --with`, conformance/execution/overlays.py), least recently used first, until those left
take at most SIZE (default: remove them all).  Overlays in use by a run, or being built, stay."""
from __future__ import annotations

from pathlib import Path

from conformance.errors import UsageError


def human(size: int) -> str:
    for unit in ("B", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}G"


def cmd_cache(args) -> int:
    from conformance.execution import cache, overlays

    if args.cache_command != "prune":  # pragma: no cover: argparse allows only prune
        raise UsageError(f"unknown cache command {args.cache_command!r}")
    folder = Path(args.cache_dir) if args.cache_dir else cache.default_folder()
    top = overlays.root(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--cache-dir {folder}: not a folder")
    if not top.is_dir():
        print(f"no overlays in {folder}")
        return 0
    sizes = {p: overlays.size_of(p) for p in top.iterdir() if p.is_dir()}
    try:
        removed = overlays.prune(folder, args.max_size)
    except OSError as exc:
        raise UsageError(f"cannot prune {top}: {exc.strerror or exc}") from None
    for p in removed:
        print(f"removed {p} ({human(sizes.get(p, 0))})")
    left = [p for p in top.iterdir() if p.is_dir() and overlays.read_marker(p) is not None]
    kept = sum(overlays.size_of(p) for p in left)
    # Still over the size: every overlay left is one prune skipped (in use by a run, or being built).
    busy = left if args.max_size is None or kept > args.max_size else []
    print(f"removed {len(removed)} overlay folder(s), freed {human(sum(sizes.get(p, 0) for p in removed))}; "
          f"{len(left)} overlay(s) kept in {top} ({human(kept)})"
          + (f"; {len(busy)} in use by a run or being built" if busy else ""))
    return 0
