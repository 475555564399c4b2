"""One run of a sweep: its identity (the results database's unique key) and the cores it needs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from aqm_llm.errors import ConfigError
from aqm_llm.runner import RUNNER_SET, AgentSpec, RunSpec, build_command, needs_agent
from aqm_llm.scenarios import describe, parse_seconds

# Set per run by the sweep itself: a sweep-wide `timeseries` switch, the agent's channel per process.
_SWEEP_OWNED = {"timeseries": "use the sweep's `timeseries: true|false`",
                "agent_channel": "the runner creates one channel per run"}


#: Agent threads of a sweep's l4s-llm runs unless its `agent:` says otherwise: two runs of one
#: thread each side by side use 2 cores better than one run of two (docs/bench-inference.md).
SWEEP_AGENT_THREADS = 1


def sweep_agent(agent: AgentSpec | None) -> AgentSpec:
    """The agent a sweep's l4s-llm run gets: its own, or the sweep default."""
    return agent if agent is not None else AgentSpec(threads=SWEEP_AGENT_THREADS)


def cores_needed(qdisc: str, params: Mapping[str, Any], agent: AgentSpec | None = None) -> int:
    """Cores one run occupies while it runs.

    An l4s-llm run served by an agent process runs in lockstep (the simulation waits while the
    agent decides, and the agent while the simulation runs), so it needs the agent's threads;
    every other queue disc, and l4s-llm running a teacher alone, needs 1.
    """
    if needs_agent(qdisc, params):
        return max(1, sweep_agent(agent).threads)
    return 1


@dataclass(frozen=True)
class SweepRun:
    """A run as a sweep schedules it.

    ``variant`` separates runs of the same configuration that a custom task treats
    differently (e.g. "record" for experience collection); it is part of the key.
    """

    spec: RunSpec
    agent: AgentSpec | None = None
    variant: str = ""
    timeseries: bool = True
    timeout_s: float | None = None  # wall-clock limit of the simulation (None: wall_clock_limit's default)

    def key(self) -> str:
        """The results database's unique key: the runner's key unless agent or variant add to it."""
        base = self.spec.key()
        extra = self.identity_extra()
        if not extra:
            return base  # same key as `aqm-llm run` gives the same configuration
        blob = json.dumps([base, extra], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def identity_extra(self) -> dict[str, Any]:
        """What besides the RunSpec changes the result (agent policy, variant)."""
        extra: dict[str, Any] = {}
        if self.variant:
            extra["variant"] = self.variant
        if self.uses_agent():
            a = sweep_agent(self.agent)
            # Threads and timeouts are resources, not identity: the agent is deterministic per seed.
            # The runtime is identity when it is not the default: torch and ONNX Runtime agree on
            # decisions (tests/test_fast_path.py) but not to the last bit.
            extra["agent"] = {"agent": a.agent, "checkpoint": a.checkpoint, "backbone": a.backbone}
            if a.runtime != AgentSpec.runtime:
                extra["agent"]["runtime"] = a.runtime
            if a.p_prime_band is not None:  # a band other than the checkpoint's decides differently
                extra["agent"]["p_prime_band"] = str(a.p_prime_band)
            if a.target_return is not None:  # so does another target return
                extra["agent"]["target_return"] = float(a.target_return)
            if a.sample:  # and sampled packet actions
                extra["agent"]["sample"] = True
        return extra

    def uses_agent(self) -> bool:
        return needs_agent(self.spec.qdisc, self.spec.params)

    def cores(self) -> int:
        return cores_needed(self.spec.qdisc, self.spec.params, self.agent)

    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in sorted(self.spec.params.items()))
        var = f" [{self.variant}]" if self.variant else ""
        return f"{self.spec.scenario}/{self.spec.qdisc}/seed {self.spec.seed}{var} {params}".rstrip()


def canonical(run: SweepRun | RunSpec) -> SweepRun:
    """Validate a run and return it with parameter values as the program's command-line strings.

    Normalising (64 -> "64", True -> "true") makes the key the same however the value was written.
    Raises ConfigError naming the run if any part of it is bad.
    """
    sr = run if isinstance(run, SweepRun) else SweepRun(spec=run)
    spec = sr.spec
    try:
        if not isinstance(spec.seed, int) or isinstance(spec.seed, bool) or spec.seed < 1:
            raise ConfigError(f"bad value '{spec.seed}' for seed: must be an integer >= 1")
        for name, why in _SWEEP_OWNED.items():
            if name in spec.params:
                raise ConfigError(f"parameter '{name}' is set by the sweep: {why}")
        scenario = describe(spec.scenario)
        if spec.qdisc not in scenario.qdiscs:
            raise ConfigError(f"unknown queue disc '{spec.qdisc}' for scenario {spec.scenario}; "
                              f"allowed: {', '.join(scenario.qdiscs)}")
        params = scenario.normalise(dict(spec.params), hidden=RUNNER_SET) if spec.params else {}
        norm = RunSpec(spec.scenario, spec.qdisc, spec.seed, params)
        # The runner's own checks (runner-owned parameters, warm-up below duration).
        build_command(norm, output=Path("/dev/null"), timeseries=Path("/dev/null") if sr.timeseries else None)
    except ConfigError as exc:
        raise ConfigError(f"{sr.label()}: {exc}") from None
    return SweepRun(spec=norm, agent=sr.agent, variant=sr.variant, timeseries=sr.timeseries,
                    timeout_s=sr.timeout_s)


#: Default wall-clock limit of a sweep run: this many seconds plus RUN_LIMIT_PER_SIM_S per simulated
#: second (an l4s-llm run takes ~1.5 wall-s per simulated s, a large-buffer FIFO run up to ~5).
RUN_LIMIT_BASE_S = 120.0
RUN_LIMIT_PER_SIM_S = 30.0


def wall_clock_limit(run: SweepRun) -> float:
    """The run's own limit, else a default from its simulated duration."""
    if run.timeout_s is not None:
        return run.timeout_s
    scenario = describe(run.spec.scenario)
    duration = parse_seconds(str(run.spec.params.get("duration", scenario.params["duration"].default))) or 0.0
    return RUN_LIMIT_BASE_S + RUN_LIMIT_PER_SIM_S * duration
