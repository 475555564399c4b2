"""Compact comparison tables of run metrics (terminal and Markdown)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from aqm_llm.metric_catalogue import METRICS

# (header, catalogue metrics shown in it, format): one or two values per cell.
Column = tuple[str, tuple[str, ...], str]

COLUMNS: Sequence[Column] = (
    ("util", ("util",), "{:.3f}"),
    ("goodput Mb/s", ("goodput_mbps",), "{:.1f}"),
    ("L4S Mb/s", ("l4s_goodput_mbps",), "{:.1f}"),
    ("classic Mb/s", ("classic_goodput_mbps",), "{:.1f}"),
    ("L4S sojourn mean/p99 ms", ("l4s_mean_ms", "l4s_p99_ms"), "{:.2f} / {:.2f}"),
    ("classic sojourn mean/p99 ms", ("classic_mean_ms", "classic_p99_ms"), "{:.2f} / {:.2f}"),
    ("loss %", ("loss_pct",), "{:.3f}"),
    ("CE marks", ("ce_marks",), "{:.0f}"),
    ("RTT mean ms", ("rtt_mean_ms",), "{:.1f}"),
    ("Jain", ("jain",), "{:.3f}"),
    ("fallbacks", ("fallbacks",), "{:.0f}"),
)


def _cell(m: dict[str, Any], names: tuple[str, ...], fmt: str) -> str:
    values = [METRICS[n].get(m) for n in names]
    if any(v is None or math.isnan(v) for v in values):
        return "-"
    return fmt.format(*values)


def fallback_warning(m: dict[str, Any]) -> str | None:
    """One line when some epochs of an l4s-llm run were not decided by its agent (None if all
    were, or the run has no agent): the counts by cause, and that the run is not reproducible."""
    llm = m.get("llm") or {}
    fallbacks = int(m.get("fallbacks") or 0)
    if not fallbacks:
        return None
    causes = {k: v for k, v in (llm.get("outcomes") or {}).items() if v and k not in ("ok", "not_consulted")}
    why = ", ".join(f"{k} {v}" for k, v in sorted(causes.items()))
    run = m.get("run", {})
    label = f"{m.get('scenario', '?')}/{run.get('qdisc', '?')} seed {run.get('seed', '?')}"
    return (f"warning: {label}: {fallbacks} of {llm.get('epochs', '?')} epochs fell back to DualPI2 "
            f"({why or 'see the run log'}); reproducible: {str(m.get('reproducible')).lower()}")


def rows(runs: Iterable[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["scenario", "qdisc", "seed"] + [c[0] for c in COLUMNS]
    body = []
    for m in runs:
        run = m.get("run", {})
        body.append([m.get("scenario", "?"), run.get("qdisc", m.get("config", {}).get("qdisc", "?")),
                     str(run.get("seed", m.get("config", {}).get("seed", "?")))]
                    + [_cell(m, names, fmt) for _, names, fmt in COLUMNS])
    return header, body


def print_table(runs: Iterable[dict[str, Any]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    header, body = rows(runs)
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < 2 else "right")
    for r in body:
        table.add_row(*r)
    Console(width=200).print(table)


def markdown(runs: Iterable[dict[str, Any]]) -> str:
    header, body = rows(runs)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)
