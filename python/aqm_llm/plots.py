"""Plots of a queue-disc comparison: per-class queue delay over time and summary bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def comparison_plots(runs: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write delay-over-time and summary-bar PNGs for runs of one scenario; return their paths."""
    import pandas as pd

    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    series = [(m["run"]["qdisc"], m["run"].get("timeseries")) for m in runs]
    series = [(q, p) for q, p in series if p and Path(p).exists()]
    if series:
        fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
        for qdisc, path in series:
            df = pd.read_csv(path)
            axes[0].plot(df["t_s"], df["l4s_sojourn_ms"], label=qdisc, lw=1)
            axes[1].plot(df["t_s"], df["classic_sojourn_ms"], label=qdisc, lw=1)
        axes[0].set_ylabel("L4S sojourn (ms)")
        axes[1].set_ylabel("classic sojourn (ms)")
        axes[1].set_xlabel("simulated time (s)")
        for ax in axes:
            ax.set_yscale("symlog", linthresh=1.0)
            ax.grid(alpha=0.3)
        axes[0].legend(loc="upper right", fontsize=8)
        fig.suptitle(f"{runs[0]['scenario']}: queue delay per class (100 ms means)")
        fig.tight_layout()
        path = out_dir / "queue_delay_timeseries.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    labels = [m["run"]["qdisc"] for m in runs]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = range(len(runs))
    for i, cls in enumerate(("l4s", "classic")):
        p99 = [m["classes"][cls]["sojourn_ms"]["p99"] or 0 for m in runs]
        axes[0].bar([xi + 0.4 * i for xi in x], p99, width=0.4, label=cls)
        gp = [m["classes"][cls]["goodput_mbps"] or 0 for m in runs]
        axes[1].bar([xi + 0.4 * i for xi in x], gp, width=0.4, label=cls)
    axes[0].set_ylabel("p99 sojourn (ms)")
    axes[1].set_ylabel("goodput (Mb/s)")
    for ax in axes:
        ax.set_xticks([xi + 0.2 for xi in x], labels, rotation=20)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{runs[0]['scenario']}: per-class p99 sojourn and goodput")
    fig.tight_layout()
    path = out_dir / "summary_bars.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
