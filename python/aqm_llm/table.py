"""Compact comparison tables of run metrics (terminal and Markdown)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

# (header, function of the metrics dict, format)
Column = tuple[str, Any, str]


def _get(m: dict[str, Any], *path: str) -> float:
    cur: Any = m
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return math.nan
        cur = cur[p]
    return math.nan if cur is None else float(cur)


COLUMNS: Sequence[Column] = (
    ("util", lambda m: _get(m, "utilisation"), "{:.3f}"),
    ("goodput Mb/s", lambda m: _get(m, "total_goodput_mbps"), "{:.1f}"),
    ("L4S Mb/s", lambda m: _get(m, "classes", "l4s", "goodput_mbps"), "{:.1f}"),
    ("classic Mb/s", lambda m: _get(m, "classes", "classic", "goodput_mbps"), "{:.1f}"),
    ("L4S sojourn mean/p99 ms", lambda m: (_get(m, "classes", "l4s", "sojourn_ms", "mean"),
                                           _get(m, "classes", "l4s", "sojourn_ms", "p99")), "{:.2f} / {:.2f}"),
    ("classic sojourn mean/p99 ms", lambda m: (_get(m, "classes", "classic", "sojourn_ms", "mean"),
                                               _get(m, "classes", "classic", "sojourn_ms", "p99")), "{:.2f} / {:.2f}"),
    ("loss %", lambda m: 100 * _get(m, "loss_rate"), "{:.3f}"),
    ("CE marks", lambda m: _get(m, "marks"), "{:.0f}"),
    ("RTT mean ms", lambda m: _get(m, "rtt_ms", "mean"), "{:.1f}"),
    ("Jain", lambda m: _get(m, "jain_fairness"), "{:.3f}"),
    ("fallbacks", lambda m: _get(m, "fallbacks") if m.get("llm") else math.nan, "{:.0f}"),
)


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


def _fmt(fmt: str, value: Any) -> str:
    values = value if isinstance(value, tuple) else (value,)
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        return "-"
    return fmt.format(*values)


def rows(runs: Iterable[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["scenario", "qdisc", "seed"] + [c[0] for c in COLUMNS]
    body = []
    for m in runs:
        run = m.get("run", {})
        body.append([m.get("scenario", "?"), run.get("qdisc", m.get("config", {}).get("qdisc", "?")),
                     str(run.get("seed", m.get("config", {}).get("seed", "?")))]
                    + [_fmt(fmt, fn(m)) for _, fn, fmt in COLUMNS])
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
