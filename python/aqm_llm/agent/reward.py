"""The per-epoch reward and the return-to-go the policy is conditioned on.

Each request carries the reward components of the epoch that just ended (the outcome of the
previous reply; ``channel.Reward``): utilisation, mean L and C sojourn (s), loss fraction.
They are combined as

    r = w_util * utilisation - w_L * L_delay_ms - w_C * C_delay_ms - w_loss * loss

(delay is penalised, never rewarded; the weights live in :class:`RewardConfig` and go into
the checkpoint so training and inference agree). Decision-Transformer style, the policy is
conditioned on the return still to collect:

    RTG_t = target_return - sum(r(request_s) for s in 0..t)

i.e. the running sum includes the rewards carried by the current request. The token value
is ``(RTG_t - rtg_offset) / rtg_scale``; training sets ``target_return``, ``rtg_scale`` and
``rtg_offset`` from the experience pool. Two modes (``rtg_mode``):

- ``sum``: RTG_t as above, the return still to collect; its size depends on the run length and
  the scale on the pool's worst episodes (the first checkpoints).
- ``per_epoch``: the mean reward per epoch still to come, standardised over the pool
  (``rtg_offset`` its mean, ``rtg_scale`` its standard deviation). It does not depend on the run
  length; online the agent does not know how many epochs remain, so it holds the token at the
  target per-epoch return (``target_return`` is then a reward per epoch) for the whole run.

How the values become tokens (``rtg_norm``):

- ``standard``: (value - mean) / standard deviation over the pool's rows (``rtg_offset``,
  ``rtg_scale``). A few collapsed episodes (GEO at 600 ms, overload) make the standard deviation
  of the default pool 11.6 reward units per epoch, so everything between its 10th percentile and
  its best episode lands within 0.26 of each other: the shipped checkpoint decides the same
  (within 1% of its probabilities) for any target in that range.
- ``robust``: (value - median) / interquartile range, clipped to +-:data:`ROBUST_TOKEN_CLIP`:
  the middle half of the pool spans one unit, the outliers saturate instead of setting the scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aqm_llm.channel import Reward


RTG_MODES = ("sum", "per_epoch")
RTG_NORMS = ("standard", "robust")
#: |token| bound of the robust normalisation: values beyond 3 interquartile ranges saturate.
ROBUST_TOKEN_CLIP = 3.0


@dataclass(frozen=True)
class RewardConfig:
    utilization: float = 1.0       # per unit of departure rate / capacity
    l_delay_per_ms: float = 0.1    # 1 ms of L sojourn costs 0.1 (L4S target ~1 ms)
    c_delay_per_ms: float = 0.02   # 15 ms of C sojourn costs 0.3 (classic target ~15 ms)
    loss: float = 10.0             # 1 % loss costs 0.1
    target_return: float = 1000.0  # RTG at the start of a run (sum mode) or per epoch (per_epoch)
    rtg_scale: float = 1000.0      # RTG token value = (RTG - rtg_offset) / rtg_scale
    rtg_mode: str = "sum"          # "sum" or "per_epoch" (module doc)
    rtg_offset: float = 0.0
    rtg_norm: str = "standard"     # "standard" or "robust" (module doc); checkpoints before it: standard

    def __post_init__(self) -> None:
        if not self.rtg_scale > 0:
            raise ValueError(f"rtg_scale must be > 0, got {self.rtg_scale}")
        if self.rtg_mode not in RTG_MODES:
            raise ValueError(f"bad value '{self.rtg_mode}' for rtg_mode: allowed {', '.join(RTG_MODES)}")
        if self.rtg_norm not in RTG_NORMS:
            raise ValueError(f"bad value '{self.rtg_norm}' for rtg_norm: allowed {', '.join(RTG_NORMS)}")


#: The reward's weights (the RewardConfig fields that set r, as configs and pools name them).
REWARD_WEIGHTS = ("utilization", "l_delay_per_ms", "c_delay_per_ms", "loss")


def reward_weights(cfg: RewardConfig) -> dict[str, float]:
    """The weights of ``cfg`` by name (what a pool's ``reward`` column depends on)."""
    return {k: float(getattr(cfg, k)) for k in REWARD_WEIGHTS}


def epoch_reward(components: npt.NDArray[np.float64], cfg: RewardConfig) -> float:
    """The reward of one epoch from a request's reward components (missing ones count 0)."""
    def get(i: Reward) -> float:
        return float(components[i]) if len(components) > i else 0.0

    return (cfg.utilization * get(Reward.UTILIZATION)
            - cfg.l_delay_per_ms * 1e3 * get(Reward.L_DELAY)
            - cfg.c_delay_per_ms * 1e3 * get(Reward.C_DELAY)
            - cfg.loss * get(Reward.LOSS))


@dataclass
class ReturnToGo:
    """Running return-to-go of one run (reset at the start of each run)."""

    cfg: RewardConfig
    value: float = 0.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.value = self.cfg.target_return

    def update(self, components: npt.NDArray[np.float64]) -> float:
        """Subtract the reward carried by this request (sum mode; per_epoch holds the target);
        returns the new token value."""
        if self.cfg.rtg_mode == "sum":
            self.value -= epoch_reward(components, self.cfg)
        return self.token()

    def token(self) -> float:
        return float(rtg_token(self.value, self.cfg))


def rtg_token(values: npt.ArrayLike, cfg: RewardConfig) -> npt.NDArray[np.float64]:
    """RTG values as token values: (value - rtg_offset) / rtg_scale, clipped under ``robust``
    (the one rule, online and in training)."""
    tokens = (np.asarray(values, np.float64) - cfg.rtg_offset) / cfg.rtg_scale
    if cfg.rtg_norm == "robust":
        tokens = np.clip(tokens, -ROBUST_TOKEN_CLIP, ROBUST_TOKEN_CLIP)
    return tokens


def returns_to_go(components: npt.NDArray[np.float64], cfg: RewardConfig) -> npt.NDArray[np.float64]:
    """Token values of RTG_0..RTG_{n-1} for a logged run, ``components`` (n, reward_count):
    the same numbers :class:`ReturnToGo` gives online (for training)."""
    rewards = np.array([epoch_reward(row, cfg) for row in components], dtype=np.float64)
    return rtg_token(cfg.target_return - np.cumsum(rewards), cfg)
