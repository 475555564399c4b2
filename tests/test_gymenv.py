"""The closed loop as a Gymnasium environment: one ns-3 run per episode, one epoch per step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from aqm_llm.errors import ConfigError
from aqm_llm.gymenv import EnvConfig, L4sLlmEnv

SHORT = {"duration": "2s", "warmup": "0.5s"}


def _episode(env: L4sLlmEnv, seed: int, p_c_drop: float) -> tuple[list[float], dict]:
    env.reset(seed=seed)
    rewards = []
    while True:
        action = {"probabilities": np.array([0.0, p_c_drop, 0.0]), "packets": np.zeros(16, np.int64)}
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs) and not truncated
        if terminated:
            return rewards, info["metrics"]
        rewards.append(reward)


def test_an_episode_is_one_run_and_repeats_for_a_seed():
    env = L4sLlmEnv(EnvConfig(params=SHORT))
    try:
        obs, info = env.reset(seed=3)
        assert env.observation_space.contains(obs) and info["epoch"] == 0
        a, metrics_a = _episode(env, 3, 0.0)
        b, metrics_b = _episode(env, 3, 0.0)
    finally:
        env.close()
    # 124 epochs in 2 s of 16 ms ones: the first returned by reset, the step after the last ends
    assert len(a) == 123
    assert a == b and metrics_a["classes"] == metrics_b["classes"]
    assert metrics_a["fallbacks"] == 0 and metrics_a["llm"]["agent_epochs"] == 124


def test_the_action_is_what_the_queue_disc_applies():
    env = L4sLlmEnv(EnvConfig(params=SHORT))
    try:
        _, quiet = _episode(env, 4, 0.0)
        _, dropping = _episode(env, 4, 0.05)
    finally:
        env.close()
    assert "Agent epoch drop" not in quiet["classes"]["classic"]["drop_reasons"]
    assert dropping["classes"]["classic"]["drop_reasons"]["Agent epoch drop"] > 10


def test_gymnasium_checker_and_registration():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("aqm-llm/L4sLlm-v0", config=EnvConfig(params={"duration": "1s", "warmup": "0.2s"}))
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_bad_configs_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="packets"):
        EnvConfig(packets=99)
    with pytest.raises(ConfigError, match="llm_batch"):
        EnvConfig(params={"llm_batch": 4})
