"""Closed-loop evaluation of trained policies against the baselines (``aqm-llm evaluate``).

    from aqm_llm.evaluate import evaluate, load_eval_config
    result = evaluate(load_eval_config("configs/evaluate-default.yaml"), "results/evaluate.db", "results/evaluate")
    print(result.markdown)

Every run goes through the sweep runner (Dask, one database row per run, resumable: a second
invocation runs only what is missing or failed). The table is rebuilt from the database each
time, so an interrupted evaluation reports what it has, with runs counted as done/planned.
Modules: spec (the evaluation file), table (statistics and the target verdict).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from aqm_llm.errors import ConfigError
from aqm_llm.evaluate.spec import EvalConfig, EvalPlanRun, load_eval_config, parse_eval_config
from aqm_llm.evaluate.table import SeriesStats, Verdict, collect_stats, csv_rows, markdown, verdicts
from aqm_llm.sweep import ClusterConfig, SweepSummary, run_sweep

__all__ = ["EvalConfig", "EvalPlanRun", "EvaluationResult", "SeriesStats", "Verdict", "evaluate",
           "load_eval_config", "parse_eval_config", "write_tables"]


@dataclass(frozen=True)
class EvaluationResult:
    summary: SweepSummary | None   # None when nothing was run (tables only)
    stats: list[SeriesStats]
    markdown: str
    markdown_path: Path
    csv_path: Path


def evaluate(cfg: EvalConfig, db_path: str | Path, out_dir: str | Path, *, cluster: ClusterConfig | None = None,
             run: bool = True, progress: bool = True, command: str = "",
             base_dir: Path | None = None, reuse_from: Sequence[str | Path] = ()) -> EvaluationResult:
    """Run what the database lacks (unless ``run`` is False), then write the tables into ``out_dir``.

    ``base_dir``: where relative checkpoint paths start (default: the working directory).
    ``reuse_from``: databases of other evaluations or sweeps whose 'ok' runs with the same keys are
    copied in before running (``run_sweep``).
    """
    if reuse_from and not run:
        raise ConfigError("--reuse-from copies runs in before running and --tables-only runs nothing; drop one "
                          "(to build tables from another database, give it as --db)")
    plan = cfg.runs(base_dir)
    summary = None
    if run:
        summary = run_sweep([r.run for r in plan], db_path, cluster=cluster, name=cfg.name, progress=progress,
                            run_dir=Path(db_path).parent / f"{Path(db_path).stem}-runs", reuse_from=reuse_from)
    return write_tables(cfg, plan, db_path, out_dir, command=command, summary=summary)


def write_tables(cfg: EvalConfig, plan: list[EvalPlanRun], db_path: str | Path, out_dir: str | Path, *,
                 command: str = "", summary: SweepSummary | None = None) -> EvaluationResult:
    import pandas as pd

    stats = collect_stats(cfg, plan, db_path)
    text = markdown(cfg, stats, command or f"aqm-llm evaluate {cfg.source}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, csv = out / "evaluation.md", out / "evaluation.csv"
    md.write_text(text + "\n")
    pd.DataFrame(csv_rows(stats)).to_csv(csv, index=False)
    return EvaluationResult(summary, stats, text, md, csv)
