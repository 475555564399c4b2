"""Deterministic stub agents (no torch) for tests, fallback checks and as examples of the
interface, and the MLP policy (loaded lazily: it needs torch) for ablations.

    --agent aqm_llm.agent.stub:SojournThresholdAgent --agent-arg threshold_ms=1
    --agent aqm_llm.agent.stub:ForwardAllAgent
    --agent aqm_llm.agent.stub:StallingAgent --agent-arg sleep_s=2
    --agent aqm_llm.agent.stub:MlpPolicy
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from aqm_llm.bridge import Action, Request, TrafficClass
from aqm_llm.agent.interface import Agent, Decision, RunInfo, mark_to_drop_if_not_ect

__all__ = ["ForwardAllAgent", "MlpPolicy", "SojournThresholdAgent", "StallingAgent"]


class ForwardAllAgent(Agent):
    """Forward every packet; epoch probabilities 0."""

    def decide(self, request: Request) -> Decision:
        return Decision(np.zeros(request.packets.shape[0], np.uint8))


class SojournThresholdAgent(Agent):
    """Mark every L packet whose sojourn exceeds ``threshold_ms``, forward the rest;
    epoch probabilities 0 (a step AQM on L, nothing on C)."""

    def __init__(self, threshold_ms: float | str = 1.0) -> None:
        self.threshold_s = float(threshold_ms) * 1e-3

    def decide(self, request: Request) -> Decision:
        pk = request.packets
        mark = (pk["traffic_class"] == TrafficClass.L) & (pk["sojourn_s"] > self.threshold_s)
        actions = np.where(mark, np.uint8(Action.MARK), np.uint8(Action.FORWARD)).astype(np.uint8)
        return Decision(mark_to_drop_if_not_ect(actions, np.asarray(pk["ecn"])))


class StallingAgent(Agent):
    """Sleeps ``sleep_s`` in every ``decide`` (longer than the queue disc's timeout), then
    forwards everything: drives the fallback path."""

    def __init__(self, sleep_s: float | str = 1.0) -> None:
        self.sleep_s = float(sleep_s)
        self.calls = 0

    def reset(self, run_info: RunInfo) -> None:
        self.calls = 0

    def decide(self, request: Request) -> Decision:
        self.calls += 1
        time.sleep(self.sleep_s)
        return Decision(np.zeros(request.packets.shape[0], np.uint8))


def __getattr__(name: str) -> Any:
    # MlpPolicy needs torch; import it only when asked for, so the stubs start fast.
    if name == "MlpPolicy":
        from aqm_llm.agent.policy import MlpPolicy

        return MlpPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
