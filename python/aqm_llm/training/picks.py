"""How each family's distillation target compares with a reference teacher (dualpi2) in the pool's
own runs, by the evaluation's target rule: the pick's L4S p99, classic p99, utilisation and loss
against the reference's in the same family (means over the family's runs of each). It tells whether
the reward weights pick teachers that would meet the target, before anything is trained; the
numbers are the pool's short single-seed runs, so they are a screen, not an evaluation."""

from __future__ import annotations

import math
from typing import Any, Sequence

from aqm_llm.evaluate.spec import DEFAULT_UTILISATION_TOLERANCE
from aqm_llm.evaluate.table import TARGET_METRICS, target_terms
from aqm_llm.report.stats import mean_ci
from aqm_llm.training.dataset import PoolData, families

REFERENCE = "dualpi2"


def run_target_metrics(summary: dict[str, Any]) -> tuple[float | None, ...]:
    """A manifest run's summary metrics in TARGET_METRICS order (loss in percent)."""
    loss = summary.get("loss_rate")
    return (summary.get("l4s_sojourn_p99_ms"), summary.get("classic_sojourn_p99_ms"),
            summary.get("utilisation"), None if loss is None else 100.0 * loss)


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean of the known values (None, not NaN, when there is none: the summary is JSON)."""
    mean = mean_ci(values).mean
    return None if math.isnan(mean) else mean


def picks_against_reference(data: PoolData, best: dict[str, dict[str, Any]], manifests: list[dict[str, Any]],
                            reference: str = REFERENCE,
                            utilisation_tolerance: float = DEFAULT_UTILISATION_TOLERANCE) -> dict[str, Any]:
    """Per family with runs of both the pick and the reference: the two sides' metrics and the
    target's terms; with the count of families where the pick meets the whole target."""
    metrics = {run["run_id"]: run_target_metrics(run.get("metrics") or {})
               for m in manifests for run in m.get("runs", [])}
    episodes = families(data)
    per_family: dict[str, Any] = {}
    for fam, info in best.items():
        pick = info.get("best")
        runs = {name: [metrics[ep.run_id] for ep in episodes.get(fam, [])
                       if ep.acting == name and ep.run_id in metrics]
                for name in (pick, reference)}
        if pick is None or not runs[pick] or not runs[reference]:
            continue
        mine, ref = (tuple(_mean([r[i] for r in runs[name]]) for i in range(len(TARGET_METRICS)))
                     for name in (pick, reference))
        terms = target_terms(mine, ref, utilisation_tolerance)
        per_family[fam] = {"pick": pick, "metrics": dict(zip(TARGET_METRICS, mine)),
                         "reference_metrics": dict(zip(TARGET_METRICS, ref)),
                         "terms": dict(zip(TARGET_METRICS, terms)),
                         "met": None if None in terms else all(terms)}
    return {"reference": reference, "utilisation_tolerance": utilisation_tolerance,
            "met": sum(1 for f in per_family.values() if f["met"]), "families": len(per_family),
            "per_family": per_family}
