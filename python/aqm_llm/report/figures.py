"""The report's PNGs for one section: sojourn CDFs, time series, and bars with confidence intervals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from aqm_llm.report.data import Run, Section
from aqm_llm.report.stats import mean_ci

if TYPE_CHECKING:
    import pandas as pd

CLASSES = (("l4s", "L4S"), ("classic", "classic"))
Metric = Callable[[dict[str, Any]], Any]
SMOOTH = 5  # time-series intervals in the throughput moving mean
# (title, metrics path per class) for the CI bar panels
BAR_PANELS: tuple[tuple[str, Callable[[dict[str, Any], str], Any]], ...] = (
    ("p99 sojourn (ms)", lambda m, c: m["classes"][c]["sojourn_ms"]["p99"]),
    ("mean sojourn (ms)", lambda m, c: m["classes"][c]["sojourn_ms"]["mean"]),
    ("goodput (Mb/s)", lambda m, c: m["classes"][c]["goodput_mbps"]),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


Colours = dict[str, Any]


def colours(labels: list[str]) -> Colours:
    """One colour per series label, the same in every section and plot."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _window(run: Run) -> tuple[float, float]:
    w = run.metrics.get("window_s") or [0.0, math.inf]
    return float(w[0]), float(w[1])


def _interval_ms(run: Run) -> str:
    return str(run.metrics.get("config", {}).get("timeseries_interval", "100ms"))


def _ts(run: Run) -> "pd.DataFrame":
    assert run.timeseries is not None  # callers pick runs that stored one
    return run.timeseries


def _steady(run: Run) -> "pd.DataFrame":
    """Time-series rows inside the metrics window (the warm-up excluded, like the metrics)."""
    start, end = _window(run)
    ts = _ts(run)
    return ts[(ts["t_s"] > start + 1e-9) & (ts["t_s"] <= end + 1e-9)]


