"""`conformance merge`: the results of shards (or any runs) as one, with their reports."""
from __future__ import annotations

from pathlib import Path

from conformance.errors import UsageError

from conformance.commands.report import gate, render


def cmd_merge(args) -> int:
    from conformance.execution.outdir import OutputFolder
    from conformance.reports.merge import merge
    from conformance.reports.results import load_results, results_path, write_jsonl

    sources = [results_path(Path(p)) for p in args.results]
    folder = OutputFolder(Path(args.out))
    for src in sources:
        if src.resolve() == folder.results.resolve():
            raise UsageError(f"--out {args.out} would replace the input {src}; merge into another folder")
    parts = [(str(src), load_results(src, args.salvage)) for src in sources]  # all valid before anything is written
    merged = merge(parts, args.prefer)
    if not merged.records:
        raise UsageError("the inputs hold no results: nothing to merge")
    folder.acquire("overwrite" if args.overwrite else "new")
    try:
        folder.start("overwrite")
        write_jsonl(folder.results, [*([merged.run] if merged.run else []), *merged.adapters.values(), *merged.records])
        return render(folder.results, folder.path, gate(args), results=merged)
    finally:
        folder.release()
