"""Write every report of a results file into a folder."""
from __future__ import annotations

import json
from pathlib import Path

from conformance.execution.outdir import REPORTS, write_atomic
from conformance.reports import html, json_report, junit, markdown
from conformance.reports.results import Results

RENDERERS = dict(zip(REPORTS, (
    lambda results: json.dumps(json_report.render(results), indent=1) + "\n",
    markdown.render,
    html.render,
    junit.render,
)))


def write_reports(results: Results, out_dir: Path) -> list[Path]:
    """Each report under a temporary name, then renamed: none is ever half written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in RENDERERS.items():
        write_atomic(out_dir / name, render(results))
        written.append(out_dir / name)
    return written
