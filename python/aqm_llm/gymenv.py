"""The closed loop as a Gymnasium environment: an ns-3 scenario with the l4s-llm queue disc, whose
every decision epoch is one ``step``.

The interface RL researchers already use with ns3-gym and ns3-ai, over this project's own
shared-memory channel: ``reset`` starts the scenario program (seeded) with the l4s-llm queue disc
in agent mode and returns the first epoch's observation; ``step(action)`` answers that epoch and
returns the next one. The simulation waits for every answer (lockstep), so a run is deterministic
for a seed and a sequence of actions, whatever the wall time between steps.

Observation (a dict of arrays, the request of the epoch): ``series`` (8 x 16: L and C sojourn,
queue bytes, arrival and departure rate, marks, drops, capacity estimate; oldest first),
``scalars`` (4: burst allowance, DualPI2's p', p_L, p_C), ``packets`` (K x 4: sojourn s, size
bytes, class 0 L / 1 C, ECN codepoint of the head-of-queue packets in send order; rows past
``packet_count`` are 0) and ``packet_count``.

Action (a dict): ``probabilities`` (p_L mark, p_C drop, p_C mark for the packets not decided one
by one) and ``packets`` (0 forward, 1 drop, 2 mark for each described packet; entries past
``packet_count`` are ignored). DualPI2's safety rules (native L step, overload) hold as for any
agent.

Reward: the project's per-epoch reward (:func:`aqm_llm.agent.reward.epoch_reward`) of the
interval that ended at the new epoch, i.e. the effect of the decisions in force during it.
``terminated`` when the simulation ends; the run's metrics are then in ``info["metrics"]``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from aqm_llm.agent.reward import RewardConfig, epoch_reward
from aqm_llm.channel import AgentChannel, PeerGone, ReplyStatus, Request
from aqm_llm.errors import ConfigError, SimulationError
from aqm_llm.runner import RunSpec, build_command

#: Head-of-queue packets described per epoch (the queue disc's BatchSize limit).
MAX_PACKETS = 32
SERIES, WINDOW, SCALARS = 8, 16, 4


@dataclass(frozen=True)
class EnvConfig:
    """Which closed loop: scenario, its parameters, the reward and how long a step may take."""

    scenario: str = "dumbbell"
    params: Mapping[str, Any] = field(default_factory=lambda: {"duration": "10s", "warmup": "2s"})
    reward: RewardConfig = field(default_factory=RewardConfig)
    packets: int = 16  # K: packets decided one by one each epoch (the queue disc's llm_batch)
    #: Wall time the simulation waits for one action before that epoch falls back to DualPI2
    #: (counted in info["metrics"]["fallbacks"]): long, since learning code runs between steps.
    step_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if not 0 <= self.packets <= MAX_PACKETS:
            raise ConfigError(f"bad value '{self.packets}' for packets: allowed 0..{MAX_PACKETS}")
        if not self.step_timeout_s > 0:
            raise ConfigError(f"bad value '{self.step_timeout_s}' for step_timeout_s: must be > 0")
        for owned in ("llm_batch", "agent_timeout", "llm_mode"):
            if owned in self.params:
                raise ConfigError(f"parameter '{owned}' is set by the environment; use EnvConfig")


class L4sLlmEnv(gym.Env[dict[str, np.ndarray], dict[str, np.ndarray]]):
    """One ns-3 run of ``config.scenario`` per episode, one decision epoch per step."""

    metadata = {"render_modes": []}

    def __init__(self, config: EnvConfig | None = None) -> None:
        self.config = config or EnvConfig()
        k = self.config.packets
        self.observation_space = spaces.Dict({
            "series": spaces.Box(-np.inf, np.inf, (SERIES, WINDOW), np.float64),
            "scalars": spaces.Box(-np.inf, np.inf, (SCALARS,), np.float64),
            "packets": spaces.Box(-np.inf, np.inf, (k, 4), np.float64),
            "packet_count": spaces.Box(0, k, (), np.int64),
        })
        self.action_space = spaces.Dict({
            "probabilities": spaces.Box(0.0, 1.0, (3,), np.float64),
            "packets": spaces.MultiDiscrete(np.full(max(k, 1), 3)),
        })
        self._channel: AgentChannel | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._request: Request | None = None
        self._last_obs: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start a new run (``seed``: the simulation's seed, default 1; ``options["params"]``:
        scenario parameters over the config's)."""
        super().reset(seed=seed)
        self._stop()
        params = {**self.config.params, **(options or {}).get("params", {}),
                  "llm_batch": self.config.packets, "agent_timeout": f"{self.config.step_timeout_s:g}s"}
        self._workdir = tempfile.TemporaryDirectory(prefix="aqm-llm-env-")
        out = Path(self._workdir.name) / "metrics.json"
        cmd = build_command(RunSpec(self.config.scenario, "l4s-llm", 1 if seed is None else seed, params), out)
        self._channel = AgentChannel.create()
        cmd.append(f"--agent_channel={self._channel.name}")
        log = open(Path(self._workdir.name) / "run.log", "wb")  # noqa: SIM115 - closed in _stop
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        self._channel.watch_peer(self._proc.pid)
        try:
            self._request = self._channel.wait_request(self.config.step_timeout_s)
        except PeerGone:
            self._raise_run_failure()
        self._last_obs = self._observe(self._request)
        return self._last_obs, self._info(self._request)

    def step(self, action: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._channel is None or self._request is None:
            raise RuntimeError("call reset() before step()")
        probs = np.clip(np.asarray(action["probabilities"], np.float64).reshape(3), 0.0, 1.0)
        n = len(self._request.packets)
        codes = np.asarray(action.get("packets", np.zeros(0)), np.int64).reshape(-1)[:n]
        self._channel.send_reply(codes.astype(np.uint8), p_l_mark=float(probs[0]),
                                 p_c_drop=float(probs[1]), p_c_mark=float(probs[2]),
                                 status=ReplyStatus.OK)
        try:
            self._request = self._channel.wait_request(self.config.step_timeout_s)
        except PeerGone:
            return self._finish()
        self._last_obs = self._observe(self._request)
        reward = epoch_reward(self._request.rewards, self.config.reward)
        return self._last_obs, reward, False, False, self._info(self._request)

    def close(self) -> None:
        self._stop()

    # ------------------------------------------------------------------ internals

    def _observe(self, request: Request) -> dict[str, np.ndarray]:
        k = self.config.packets
        packets = np.zeros((k, 4), np.float64)
        p = request.packets[:k]
        packets[:len(p), 0] = p["sojourn_s"]
        packets[:len(p), 1] = p["size_bytes"]
        packets[:len(p), 2] = p["traffic_class"]
        packets[:len(p), 3] = p["ecn"]
        series = np.zeros((SERIES, WINDOW), np.float64)
        s = np.asarray(request.series)
        series[:s.shape[0], :s.shape[1]] = s
        scalars = np.zeros(SCALARS, np.float64)
        scalars[:len(request.scalars)] = request.scalars
        return {"series": series, "scalars": scalars, "packets": packets,
                "packet_count": np.asarray(len(p), np.int64)}

    @staticmethod
    def _info(request: Request) -> dict[str, Any]:
        return {"epoch": int(request.epoch), "sim_time_s": request.sim_time_ns * 1e-9}

    def _finish(self) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """The simulation ended: its metrics (fallbacks included) go to info."""
        assert self._proc is not None and self._workdir is not None and self._last_obs is not None
        code = self._proc.wait(timeout=60)
        if code != 0:
            self._raise_run_failure()
        metrics = json.loads((Path(self._workdir.name) / "metrics.json").read_text())
        self._request = None
        return self._last_obs, 0.0, True, False, {"metrics": metrics}

    def _raise_run_failure(self) -> None:
        assert self._proc is not None and self._workdir is not None
        code = self._proc.wait(timeout=60)
        log = (Path(self._workdir.name) / "run.log").read_text(errors="replace").strip().splitlines()
        self._stop()
        raise SimulationError(f"the scenario program ended with exit status {code}"
                              + (f": {log[-1]}" if log else ""))

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        self._request = None


gym.register(id="aqm-llm/L4sLlm-v0", entry_point=L4sLlmEnv)
