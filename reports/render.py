"""Write every report of a results file into a folder."""
from __future__ import annotations

import json
from pathlib import Path

from conformance.reports import html, json_report, junit, markdown
from conformance.reports.results import Results


def write_reports(results: Results, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    path = out_dir / "report.json"
    path.write_text(json.dumps(json_report.render(results), indent=1) + "\n")
    written.append(path)
    path = out_dir / "report.md"
    path.write_text(markdown.render(results))
    written.append(path)
    path = out_dir / "report.html"
    path.write_text(html.render(results))
    written.append(path)
    path = out_dir / "junit.xml"
    path.write_text(junit.render(results))
    written.append(path)
    return written
