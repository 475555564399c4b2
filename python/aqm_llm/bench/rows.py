"""One row of ``aqm-llm bench inference``: a way to decide an epoch, its latencies and memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aqm_llm.bench.machine import peak_rss_mb, status_mb


@dataclass
class Row:
    method: str
    layers: str = "-"  # backbone decoder layers run
    threads: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    tokens_in: list[int] = field(default_factory=list)
    tokens_out: list[int] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    agree: float | None = None  # share of packet actions equal to the reference's
    max_dp: float | None = None  # largest |epoch probability - the reference's|
    rss_mb: float = 0.0  # peak (getrusage) after the phase
    rss_now_mb: float = 0.0  # resident after the phase
    note: str = ""

    HEADER = ("technique", "layers", "tokens in", "tokens out", "threads", "p50 ms", "p99 ms",
              "epochs", "valid", "actions = ref", "max |dp|", "RSS MB")

    def cells(self) -> list[str]:
        lat = np.asarray(self.latencies_ms)
        def pct(q: float) -> str:
            return f"{np.percentile(lat, q):,.1f}" if lat.size else "-"
        def mean(xs: list[int]) -> str:
            return f"{np.mean(xs):.0f}" if xs else "-"
        valid = f"{100 * np.mean(self.valid):.0f} %" if self.valid else "-"
        agree = "-" if self.agree is None else f"{100 * self.agree:.1f} %"
        max_dp = "-" if self.max_dp is None else f"{self.max_dp:.1e}"
        return [self.method, self.layers, mean(self.tokens_in), mean(self.tokens_out),
                str(self.threads or "-"), pct(50), pct(99), str(lat.size), valid, agree, max_dp,
                f"{self.rss_now_mb:,.0f}" if self.rss_now_mb else "-"]

    def p50(self) -> float:
        return float(np.percentile(self.latencies_ms, 50)) if self.latencies_ms else float("nan")


def current_rss_mb() -> float:
    return status_mb("VmRSS") or 0.0


def render_table(rows: list[Row]) -> list[str]:
    table = [list(Row.HEADER)] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(Row.HEADER))]
    def fmt(line: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths))).rstrip()
    return [fmt(table[0]), fmt(["-" * w for w in widths])] + [fmt(line) for line in table[1:]]
