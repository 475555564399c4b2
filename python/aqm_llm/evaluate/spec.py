"""Evaluation files: settings (scenario + parameters, training or held-out) x queue discs and
trained policies x seeds.

Format (YAML)::

    name: evaluate-default
    seeds: {count: 3, start: 101}          # or a list; as in sweep files
    params: {duration: 6s, warmup: 2s}     # every run (each setting may override)
    baselines: [dualpi2, pie-l4s, fq-codel-l4s, codel, fifo]
    #   or entries {label, qdisc, params}: a queue disc with parameters of its own, e.g.
    #   {label: "dualpi2, other draws", qdisc: dualpi2, params: {qdisc_stream: 1}}
    reference: dualpi2                     # the baseline the target is stated against
    target: {policy: l4s-llm, utilisation_tolerance: 0.02}   # policy: any series but the reference
    policies:                              # l4s-llm runs, one series per trained checkpoint
      - {label: l4s-llm, checkpoint: models/l4s-llm}
      - {label: mlp-ablation, checkpoint: models/l4s-llm-mlp, splits: [held-out]}
      - {label: "l4s-llm @16 ms", checkpoint: models/l4s-llm, params: {decision_delay: 16ms}}
      - {label: "l4s-llm, no band", checkpoint: models/l4s-llm, p_prime_band: "off"}
      - {label: "return-conditioned, asked for 0.8", checkpoint: models/l4s-llm-return, target_return: 0.8}
    agent: {threads: 2}                    # the agent process (runner.AgentSpec fields)
    settings:
      - {name: dumbbell-seen, scenario: dumbbell, split: training, params: {rtt: 40ms}}
      - {name: fiveg-trace, scenario: fiveg, split: held-out, params: {trace: ../shared/traces/x.csv}}

``split`` is ``training`` (parameters the experience pool was collected at) or ``held-out``
(parameters it never saw). Bad input raises ConfigError with one line naming the bad value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqm_llm.configfile import read_yaml
from aqm_llm.errors import ConfigError
from aqm_llm.runner import AgentSpec, RunSpec
from aqm_llm.sweep.runs import SweepRun, canonical, sweep_agent
from aqm_llm.configschema import (Fail, Scalar, as_flag, as_list, as_mapping, as_names, as_one_or_more_names, as_params,
                                  as_run_timeout, as_seeds, checked_mapping, top_level)
from aqm_llm.sweep.spec import agent_spec

SPLITS = ("training", "held-out")
_TOP_KEYS = ("name", "description", "seeds", "params", "baselines", "reference", "target", "rung", "policies",
             "agent", "settings", "timeseries", "run_timeout_s")
_SETTING_KEYS = ("name", "scenario", "split", "params")
_BASELINE_KEYS = ("label", "qdisc", "params")
_POLICY_KEYS = ("label", "checkpoint", "splits", "params", "p_prime_band", "target_return", "sample")
_TARGET_KEYS = ("policy", "utilisation_tolerance", "calibration")


@dataclass(frozen=True)
class Setting:
    """One scenario at one parameter setting."""

    name: str
    scenario: str
    split: str
    params: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class Baseline:
    """A queue disc evaluated as it is (no agent), ``label`` in the tables; ``params`` apply to
    its runs on top of the setting's (qdisc_stream: the same queue disc with other draws)."""

    label: str
    qdisc: str
    params: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    """A trained checkpoint evaluated as queue disc l4s-llm; ``splits`` limits where it runs;
    ``params`` (e.g. decision_delay) apply to its runs on top of the setting's."""

    label: str
    checkpoint: str
    splits: tuple[str, ...] = SPLITS
    params: dict[str, Scalar] = field(default_factory=dict)
    p_prime_band: str | None = None  # None: the checkpoint's band; a factor or "off" (agent.band)
    target_return: float | None = None  # None: the checkpoint's target return (agent.reward)
    sample: bool = False  # packet actions drawn from the head's distribution instead of its argmax


#: The utilisation term's default tolerance: at least 98% of the reference's utilisation.
DEFAULT_UTILISATION_TOLERANCE = 0.02


@dataclass(frozen=True)
class Target:
    """The bar: ``policy`` (a policy's or a baseline's label) on held-out settings, L4S p99
    sojourn <= the reference's, utilisation >= (1 - tolerance) x the reference's, loss <= the
    reference's (means over seeds)."""

    policy: str
    utilisation_tolerance: float = DEFAULT_UTILISATION_TOLERANCE
    # Series that are the reference in distribution (e.g. the reference with other random
    # draws): the same target is judged for each, beside the policy's, so each verdict is read
    # against how often the reference meets the target against itself. Empty: no such rows.
    calibration: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalPlanRun:
    """A run and the series (table row) it belongs to."""

    setting: Setting
    label: str
    run: SweepRun


