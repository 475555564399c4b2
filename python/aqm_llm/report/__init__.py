"""Static report of a results database: index.html, PNGs, tables.md and summary.csv.

Per section (a scenario at one parameter setting), three PNGs: ``<slug>-cdf.png`` (sojourn CDF
per class and queue disc), ``<slug>-timeseries.png`` (queue delay and throughput over time),
``<slug>-bars.png`` (means with 95% t-intervals across seeds); the first two only if the runs
stored time series. Modules: data (read and group), stats, figures, tables, page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aqm_llm.report import figures, tables
from aqm_llm.report.data import read
from aqm_llm.report.page import SectionFigures, render


@dataclass(frozen=True)
class Report:
    index: Path
    images: list[Path]
    sections: int
    ok_runs: int
    failed_runs: int


def write_report(db_path: str | Path, out_dir: str | Path) -> Report:
    """Write the report for every successful run in the database into ``out_dir``."""
    import pandas as pd

    db = Path(db_path)
    data = read(db)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs: list[SectionFigures] = []
    colour = figures.colours(data.labels())
    for sec in data.sections:
        images = [figures.sojourn_cdf(sec, out / f"{sec.slug}-cdf.png", colour),
                  figures.timeseries(sec, out / f"{sec.slug}-timeseries.png", colour),
                  figures.ci_bars(sec, out / f"{sec.slug}-bars.png")]
        figs.append(SectionFigures(sec, [p for p in images if p is not None]))
    (out / "tables.md").write_text("\n\n".join(f"### {s.title}\n\n{tables.markdown(s)}" for s in data.sections) + "\n")
    pd.DataFrame([r for s in data.sections for r in tables.csv_rows(s)]).to_csv(out / "summary.csv", index=False)
    index = render(data, figs, db, out)
    return Report(index=index, images=[p for f in figs for p in f.images], sections=len(data.sections),
                  ok_runs=data.ok_runs, failed_runs=len(data.failures))
