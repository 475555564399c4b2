"""What a report shows, read from the results database and grouped for plotting.

A section is one scenario at one parameter setting; in it, one series per queue disc (and
variant/agent policy) with one run per seed.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aqm_llm.resultsdb import connect, json_cell, schema_error

# Series order in every table and plot (a stable order, not the order in which runs finished).
QDISC_ORDER = ("fifo", "red", "codel", "fq-codel", "fq-codel-l4s", "pie", "pie-l4s", "fq-pie", "cobalt",
               "fq-cobalt", "dualpi2", "l4s-llm")

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Run:
    key: str
    seed: int
    metrics: dict[str, Any]
    timeseries: "pd.DataFrame | None"


@dataclass
class Series:
    label: str
    runs: list[Run] = field(default_factory=list)


@dataclass
class Section:
    scenario: str
    params: dict[str, str]     # all parameters of the setting
    varying: dict[str, str]    # those that tell this section from the scenario's others
    series: list[Series] = field(default_factory=list)

    @property
    def title(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.varying.items())
        return f"{self.scenario} ({extra})" if extra else self.scenario

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "-", self.title).strip("-")


@dataclass(frozen=True)
class Failure:
    scenario: str
    qdisc: str
    seed: int
    params: dict[str, str]
    attempts: int
    error: str


@dataclass
class ReportData:
    sections: list[Section]
    failures: list[Failure]
    ok_runs: int

    def labels(self) -> list[str]:
        """Every series label in the report, in plotting order (one colour each, in every plot)."""
        return sorted({s.label for sec in self.sections for s in sec.series}, key=_order)


def _series_label(qdisc: str, variant: str, agent: str | None) -> str:
    label = qdisc
    if agent:
        a = json.loads(agent)
        if a.get("checkpoint"):
            label += f" ({Path(a['checkpoint']).name})"
        if a.get("p_prime_band") is not None:
            label += f" band {a['p_prime_band']}"
        if a.get("target_return") is not None:
            label += f" target {a['target_return']:g}"
    return f"{label} [{variant}]" if variant else label


def read(db_path: str | Path) -> ReportData:
    """Every successful run with its metrics and time series, grouped into sections."""
    import pandas as pd

    conn = connect(db_path, create=False)
    try:
        rows = conn.execute("SELECT r.key, scenario, qdisc, seed, params, variant, agent, metrics, t.csv_gz "
                            "FROM runs r LEFT JOIN timeseries t ON t.key = r.key "
                            "WHERE status = 'ok' ORDER BY r.id").fetchall()
        failed = conn.execute("SELECT scenario, qdisc, seed, params, attempts, error FROM runs "
                              "WHERE status = 'failed' ORDER BY id").fetchall()
    except sqlite3.Error as exc:
        raise schema_error(db_path, exc) from None
    finally:
        conn.close()
    sections: dict[tuple[str, str], Section] = {}
    for key, scenario, qdisc, seed, params, variant, agent, metrics, csv_gz in rows:
        p = json_cell(params, "params", key, db_path)
        sec = sections.setdefault((scenario, json.dumps(p, sort_keys=True)), Section(scenario, p, {}))
        label = _series_label(qdisc, variant, agent)
        series = next((s for s in sec.series if s.label == label), None)
        if series is None:
            series = Series(label)
            sec.series.append(series)
        ts = pd.read_csv(io.BytesIO(gzip.decompress(csv_gz))) if csv_gz else None
        series.runs.append(Run(key, int(seed), json_cell(metrics, "metrics", key, db_path), ts))
    ordered = list(sections.values())
    for sec in ordered:
        sec.varying = _varying(sec, [s for s in ordered if s.scenario == sec.scenario])
        sec.series.sort(key=lambda s: _order(s.label))
        for s in sec.series:
            s.runs.sort(key=lambda r: r.seed)
    failures = [Failure(sc, q, int(seed), json.loads(p), int(att), err or "") for sc, q, seed, p, att, err in failed]
    return ReportData(sorted(ordered, key=lambda s: s.scenario), failures, len(rows))


def _order(label: str) -> tuple[int, str]:
    qdisc = label.split(" ", 1)[0]
    return (QDISC_ORDER.index(qdisc) if qdisc in QDISC_ORDER else len(QDISC_ORDER), label)


def _varying(sec: Section, same_scenario: list[Section]) -> dict[str, str]:
    names = sorted({k for s in same_scenario for k in s.params})
    vary = [n for n in names if len({s.params.get(n, "(default)") for s in same_scenario}) > 1]
    return {n: sec.params.get(n, "(default)") for n in vary}