@dataclass(frozen=True)
class EvalConfig:
    name: str
    settings: tuple[Setting, ...]
    baselines: tuple[Baseline, ...]
    policies: tuple[Policy, ...]
    reference: str
    target: Target
    seeds: tuple[int, ...] = (1, 2, 3)
    params: dict[str, Scalar] = field(default_factory=dict)
    agent: AgentSpec = field(default_factory=lambda: sweep_agent(None))
    timeseries: bool = False
    run_timeout_s: float | None = None  # wall-clock limit per run (None: the sweep default)
    source: str = "evaluation"
    # The sanity rung: labels of series (not the reference) whose runs must reproduce the
    # reference's (evaluate.table's rung check); empty: no such check.
    rung: tuple[str, ...] = ()

    def labels(self) -> list[str]:
        """Series in table order: baselines, then policies."""
        return [*(b.label for b in self.baselines), *(p.label for p in self.policies)]

    def runs(self, base_dir: Path | None = None) -> list[EvalPlanRun]:
        """Every run, validated (ConfigError names the first bad one). A policy's checkpoint must
        exist: its content hash is part of the run's identity, so retraining re-runs its
        evaluation instead of reusing stale rows."""
        digests = {p.label: checkpoint_digest(resolve(p.checkpoint, base_dir), self.source) for p in self.policies}
        out: list[EvalPlanRun] = []
        for s in self.settings:
            params = {**self.params, **s.params}
            for b in self.baselines:
                out += [EvalPlanRun(s, b.label, canonical(SweepRun(RunSpec(s.scenario, b.qdisc, seed,
                                                                           {**params, **b.params}),
                                                                 timeseries=self.timeseries,
                                                                 timeout_s=self.run_timeout_s)))
                        for seed in self.seeds]
            for p in self.policies:
                if s.split not in p.splits:
                    continue
                agent = AgentSpec(agent="llm", checkpoint=str(resolve(p.checkpoint, base_dir)),
                                  backbone=self.agent.backbone, threads=self.agent.threads,
                                  startup_timeout_s=self.agent.startup_timeout_s,
                                  runtime=self.agent.runtime, p_prime_band=p.p_prime_band,
                                  target_return=p.target_return, sample=p.sample)
                out += [EvalPlanRun(s, p.label, canonical(SweepRun(
                    RunSpec(s.scenario, "l4s-llm", seed, {**params, **p.params}), agent=agent,
                    variant=f"checkpoint {digests[p.label]}", timeseries=self.timeseries,
                    timeout_s=self.run_timeout_s))) for seed in self.seeds]
        return out


def resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p


def checkpoint_digest(directory: Path, source: str = "evaluation") -> str:
    """sha256 (12 hex) over a checkpoint's files that define the policy."""
    from aqm_llm.agent.checkpoint import CONFIG_FILE, checkpoint_problem
    from aqm_llm.agent.policy import checkpoint_digest as policy_digest

    if not (directory / CONFIG_FILE).is_file():
        raise ConfigError(f"{source}: no trained checkpoint at {directory} (no {CONFIG_FILE}); train it first, "
                          "see docs/training.md")
    problem = checkpoint_problem(directory)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return policy_digest(directory)[:12]


def parse_eval_config(doc: Any, default_name: str = "evaluation", source: str = "evaluation") -> EvalConfig:
    fail, name = top_level(doc, _TOP_KEYS, "settings, baselines, policies, seeds", source, default_name)
    baselines = tuple(_baseline(item, i, fail)
                      for i, item in enumerate(as_list(doc.get("baselines", []), "baselines", fail)))
    policies = tuple(_policy(item, i, fail) for i, item in enumerate(as_list(doc.get("policies", []), "policies", fail)))
    labels = [*(b.label for b in baselines), *(p.label for p in policies)]
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise fail(f"label '{dup}' is used twice (baselines and policy labels must be distinct)")
    if not labels:
        raise fail("nothing to compare: give baselines and/or policies")
    reference = doc.get("reference", "dualpi2")
    baseline_labels = [b.label for b in baselines]
    if reference not in baseline_labels:
        raise fail(f"reference: '{reference}' is not one of the baselines ({', '.join(baseline_labels) or 'none'})")
    compared = [label for label in labels if label != reference]
    target = _target(doc.get("target"), policies, compared, fail)
    rung_value = doc.get("rung")
    rung = () if rung_value is None else as_one_or_more_names(rung_value, "rung", fail, allow_empty=True)
    for label in rung:
        if label not in compared:
            raise fail(f"rung: '{label}' is not a series other than the reference ({', '.join(compared) or 'none'})")
    settings = tuple(_setting(item, i, fail) for i, item in enumerate(as_list(doc.get("settings"), "settings", fail)))
    if not settings:
        raise fail("settings: give at least one {name, scenario, split, params}")
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise fail(f"settings: name '{next(x for x in names if names.count(x) > 1)}' is used twice")
    timeseries = as_flag(doc.get("timeseries", False), "timeseries", fail)
    return EvalConfig(name=name, settings=settings, baselines=baselines, policies=policies, reference=reference,
                      target=target, seeds=as_seeds(doc["seeds"], "seeds", fail) if "seeds" in doc else (1, 2, 3),
                      params=as_params(doc.get("params", {}), "params", fail),
                      agent=agent_spec(doc["agent"], fail) if doc.get("agent") is not None else sweep_agent(None),
                      timeseries=timeseries, run_timeout_s=as_run_timeout(doc.get("run_timeout_s"), fail),
                      source=source, rung=rung)


