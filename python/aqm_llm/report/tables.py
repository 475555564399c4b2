"""The comparison table of a section: one row per queue disc, mean ± 95% CI across seeds."""

from __future__ import annotations

from typing import Any

from aqm_llm.metric_catalogue import columns
from aqm_llm.report.data import Section
from aqm_llm.report.stats import MeanCI, mean_ci


COLUMNS = columns("util", "goodput_mbps", "l4s_goodput_mbps", "classic_goodput_mbps", "l4s_mean_ms",
                  "l4s_p99_ms", "classic_mean_ms", "classic_p99_ms", "loss_pct", "mark_pct", "rtt_mean_ms",
                  "jain", "fallbacks")


def section_stats(sec: Section) -> list[tuple[str, int, list[MeanCI]]]:
    """(queue disc label, seeds, statistics per column) for each series."""
    return [(s.label, len(s.runs), [mean_ci(c.get(r.metrics) for r in s.runs) for c in COLUMNS])
            for s in sec.series]


def header() -> list[str]:
    return ["qdisc", "seeds"] + [c.header for c in COLUMNS]


def body(sec: Section) -> list[list[str]]:
    return [[label, str(n)] + [st.text(c.fmt) for st, c in zip(stats, COLUMNS)]
            for label, n, stats in section_stats(sec)]


def markdown(sec: Section) -> str:
    lines = ["| " + " | ".join(header()) + " |", "|" + "---|" * len(header())]
    lines += ["| " + " | ".join(r) + " |" for r in body(sec)]
    return "\n".join(lines)


def csv_rows(sec: Section) -> list[dict[str, Any]]:
    """Machine-readable: mean, CI half-width and n per column."""
    out = []
    for label, n, stats in section_stats(sec):
        row: dict[str, Any] = {"scenario": sec.scenario, "setting": sec.title, "qdisc": label, "seeds": n}
        for c, st in zip(COLUMNS, stats):
            row[f"{c.header} mean"] = st.mean
            row[f"{c.header} ci95"] = st.half_width
        out.append(row)
    return out
