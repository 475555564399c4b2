"""The static HTML page (index.html) that ties tables and PNGs together."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path

from aqm_llm.report import tables
from aqm_llm.report.data import Failure, ReportData, Section

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
pre { background: #f8f8f8; padding: 0.5em; font-size: 12px; overflow-x: auto; }
.note { color: #666; font-size: 13px; }
"""


@dataclass
class SectionFigures:
    section: Section
    images: list[Path] = field(default_factory=list)


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(sec: Section) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in tables.header())
    rows = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in tables.body(sec))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _failures(failures: list[Failure]) -> str:
    if not failures:
        return ""
    items = []
    for f in failures:
        params = " ".join(f"{k}={v}" for k, v in sorted(f.params.items()))
        tail = "\n".join(f.error.strip().splitlines()[-12:])
        items.append(f"<h3>{_e(f.scenario)} / {_e(f.qdisc)} / seed {f.seed} <span class='note'>{_e(params)}; "
                     f"{f.attempts} attempt(s)</span></h3><pre>{_e(tail)}</pre>")
    return (f"<h2 id='failed'>Failed runs ({len(failures)})</h2><p class='note'>Recorded in the database with "
            "status 'failed'; the next <code>aqm-llm sweep</code> retries them.</p>" + "".join(items))


def render(data: ReportData, figures: list[SectionFigures], db_path: Path, out: Path) -> Path:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>aqm-llm report</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>aqm-llm sweep report</h1>",
             f"<p class='note'>{data.ok_runs} successful run(s) from <code>{_e(db_path)}</code>"
             + (f", <a href='#failed'>{len(data.failures)} failed</a>" if data.failures else "")
             + f"; generated {_e(time.strftime('%Y-%m-%d %H:%M:%S'))}. Tables: mean ± half-width of the 95% "
             "Student-t confidence interval across seeds (a single seed: the value alone). Statistics cover the "
             "steady-state window after warm-up.</p>"]
    if figures:
        parts.append("<ul>" + "".join(f"<li><a href='#{_e(f.section.slug)}'>{_e(f.section.title)}</a></li>"
                                      for f in figures) + "</ul>")
    for f in figures:
        sec = f.section
        params = ", ".join(f"{k}={v}" for k, v in sorted(sec.params.items())) or "program defaults"
        parts.append(f"<h2 id='{_e(sec.slug)}'>{_e(sec.title)}</h2><p class='note'>parameters: {_e(params)}</p>")
        parts.append(_table(sec))
        parts += [f"<img src='{_e(img.name)}' alt='{_e(img.stem)}'>" for img in f.images]
    parts.append(_failures(data.failures))
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts))
    return path
