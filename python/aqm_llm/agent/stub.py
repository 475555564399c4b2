"""Deterministic stub agents (no torch) for tests, fallback checks and as examples of the
interface, and the MLP policy (loaded lazily: it needs torch) for ablations.

    --agent aqm_llm.agent.stub:SojournThresholdAgent --agent-arg threshold_ms=1
    --agent aqm_llm.agent.stub:ForwardAllAgent
    --agent aqm_llm.agent.stub:StallingAgent --agent-arg sleep_s=2
    --agent aqm_llm.agent.stub:DualPi2ProbabilityAgent --set llm_batch=0
    --agent aqm_llm.agent.stub:MlpPolicy
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from aqm_llm.agent.band import DUALPI2_COUPLING
from aqm_llm.channel import Action, Request, Scalar, TrafficClass
from aqm_llm.agent.interface import Agent, Decision, RunInfo, mark_to_drop_if_not_ect

__all__ = ["DualPi2ProbabilityAgent", "ForwardAllAgent", "MlpPolicy", "SojournThresholdAgent",
           "StallingAgent"]


class ForwardAllAgent(Agent):
    """Forward every packet; epoch probabilities 0."""

    def decide(self, request: Request) -> Decision:
        return Decision(np.zeros(request.packets.shape[0], np.uint8))


class SojournThresholdAgent(Agent):
    """Mark (``action=drop``: drop) every L packet whose sojourn exceeds ``threshold_ms``, forward
    the rest; epoch probabilities 0 (a step AQM on L, nothing on C)."""

    def __init__(self, threshold_ms: float | str = 1.0, action: str = "mark") -> None:
        if action not in ("mark", "drop"):
            raise ValueError(f"action {action!r}: allowed: mark, drop")
        self.threshold_s = float(threshold_ms) * 1e-3
        self.signal = np.uint8(Action.MARK if action == "mark" else Action.DROP)

    def decide(self, request: Request) -> Decision:
        pk = request.packets
        over = (pk["traffic_class"] == TrafficClass.L) & (pk["sojourn_s"] > self.threshold_s)
        actions = np.where(over, self.signal, np.uint8(Action.FORWARD)).astype(np.uint8)
        return Decision(mark_to_drop_if_not_ect(actions, np.asarray(pk["ecn"])))


class DualPi2ProbabilityAgent(Agent):
    """Returns DualPI2's own epoch probabilities from the request's base probability p':
    p_L = min(k p', 1) (the coupled mark, under which the queue disc keeps the native step),
    p_C = p'^2 as a mark (carried out as a drop on Not-ECT packets); batch packets forwarded.

    With ``llm_batch=0`` (no per-packet batch) every packet goes through the epoch path, and with
    ``llm_agent_forward=draw`` so do the batch packets it forwards, so a run must reproduce the
    queue disc's own DualPI2 fallback draw for draw (with no L4S sojourn limit, and while the
    classic queue is not overloaded: there DualPI2 drops ECT(0) packets that this reply marks):
    the check that the probability path applies probabilities exactly as DualPI2 does."""

    def __init__(self, coupling: float | str = DUALPI2_COUPLING) -> None:
        self.coupling = float(coupling)  # the queue disc's CouplingFactor (k, default 2)

    def decide(self, request: Request) -> Decision:
        p_base = float(request.scalars[Scalar.P_PRIME])
        return Decision(np.zeros(request.packets.shape[0], np.uint8),
                        p_l_mark=min(self.coupling * p_base, 1.0), p_c_mark=p_base * p_base)


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
