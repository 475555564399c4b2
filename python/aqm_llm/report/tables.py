"""The comparison table of a section: one row per queue disc, mean ± 95% CI across seeds."""

from __future__ import annotations

from typing import Any, Callable

from aqm_llm.report.data import Section
from aqm_llm.report.stats import MeanCI, mean_ci


def _g(*path: str, scale: float = 1.0) -> Callable[[dict[str, Any]], float | None]:
    def get(m: dict[str, Any]) -> float | None:
        cur: Any = m
        for p in path:
            if not isinstance(cur, dict) or cur.get(p) is None:
                return None
            cur = cur[p]
        return float(cur) * scale
    return get


# (header, value from metrics, format)
COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], float | None], str], ...] = (
    ("util", _g("utilisation"), "{:.3f}"),
    ("goodput Mb/s", _g("total_goodput_mbps"), "{:.1f}"),
    ("L4S Mb/s", _g("classes", "l4s", "goodput_mbps"), "{:.1f}"),
    ("classic Mb/s", _g("classes", "classic", "goodput_mbps"), "{:.1f}"),
    ("L4S sojourn mean ms", _g("classes", "l4s", "sojourn_ms", "mean"), "{:.2f}"),
    ("L4S sojourn p99 ms", _g("classes", "l4s", "sojourn_ms", "p99"), "{:.2f}"),
    ("classic sojourn mean ms", _g("classes", "classic", "sojourn_ms", "mean"), "{:.2f}"),
    ("classic sojourn p99 ms", _g("classes", "classic", "sojourn_ms", "p99"), "{:.2f}"),
    ("loss %", _g("loss_rate", scale=100.0), "{:.3f}"),
    ("mark %", _g("mark_rate", scale=100.0), "{:.2f}"),
    ("RTT mean ms", _g("rtt_ms", "mean"), "{:.1f}"),
    ("Jain", _g("jain_fairness"), "{:.3f}"),
    ("fallbacks", _g("fallbacks"), "{:.0f}"),
)


def section_stats(sec: Section) -> list[tuple[str, int, list[MeanCI]]]:
    """(queue disc label, seeds, statistics per column) for each series."""
    return [(s.label, len(s.runs), [mean_ci(fn(r.metrics) for r in s.runs) for _, fn, _ in COLUMNS])
            for s in sec.series]


def header() -> list[str]:
    return ["qdisc", "seeds"] + [c[0] for c in COLUMNS]


def body(sec: Section) -> list[list[str]]:
    return [[label, str(n)] + [st.text(fmt) for st, (_, _, fmt) in zip(stats, COLUMNS)]
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
        for (name, _, _), st in zip(COLUMNS, stats):
            row[f"{name} mean"] = st.mean
            row[f"{name} ci95"] = st.half_width
        out.append(row)
    return out
