"""The agent interface: what the agent process (``aqm_llm.agent.server``) drives.

A researcher plugs in a policy that is not an LLM with ``--agent module:Class``: the class
needs the three methods of :class:`Agent` (subclassing it is optional)::

    class MyAgent(Agent):
        def reset(self, run_info: RunInfo) -> None: ...       # once per run, before requests
        def decide(self, request: Request) -> Decision: ...   # once per decision epoch
        def close(self) -> None: ...                          # at the end of the process

``request`` is a :class:`aqm_llm.channel.Request`: read-only numpy views onto shared memory,
valid only during ``decide`` (copy what must outlive it). Units are those of
``ns3_module/model/agent-messages.h`` (seconds, bytes, bit/s, counts per interval).
``decide`` returns one action code (``channel.Action``: 0 forward, 1 drop, 2 mark) per request
packet, in request order, plus the per-class probabilities the queue disc applies to packets
that were not in the batch. A mark on a Not-ECT packet is carried out as a drop.

Constructor keyword arguments come from the server's ``--agent-arg KEY=VALUE`` options (as
strings). An agent that raises, is too slow or answers something invalid costs the run a
fallback epoch (DualPI2 decides), never a crash.
"""

from __future__ import annotations

import importlib
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import numpy.typing as npt

from aqm_llm.channel import Action, ReplyStatus, Request

ACTION_COUNT = len(Action)


@dataclass(frozen=True)
class RunInfo:
    """What an agent learns at the start of a run."""

    seed: int = 1
    channel: str = ""  # the shared-memory channel's name ("" outside the server)
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """An agent's answer to one request."""

    actions: npt.NDArray[np.uint8]  # (packet_count,), actions[i] for request.packets[i]
    p_l_mark: float = 0.0  # L packets not in the batch: mark probability
    p_c_drop: float = 0.0  # C packets not in the batch: drop probability
    p_c_mark: float = 0.0  # ECN-capable C packets not in the batch: mark probability
    status: ReplyStatus = ReplyStatus.OK  # FALLBACK: let the queue disc's controller decide

    def problem(self, request: Request) -> str | None:
        """Why this decision cannot be sent for ``request`` (None when it can)."""
        acts = self.actions
        if not isinstance(acts, np.ndarray) or acts.ndim != 1 or acts.dtype.kind not in "iu":
            return f"actions must be a 1-d integer array, got {type(acts).__name__}"
        if acts.shape[0] != request.packets.shape[0]:
            return f"{acts.shape[0]} actions for {request.packets.shape[0]} packets"
        if acts.size and (int(acts.min()) < 0 or int(acts.max()) >= ACTION_COUNT):
            return f"action codes must be in 0..{ACTION_COUNT - 1}"
        for name in ("p_l_mark", "p_c_drop", "p_c_mark"):
            p = getattr(self, name)
            if not (isinstance(p, numbers.Real) and 0.0 <= float(p) <= 1.0):  # NaN fails too
                return f"{name} = {p!r} not in [0, 1]"
        return None


def forward_all(request: Request) -> Decision:
    """Forward every packet; probabilities 0."""
    return Decision(np.zeros(request.packets.shape[0], np.uint8))


def mark_to_drop_if_not_ect(actions: npt.NDArray[np.uint8],
                            ecn: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A mark on a Not-ECT packet (ECN codepoint 0) is a drop (in place; returns actions)."""
    actions[(actions == Action.MARK) & (ecn == 0)] = Action.DROP
    return actions


class Agent(ABC):
    """Base class of agents (optional: any object with these methods will do)."""

    #: False for a policy that runs without trained weights: the server warns.
    trained: bool = True

    def reset(self, run_info: RunInfo) -> None:
        """Start of a run: reseed, forget history."""

    @abstractmethod
    def decide(self, request: Request) -> Decision:
        """One decision per epoch, for all packets of the request."""

    def close(self) -> None:
        """Release resources at the end of the process."""


def load_agent(spec: str, **kwargs: Any) -> Agent:
    """Instantiate ``"package.module:Class"`` with ``kwargs``."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"agent '{spec}': expected module:Class (e.g. "
                         "aqm_llm.agent.stub:SojournThresholdAgent)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"agent '{spec}': cannot import {module_name}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"agent '{spec}': {module_name} has no attribute {class_name}")
    agent = cls(**kwargs)
    missing = [m for m in ("reset", "decide", "close") if not callable(getattr(agent, m, None))]
    if missing:
        raise ValueError(f"agent '{spec}' lacks {', '.join(missing)} (see aqm_llm.agent.interface)")
    return agent  # type: ignore[no-any-return]
