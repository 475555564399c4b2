"""One catalogue of the metrics that tables show: a stable name, a header, where the value sits in
a run's metrics JSON, and its format. The CLI table, the report and the evaluation pick columns
from it by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Getter = Callable[[dict[str, Any]], "float | None"]


def at(*path: str, scale: float = 1.0) -> Getter:
    """The number at ``path`` in a metrics dict (times ``scale``), None where it is missing."""
    def get(m: dict[str, Any]) -> float | None:
        cur: Any = m
        for p in path:
            if not isinstance(cur, dict) or cur.get(p) is None:
                return None
            cur = cur[p]
        return float(cur) * scale
    return get


def _l4s_share(m: dict[str, Any]) -> float | None:
    l4s, classic = at("classes", "l4s", "goodput_mbps")(m), at("classes", "classic", "goodput_mbps")(m)
    if l4s is None or classic is None or l4s + classic <= 0:
        return None
    return 100.0 * l4s / (l4s + classic)


def _llm_fallbacks(m: dict[str, Any]) -> float | None:
    return at("fallbacks")(m) if m.get("llm") else None  # only l4s-llm runs have an agent to fall back from


@dataclass(frozen=True)
class Metric:
    name: str
    header: str
    get: Getter
    fmt: str


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("util", "util", at("utilisation"), "{:.3f}"),
    Metric("goodput_mbps", "goodput Mb/s", at("total_goodput_mbps"), "{:.1f}"),
    Metric("l4s_goodput_mbps", "L4S Mb/s", at("classes", "l4s", "goodput_mbps"), "{:.1f}"),
    Metric("classic_goodput_mbps", "classic Mb/s", at("classes", "classic", "goodput_mbps"), "{:.1f}"),
    Metric("l4s_share_pct", "L4S share %", _l4s_share, "{:.0f}"),
    Metric("l4s_mean_ms", "L4S sojourn mean ms", at("classes", "l4s", "sojourn_ms", "mean"), "{:.2f}"),
    Metric("l4s_p99_ms", "L4S sojourn p99 ms", at("classes", "l4s", "sojourn_ms", "p99"), "{:.2f}"),
    Metric("classic_mean_ms", "classic sojourn mean ms", at("classes", "classic", "sojourn_ms", "mean"), "{:.2f}"),
    Metric("classic_p99_ms", "classic sojourn p99 ms", at("classes", "classic", "sojourn_ms", "p99"), "{:.2f}"),
    Metric("loss_pct", "loss %", at("loss_rate", scale=100.0), "{:.3f}"),
    Metric("mark_pct", "mark %", at("mark_rate", scale=100.0), "{:.2f}"),
    Metric("ce_marks", "CE marks", at("marks"), "{:.0f}"),
    Metric("rtt_mean_ms", "RTT mean ms", at("rtt_ms", "mean"), "{:.1f}"),
    Metric("jain", "Jain", at("jain_fairness"), "{:.3f}"),
    Metric("fallbacks", "fallbacks", _llm_fallbacks, "{:.0f}"),
)}


def columns(*names: str) -> tuple[Metric, ...]:
    """The catalogue's metrics by name, in that order (KeyError names a missing one)."""
    return tuple(METRICS[n] for n in names)