def _splits(value: Any, where: str, fail: Fail) -> tuple[str, ...]:
    items = as_names(value, where, fail)
    bad = [s for s in items if s not in SPLITS]
    if bad or not items:
        raise fail(f"{where}: bad split '{bad[0] if bad else ''}'; allowed: {', '.join(SPLITS)}")
    return items


def _setting(item: Any, i: int, fail: Fail) -> Setting:
    where = f"settings[{i}]"
    d = checked_mapping(item, where, _SETTING_KEYS, fail)
    for k in ("name", "scenario", "split"):
        if not isinstance(d.get(k), str) or not d[k]:
            raise fail(f"{where}: '{k}' is required (a name)")
    if d["split"] not in SPLITS:
        raise fail(f"{where}: bad split '{d['split']}'; allowed: {', '.join(SPLITS)}")
    return Setting(d["name"], d["scenario"], d["split"], as_params(d.get("params", {}), f"{where}.params", fail))


def _baseline(item: Any, i: int, fail: Fail) -> Baseline:
    """A queue disc name, or {label, qdisc, params}."""
    where = f"baselines[{i}]"
    if isinstance(item, str):
        d: dict[str, Any] = {"label": item, "qdisc": item}
    elif isinstance(item, dict):
        d = checked_mapping(item, where, _BASELINE_KEYS, fail)
    else:
        raise fail(f"{where}: bad value '{item}': expected a queue disc name or {{label, qdisc, params}}")
    for k in ("label", "qdisc"):
        if not isinstance(d.get(k), str) or not d[k]:
            raise fail(f"{where}: '{k}' is required (a name)")
    if d["qdisc"] == "l4s-llm":
        raise fail(f"{where}: 'l4s-llm' is evaluated through `policies` (one entry per checkpoint)")
    return Baseline(d["label"], d["qdisc"], as_params(d.get("params", {}), f"{where}.params", fail))


def _policy(item: Any, i: int, fail: Fail) -> Policy:
    where = f"policies[{i}]"
    d = checked_mapping(item, where, _POLICY_KEYS, fail)
    for k in ("label", "checkpoint"):
        if not isinstance(d.get(k), str) or not d[k]:
            raise fail(f"{where}: '{k}' is required")
    splits = _splits(d["splits"], f"{where}.splits", fail) if "splits" in d else SPLITS
    band = d.get("p_prime_band")
    if band is not None:
        from aqm_llm.agent.band import parse_band

        try:
            parse_band(str(band))
        except ValueError as exc:
            raise fail(f"{where}.p_prime_band: {exc}") from None
        band = str(band)
    target = d.get("target_return")
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target):
            raise fail(f"{where}.target_return: bad value '{target}': expected a finite number")
        target = float(target)
    sample = as_flag(d.get("sample", False), f"{where}.sample", fail)
    return Policy(d["label"], d["checkpoint"], splits, as_params(d.get("params", {}), f"{where}.params", fail),
                  band, target, sample)


def _target(value: Any, policies: tuple[Policy, ...], compared: list[str], fail: Fail) -> Target:
    """``compared``: the series other than the reference; the target policy is one of them (by
    default the first policy)."""
    d = checked_mapping(as_mapping(value, "target", fail) if value is not None else {}, "target", _TARGET_KEYS, fail)
    default = policies[0].label if policies else ""
    policy = d.get("policy", default)
    if "policy" in d and policy not in compared:
        raise fail(f"target.policy: '{policy}' is not a series other than the reference "
                   f"({', '.join(compared) or 'none'})")
    tol = d.get("utilisation_tolerance", DEFAULT_UTILISATION_TOLERANCE)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise fail(f"target.utilisation_tolerance: bad value '{tol}': expected a fraction in [0, 1)")
    named = d.get("calibration")
    calibration = () if named is None else as_one_or_more_names(named, "target.calibration", fail,
                                                                allow_empty=False)
    for label in calibration:
        if label not in compared or label == policy:
            raise fail(f"target.calibration: '{label}' is not a series other than the reference and the "
                       f"policy ({', '.join(c for c in compared if c != policy) or 'none'})")
    return Target(policy, float(tol), calibration)


def load_eval_config(path: str | Path) -> EvalConfig:
    """Read and check an evaluation file; ConfigError (one line) if it is malformed."""
    p = Path(path)
    return parse_eval_config(read_yaml(p, "evaluation file"), default_name=p.stem, source=str(p))