def sojourn_cdf(sec: Section, path: Path, colour: Colours) -> Path | None:
    """Empirical CDF of per-interval mean sojourn samples, all seeds pooled, per class and queue disc.

    The scenarios record the sojourn per packet only as summary quantiles; the time series has the
    mean per interval (100 ms by default). So the curves are CDFs of those interval means, and the
    markers are the per-packet p50/p95/p99 from the metrics (mean over seeds) for comparison.
    """
    import numpy as np

    series = [s for s in sec.series if any(r.timeseries is not None for r in s.runs)]
    if not series:
        return None
    plt = _pyplot()
    interval = _interval_ms(series[0].runs[0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for s in series:
        runs = [r for r in s.runs if r.timeseries is not None]
        for ax, (cls, _) in zip(axes, CLASSES):
            samples = np.sort(np.concatenate([_steady(r)[f"{cls}_sojourn_ms"].to_numpy() for r in runs]))
            if samples.size:
                y = np.arange(1, samples.size + 1) / samples.size
                ax.step(samples, y, where="post", color=colour[s.label], lw=1.4, label=f"{s.label} (n={len(runs)})")
            qs = [(mean_ci(r.metrics["classes"][cls]["sojourn_ms"][q] for r in s.runs).mean, p)
                  for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))]
            qs = [(x, p) for x, p in qs if math.isfinite(x)]
            if qs:
                ax.plot([x for x, _ in qs], [p for _, p in qs], "o", color=colour[s.label], ms=5, mfc="none")
    for ax, (_, name) in zip(axes, CLASSES):
        ax.set_xscale("symlog", linthresh=0.1, linscale=0.5)
        ax.set_xlabel(f"{name} queue sojourn: mean per {interval} interval (ms)")
        ax.set_title(f"{name} class")
        ax.grid(alpha=0.3, which="both")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(left=0)
    axes[0].set_ylabel("fraction of intervals (CDF)")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], ls="none", marker="o", mfc="none", color="grey"))
    labels.append("o: per-packet p50/p95/p99 (metrics, mean over seeds)")
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.suptitle(f"{sec.title}: sojourn-time CDF after warm-up, seeds pooled")
    fig.tight_layout(rect=(0, 0.05 * ((len(labels) + 4) // 5), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _class_mbps(run: Run, cls: str):
    """Sum of the long-lived flows' throughput of one class per interval."""
    ids = [f["id"] for f in run.metrics.get("flows", []) if f.get("class") == cls]
    ts = _ts(run)
    cols = [f"flow{i}_mbps" for i in ids if f"flow{i}_mbps" in ts.columns]
    return ts[cols].sum(axis=1) if cols else None


def timeseries(sec: Section, path: Path, colour: Colours) -> Path | None:
    """Queue delay per class and throughput per class over time, one seed (the lowest) per queue disc."""
    picks = [(s.label, next(r for r in s.runs if r.timeseries is not None))
             for s in sec.series if any(r.timeseries is not None for r in s.runs)]
    if not picks:
        return None
    plt = _pyplot()
    interval = _interval_ms(picks[0][1])
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    peaks: list[float] = []
    for label, run in picks:
        ts = _ts(run)
        axes[0].plot(ts["t_s"], ts["l4s_sojourn_ms"], color=colour[label], lw=1, label=f"{label} (seed {run.seed})")
        axes[1].plot(ts["t_s"], ts["classic_sojourn_ms"], color=colour[label], lw=1)
        for cls, style in (("l4s", "-"), ("classic", "--")):
            mbps = _class_mbps(run, cls)
            if mbps is not None:
                # Per-interval goodput is bursty (in-order delivery after a loss, Wi-Fi block acks).
                smooth = mbps.rolling(SMOOTH, center=True, min_periods=1).mean()
                axes[2].plot(ts["t_s"], smooth, color=colour[label], lw=1, ls=style)
                peaks.append(float(smooth.quantile(0.99)))
    warmup = _window(picks[0][1])[0]
    for ax in axes:
        ax.axvline(warmup, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylim(bottom=0)
    axes[2].set_ylim(0, 1.15 * max(peaks) if peaks and max(peaks) > 0 else None)  # rare spikes clipped
    axes[0].set_ylabel(f"L4S sojourn (ms,\n{interval} mean)")
    axes[1].set_ylabel(f"classic sojourn (ms,\n{interval} mean)")
    axes[2].set_ylabel(f"throughput (Mb/s, {SMOOTH}-interval\nmoving mean) — L4S  -- classic")
    axes[2].set_xlabel("simulated time (s); dotted line: end of warm-up")
    axes[0].legend(loc="upper right", fontsize=8, ncol=2)
    fig.suptitle(f"{sec.title}: queue delay and throughput over time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def ci_bars(sec: Section, path: Path) -> Path:
    """Per-class p99/mean sojourn and goodput, utilisation and Jain: mean over seeds with 95% t-intervals."""
    import numpy as np

    plt = _pyplot()
    labels = [s.label for s in sec.series]
    x = np.arange(len(labels))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels: list[tuple[str, list[tuple[str, Metric]]]] = [
        (title, [(name, _per_class(fn, cls)) for cls, name in CLASSES]) for title, fn in BAR_PANELS]
    panels.append(("utilisation and Jain fairness", [("utilisation", lambda m: m.get("utilisation")),
                                                     ("Jain", lambda m: m.get("jain_fairness"))]))
    for ax, (title, bars) in zip(axes.flat, panels):
        width = 0.8 / len(bars)
        for i, (name, fn) in enumerate(bars):
            stats = [mean_ci(_safe(fn, r.metrics) for r in s.runs) for s in sec.series]
            means = [0.0 if math.isnan(st.mean) else st.mean for st in stats]
            errs = [0.0 if math.isnan(st.half_width) else st.half_width for st in stats]
            pos = x + (i - (len(bars) - 1) / 2) * width
            ax.bar(pos, means, width, yerr=errs, capsize=3, label=name)
            for px, st in zip(pos, stats):
                if not math.isnan(st.mean):
                    top = st.mean + (0.0 if math.isnan(st.half_width) else st.half_width)
                    ax.annotate(f"{st.mean:.3g}", (px, top), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize=7)
        if "sojourn" in title:
            # Delays span 0.1 ms (L4S) to 100+ ms (FIFO): a linear axis hides the small ones.
            ax.set_yscale("log")
            title += ", log scale"
        ax.set_title(title, fontsize=10)
        ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.15)
        ax.legend(fontsize=8, loc="best", framealpha=0.9)
    seeds = sorted({len(s.runs) for s in sec.series})
    n = "/".join(str(k) for k in seeds)
    fig.suptitle(f"{sec.title}: mean over seeds (n={n}) with 95% t confidence intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _per_class(fn: Callable[[dict[str, Any], str], Any], cls: str) -> Metric:
    return lambda m: fn(m, cls)


def _safe(fn: Metric, m: dict[str, Any]) -> float | None:
    try:
        v = fn(m)
    except (KeyError, TypeError):
        return None
    return None if v is None else float(v)
