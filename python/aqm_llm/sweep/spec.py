"""Sweep files: a grid (plus explicit combinations) of scenario x queue disc x parameters x seeds.

Format (YAML; every key but one of ``scenarios``/``include`` is optional)::

    name: compare                     # label stored with each row (default: the file's stem)
    description: free text            # ignored
    scenarios: [dumbbell, wifi]
    qdiscs: [fq-codel-l4s, dualpi2, fifo]
    seeds: [1, 2, 3]                  # or {count: 3, start: 1}; default [1]
    params: {duration: 20s, warmup: 5s}           # fixed for every run
    grid: {bottleneck_rate: [50Mbps, 100Mbps]}    # cartesian product over the lists
    per_scenario:                     # only for that scenario; a list value is a grid axis there
      wifi: {mac_queue: 64, channel_width: [20, 40]}
    include:                          # explicit extra combinations
      - {scenario: dumbbell, qdisc: red, params: {rtt: 40ms}, seeds: [1]}
    timeseries: true                  # write and store each run's time series (default true; the report uses it)
    agent: {threads: 2, checkpoint: models/x}     # l4s-llm runs: the agent process (see runner.AgentSpec)
    run_timeout_s: 900                # wall-clock limit per run (default: 120 s + 30 s per simulated s);
                                      # a run past it is killed and recorded as failed, the sweep goes on

Runs = scenarios x qdiscs x (grid and that scenario's per_scenario grid) x seeds, each with
``params``, then that scenario's fixed ``per_scenario`` values, then the grid values merged in
that order (later wins). An ``include`` entry runs its scenario and queue disc with ``params``,
the scenario's fixed ``per_scenario`` values and its own ``params`` (no grid), for its own
``seeds`` or the sweep's. A parameter that a scenario in ``scenarios`` does not declare is an
error unless it is scoped under ``per_scenario``. Bad input raises ConfigError with one line.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from aqm_llm.configfile import read_yaml
from aqm_llm.configschema import (Fail, Scalar, as_flag, as_list, as_mapping, as_names, as_params, as_run_timeout,
                                  as_scalar, as_seeds, as_values, is_positive_int,
                                  top_level)
from aqm_llm.errors import ConfigError
from aqm_llm.agent.runtime import RUNTIMES
from aqm_llm.runner import AgentSpec, RunSpec
from aqm_llm.scenarios import NS3_ATTRIBUTE_PREFIX, describe
from aqm_llm.sweep.runs import SWEEP_AGENT_THREADS, SweepRun

_TOP_KEYS = ("name", "description", "scenarios", "qdiscs", "seeds", "params", "grid", "per_scenario",
             "include", "timeseries", "agent", "run_timeout_s")
_INCLUDE_KEYS = ("scenario", "qdisc", "params", "seeds")
_AGENT_KEYS = ("agent", "checkpoint", "backbone", "threads", "startup_timeout_s", "runtime", "p_prime_band",
               "target_return", "sample")
#: Largest sweep (runs in one file): far beyond any real study, well below what fills memory.
MAX_RUNS = 100_000



@dataclass(frozen=True)
class Include:
    """One explicit combination; ``seeds`` None means the sweep's seeds."""

    scenario: str
    qdisc: str
    params: dict[str, Scalar] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file (see the module docstring for the format)."""

    name: str
    scenarios: tuple[str, ...] = ()
    qdiscs: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (1,)
    params: dict[str, Scalar] = field(default_factory=dict)
    grid: dict[str, tuple[Scalar, ...]] = field(default_factory=dict)
    per_scenario: dict[str, dict[str, Scalar | tuple[Scalar, ...]]] = field(default_factory=dict)
    include: tuple[Include, ...] = ()
    timeseries: bool = True
    agent: AgentSpec | None = None
    run_timeout_s: float | None = None  # None: runs.wall_clock_limit's default
    source: str = "sweep"  # where it came from (the file), for error messages

    def size(self) -> int:
        """How many runs ``runs()`` would list (before duplicates are dropped), without listing them."""
        total = 0
        for scenario in self.scenarios:
            scoped = self.per_scenario.get(scenario, {})
            axes = {**self.grid, **{k: v for k, v in scoped.items() if isinstance(v, tuple)}}
            total += len(self.qdiscs) * math.prod(len(v) for v in axes.values()) * len(self.seeds)
        return total + sum(len(inc.seeds or self.seeds) for inc in self.include)

    def runs(self) -> list[SweepRun]:
        """Every combination, in file order (not yet validated against the scenario programs)."""
        if self.size() > MAX_RUNS:
            raise ConfigError(f"{self.size()} runs in one file; at most {MAX_RUNS} "
                              "(split the sweep, or use fewer seeds or grid values)")
        out: list[SweepRun] = []
        for scenario in self.scenarios:
            scoped = self.per_scenario.get(scenario, {})
            fixed = {k: v for k, v in scoped.items() if not isinstance(v, tuple)}
            axes = {**self.grid, **{k: v for k, v in scoped.items() if isinstance(v, tuple)}}
            names = list(axes)
            for qdisc in self.qdiscs:
                for combo in itertools.product(*(axes[n] for n in names)):
                    params = {**self.params, **fixed, **dict(zip(names, combo))}
                    out += [self._run(scenario, qdisc, seed, params) for seed in self.seeds]
        for inc in self.include:
            scoped = self.per_scenario.get(inc.scenario, {})
            fixed = {k: v for k, v in scoped.items() if not isinstance(v, tuple)}
            params = {**self.params, **fixed, **inc.params}
            out += [self._run(inc.scenario, inc.qdisc, seed, params) for seed in (inc.seeds or self.seeds)]
        return out

    def _run(self, scenario: str, qdisc: str, seed: int, params: Mapping[str, Scalar]) -> SweepRun:
        return SweepRun(spec=RunSpec(scenario, qdisc, seed, dict(params)), agent=self.agent,
                        timeseries=self.timeseries, timeout_s=self.run_timeout_s)

    def check_scoping(self) -> None:
        """Every shared parameter must exist in every scenario it applies to."""
        for scenario in self.scenarios:
            declared = describe(scenario).params
            for where, names in (("params", self.params), ("grid", self.grid)):
                for name in names:
                    # ns-3 attribute defaults apply to every program; each run's check tests them.
                    if name not in declared and not name.startswith(NS3_ATTRIBUTE_PREFIX):
                        raise ConfigError(
                            f"{self.source}: parameter '{name}' (in {where}) does not exist for scenario "
                            f"{scenario}; scope it under per_scenario, or see `aqm-llm scenarios {scenario}`")


def parse_spec(doc: Any, default_name: str = "sweep", source: str = "sweep") -> SweepSpec:
    """Check a sweep document (the YAML as Python data) and return it as a SweepSpec."""
    fail, name = top_level(doc, _TOP_KEYS, "scenarios, qdiscs, seeds, params, grid", source, default_name)
    scenarios = as_names(doc.get("scenarios", []), "scenarios", fail)
    qdiscs = as_names(doc.get("qdiscs", []), "qdiscs", fail)
    if bool(scenarios) != bool(qdiscs):
        raise fail("scenarios and qdiscs go together: give both (or neither, with include)")
    include = tuple(_include(item, i, fail) for i, item in enumerate(as_list(doc.get("include", []), "include", fail)))
    if not scenarios and not include:
        raise fail("nothing to run: give scenarios and qdiscs, or include")
    per_scenario_doc = as_mapping(doc.get("per_scenario", {}), "per_scenario", fail)
    per_scenario: dict[str, dict[str, Scalar | tuple[Scalar, ...]]] = {}
    known = set(scenarios) | {inc.scenario for inc in include}
    for scen, values in per_scenario_doc.items():
        if scen not in known:
            raise fail(f"per_scenario: '{scen}' is not one of this sweep's scenarios ({', '.join(sorted(known))})")
        per_scenario[scen] = {k: (as_values(v, f"per_scenario.{scen}.{k}", fail) if isinstance(v, list)
                                  else as_scalar(v, f"per_scenario.{scen}.{k}", fail))
                              for k, v in as_mapping(values, f"per_scenario.{scen}", fail).items()}
    timeseries = as_flag(doc.get("timeseries", True), "timeseries", fail)
    spec = SweepSpec(
        name=name, scenarios=scenarios, qdiscs=qdiscs,
        seeds=as_seeds(doc["seeds"], "seeds", fail) if "seeds" in doc else (1,),
        params=as_params(doc.get("params", {}), "params", fail),
        grid={k: as_values(v, f"grid.{k}", fail) for k, v in as_mapping(doc.get("grid", {}), "grid", fail).items()},
        per_scenario=per_scenario, include=include, timeseries=timeseries, source=source,
        run_timeout_s=as_run_timeout(doc.get("run_timeout_s"), fail),
        agent=agent_spec(doc["agent"], fail) if doc.get("agent") is not None else None)
    for reserved in ("qdisc", "seed"):
        if reserved in spec.params or reserved in spec.grid:
            raise fail(f"'{reserved}' is not a parameter here: use the {reserved}s list")
    return spec


def _include(item: Any, i: int, fail: Fail) -> Include:
    where = f"include[{i}]"
    if not isinstance(item, dict):
        raise fail(f"{where}: expected a mapping with scenario, qdisc, params, seeds")
    unknown = [k for k in item if k not in _INCLUDE_KEYS]
    if unknown:
        raise fail(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(_INCLUDE_KEYS)}")
    for k in ("scenario", "qdisc"):
        if not isinstance(item.get(k), str) or not item[k]:
            raise fail(f"{where}: '{k}' is required (a name)")
    seeds = as_seeds(item["seeds"], f"{where}.seeds", fail) if "seeds" in item else None
    return Include(item["scenario"], item["qdisc"], as_params(item.get("params", {}), f"{where}.params", fail), seeds)


def agent_spec(value: Any, fail: Fail) -> AgentSpec:
    doc = as_mapping(value, "agent", fail)
    unknown = [k for k in doc if k not in _AGENT_KEYS]
    if unknown:
        raise fail(f"agent: unknown key '{unknown[0]}'; allowed: {', '.join(_AGENT_KEYS)}")
    if "threads" in doc and not is_positive_int(doc["threads"]):
        raise fail("agent.threads: expected an integer >= 1")
    if "sample" in doc:
        as_flag(doc["sample"], "agent.sample", fail)
    if "runtime" in doc and doc["runtime"] not in RUNTIMES:
        raise fail(f"agent.runtime: bad value '{doc['runtime']}'; allowed: {', '.join(RUNTIMES)}")
    try:
        spec = AgentSpec(**{"threads": SWEEP_AGENT_THREADS, **doc})
    except TypeError as exc:
        raise fail(f"agent: {exc}") from None
    try:
        spec.check()  # a missing module or checkpoint fails here, not in every run
    except ConfigError as exc:
        raise fail(f"agent: {exc}") from None
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; ConfigError (one line) if it is malformed."""
    p = Path(path)
    return parse_spec(read_yaml(p, "sweep file"), default_name=p.stem, source=str(p))
