"""The co-simulation figures of ``aqm-llm bench inference``: what a decision costs a real run.

One l4s-llm dumbbell run with the agent (its start time, decisions, wall time) against the same
run with dualpi2, then two l4s-llm runs side by side with one agent thread each (the sweep
default: ``sweep.runs.SWEEP_AGENT_THREADS``).
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aqm_llm.scenarios import parse_seconds


@dataclass(frozen=True)
class CosimRun:
    wall_s: float  # the scenario's simulation loop (agent start excluded)
    agent_start_s: float  # agent process start to READY (interpreter, imports, loading)
    decisions: int
    fallbacks: int
    compute_s: float  # decisions x the agent's mean decision latency
    latency_p50_ms: float
    latency_p99_ms: float

    @classmethod
    def of(cls, metrics: dict[str, Any]) -> CosimRun:
        agent = metrics.get("agent", {})
        lat = agent.get("latency_ms", {})
        decisions = int(agent.get("decisions", 0))
        return cls(float(metrics["wall_time_s"]), float(agent.get("start_s", 0.0)), decisions,
                   int(metrics.get("fallbacks", 0)), decisions * float(lat.get("mean", 0.0)) / 1e3,
                   float(lat.get("p50", 0.0)), float(lat.get("p99", 0.0)))


@dataclass(frozen=True)
class CosimResult:
    duration: str
    threads: int
    llm: CosimRun
    dualpi2_wall_s: float
    pair: tuple[CosimRun, CosimRun] | None  # two runs side by side, 1 agent thread each
    pair_elapsed_s: float

    @property
    def sim_s(self) -> float:
        return parse_seconds(self.duration) or 1.0

    def render(self) -> str:
        r, sim = self.llm, self.sim_s
        overhead = r.wall_s - r.compute_s
        lines = [
            f"co-simulation: dumbbell (defaults), {self.duration} simulated, seed 1, l4s-llm served by the "
            f"shipped checkpoint ({self.threads} agent threads) vs dualpi2, one run each",
            f"  agent start (process start to READY) {r.agent_start_s:8.2f} s",
            f"  l4s-llm simulation wall time          {r.wall_s:8.2f} s  ({r.decisions} decisions, "
            f"{r.fallbacks} fallbacks; decision p50 {r.latency_p50_ms:.1f} ms, p99 {r.latency_p99_ms:.1f} ms "
            f"as the agent timed them)",
            f"  less the agent's compute              {r.compute_s:8.2f} s",
            f"  = simulation + channel + waiting      {overhead:8.2f} s",
            f"  dualpi2 simulation wall time          {self.dualpi2_wall_s:8.2f} s",
            f"  co-simulation overhead                {overhead - self.dualpi2_wall_s:8.2f} s "
            f"({(overhead - self.dualpi2_wall_s) / max(r.decisions, 1) * 1e3:.2f} ms per epoch)",
            f"  wall s per simulated s                {r.wall_s / sim:8.2f}    "
            f"(dualpi2: {self.dualpi2_wall_s / sim:.2f})",
        ]
        if self.pair is not None:
            a, b = self.pair
            lines += [
                f"two l4s-llm runs side by side (seeds 1, 2), 1 agent thread each (the sweep default):",
                f"  wall s per simulated s, each run      {a.wall_s / sim:8.2f}, {b.wall_s / sim:.2f}  "
                f"(decision p50 {a.latency_p50_ms:.1f}, {b.latency_p50_ms:.1f} ms; "
                f"{a.fallbacks + b.fallbacks} fallbacks)",
                f"  both done in                          {self.pair_elapsed_s:8.2f} s  "
                f"= {self.pair_elapsed_s / (2 * sim):.2f} wall s per simulated s of sweep throughput",
            ]
        return "\n".join(lines) + "\n"


def measure_cosim(duration: str, *, backbone: str, threads: int, pair: bool = True) -> CosimResult:
    import aqm_llm
    from aqm_llm.runner import AgentSpec

    sim = parse_seconds(duration) or 1.0
    params = {"duration": duration, "warmup": f"{min(5.0, sim / 4):g}s"}

    def llm_run(seed: int, agent_threads: int, tmp: str) -> dict[str, Any]:
        return aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=seed, params=params, output_dir=tmp,
                           agent=AgentSpec(agent="llm", backbone=backbone, threads=agent_threads))

    with tempfile.TemporaryDirectory() as tmp:
        llm = CosimRun.of(llm_run(1, threads, tmp))
        base = aqm_llm.run("dumbbell", qdisc="dualpi2", seed=1, params=params, output_dir=tmp)
        both: tuple[CosimRun, CosimRun] | None = None
        elapsed = 0.0
        if pair:
            start = time.monotonic()
            with ThreadPoolExecutor(2) as pool:
                futures = [pool.submit(llm_run, seed, 1, tmp) for seed in (1, 2)]
                runs = [CosimRun.of(f.result()) for f in futures]
            elapsed = time.monotonic() - start
            both = (runs[0], runs[1])
    return CosimResult(duration, threads, llm, float(base["wall_time_s"]), both, elapsed)
