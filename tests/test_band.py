"""The p' band (agent.band): a learned policy's epoch probabilities held around DualPI2's own."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aqm_llm.agent.band import COUPLED_FORM, INDEPENDENT, RAMP_FORM, within_band
from aqm_llm.channel import Scalar


@pytest.mark.parametrize("p_prime", [0.0, 1e-4, 0.003, 0.05, 0.3, 0.9])
@pytest.mark.parametrize("band", [1.0, 2.0, 4.0])
def test_probabilities_stay_within_the_band(p_prime: float, band: float) -> None:
    rng = np.random.default_rng(int(p_prime * 1e4) + int(band))
    for _ in range(200):
        probs = tuple(float(x) for x in rng.uniform(0, 1, 3) ** rng.uniform(1, 8))
        p_l, p_c_drop, p_c_mark = within_band(probs, p_prime, band)
        assert min(2 * p_prime / band, 1) - 1e-12 <= p_l <= min(2 * p_prime * band, 1) + 1e-12
        signal = p_c_drop + p_c_mark
        assert min((p_prime / band) ** 2, 1) * (1 - 1e-9) <= signal <= min((p_prime * band) ** 2, 1) * (1 + 1e-9)
        if probs[1] + probs[2] > 0 and signal > 0:  # the policy's drop/mark split is kept
            assert p_c_drop * (probs[1] + probs[2]) == pytest.approx(probs[1] * signal)
    # band 1: exactly DualPI2's probabilities, whatever the policy said
    assert within_band((0.7, 0.2, 0.1), 0.1, 1.0) == pytest.approx((0.2, 0.01 * 2 / 3, 0.01 / 3))
    # inside the band: unchanged
    assert within_band((0.21, 0.004, 0.006), 0.1, 2.0) == (0.21, 0.004, 0.006)
    with pytest.raises(ValueError):
        within_band((0, 0, 0), 0.1, 0.5)
    with pytest.raises(ValueError, match="band form must be one of"):
        within_band((0, 0, 0), 0.1, 2.0, form="sideways")
    with pytest.raises(ValueError, match="needs p_l_reference"):
        within_band((0, 0, 0), 0.1, 2.0, form=RAMP_FORM)


@pytest.mark.parametrize("p_prime", [0.0, 1e-4, 0.003, 0.05, 0.3, 0.9])
def test_a_coupled_band_uses_one_factor_for_both_classes(p_prime: float) -> None:
    rng = np.random.default_rng(int(p_prime * 1e4) + 7)
    for _ in range(200):
        probs = tuple(float(x) for x in rng.uniform(0, 1, 3) ** rng.uniform(1, 8))
        p_l, p_c_drop, p_c_mark = within_band(probs, p_prime, 2.0, form=COUPLED_FORM)
        signal = p_c_drop + p_c_mark
        if p_prime == 0.0:
            assert p_l == 0.0 and signal == 0.0  # DualPI2 at rest: nothing to shape
            continue
        f = math.sqrt(signal) / p_prime
        assert 0.5 - 1e-9 <= f <= 2.0 + 1e-9
        assert p_l == pytest.approx(min(2 * p_prime * f, 1.0))  # the same factor as the classic signal
    # the factor is the geometric mean of the two the network implies, each clamped first
    p_l, drop, mark = within_band((0.2 * 1.5, 0.0, (0.1 * 1.2) ** 2), 0.1, 2.0, form=COUPLED_FORM)
    assert p_l == pytest.approx(0.2 * math.sqrt(1.5 * 1.2)) and drop == 0.0
    assert mark == pytest.approx((0.1 * math.sqrt(1.5 * 1.2)) ** 2)
    p_l, _, mark = within_band((1.0, 0.0, 0.0), 0.1, 2.0, form=COUPLED_FORM)  # 5x and 0x: clamped to 2 and 1/2
    assert p_l == pytest.approx(0.2) and mark == pytest.approx(0.01)


@pytest.mark.parametrize("p_prime", [0.0, 1e-4, 0.05, 0.6])
@pytest.mark.parametrize("ramp", [0.0, 0.3, 1.0])
def test_a_band_on_the_ramp_holds_p_l_around_dualpi2s_epoch_p_l(p_prime: float, ramp: float) -> None:
    # DualPI2's epoch p_L as the queue disc reports it: max(native ramp at the L head, k p'), capped.
    reference = min(max(ramp, 2 * p_prime), 1.0)
    rng = np.random.default_rng(int(p_prime * 1e4) + int(ramp * 10))
    for _ in range(200):
        probs = tuple(float(x) for x in rng.uniform(0, 1, 3) ** rng.uniform(1, 8))
        p_l, p_c_drop, p_c_mark = within_band(probs, p_prime, 2.0, form=RAMP_FORM, p_l_reference=reference)
        assert min(reference / 2, 1) - 1e-12 <= p_l <= min(reference * 2, 1) + 1e-12
        # the classic signal keeps the plain band on p'^2
        assert (p_c_drop, p_c_mark) == pytest.approx(within_band(probs, p_prime, 2.0)[1:])
    # the head above the ramp while p' is small: the plain band would cap p_L at 2 k p'
    assert within_band((0.9, 0.0, 0.0), 0.01, 2.0)[0] == pytest.approx(0.04)
    assert within_band((0.9, 0.0, 0.0), 0.01, 2.0, form=RAMP_FORM, p_l_reference=1.0)[0] == pytest.approx(0.9)
    assert within_band((0.0, 0.0, 0.0), 0.01, 2.0, form=RAMP_FORM, p_l_reference=1.0)[0] == pytest.approx(0.5)


def test_a_policy_with_band_one_replies_dualpi2s_probabilities() -> None:
    from aqm_llm.agent.interface import RunInfo
    from aqm_llm.agent.policy import LlmPolicy, PolicyConfig
    from aqm_llm.agent.synthetic import random_request

    free = LlmPolicy(PolicyConfig(backbone="random:llama", layers=None, p_prime_band=None))
    banded = LlmPolicy(PolicyConfig(backbone="random:llama", layers=None, p_prime_band=1.0))
    rng = np.random.default_rng(5)
    differed = False
    for policy in (free, banded):
        policy.reset(RunInfo(seed=1))
    for epoch in range(8):
        request = random_request(rng, packets=6, epoch=epoch)
        p = float(request.scalars[Scalar.P_PRIME])
        d_free, d_band = free.decide(request), banded.decide(request)
        assert d_band.p_l_mark == pytest.approx(min(2 * p, 1.0))
        assert d_band.p_c_drop + d_band.p_c_mark == pytest.approx(min(p * p, 1.0))
        differed |= abs(d_free.p_l_mark - d_band.p_l_mark) > 1e-6
    assert differed  # the band did something: the free network's probabilities are not DualPI2's
    assert banded.config.to_dict()["p_prime_band"] == 1.0
    assert PolicyConfig.from_dict(banded.config.to_dict()).p_prime_band == 1.0
    for form in (INDEPENDENT, COUPLED_FORM, RAMP_FORM):  # the form round-trips through a checkpoint
        config = PolicyConfig(backbone="random:llama", layers=None, p_prime_band=2.0, p_prime_form=form)
        assert PolicyConfig.from_dict(config.to_dict()).p_prime_form == form
    # checkpoints from before the form field carried two flags; they read as the same forms
    old = {k: v for k, v in banded.config.to_dict().items() if k != "p_prime_form"}
    assert PolicyConfig.from_dict(old).p_prime_form == INDEPENDENT
    assert PolicyConfig.from_dict({**old, "p_prime_coupled": True, "p_l_on_ramp": False}).p_prime_form == COUPLED_FORM
    assert PolicyConfig.from_dict({**old, "p_prime_coupled": None, "p_l_on_ramp": True}).p_prime_form == RAMP_FORM
    with pytest.raises(ValueError, match="p_prime_form must be one of"):
        PolicyConfig.from_dict({**old, "p_prime_form": "sideways"})
    on_ramp = PolicyConfig(backbone="random:llama", layers=None, p_prime_band=1.0, p_prime_form=RAMP_FORM)
    ramp_policy = LlmPolicy(on_ramp)
    ramp_policy.reset(RunInfo(seed=1))
    for epoch in range(4):  # band 1 on the ramp: exactly the p_L the queue disc reported
        request = random_request(rng, packets=6, epoch=epoch)
        assert ramp_policy.decide(request).p_l_mark == pytest.approx(min(float(request.scalars[Scalar.P_L]), 1.0))


def test_a_band_override_reaches_the_agent_and_the_run_identity() -> None:
    from aqm_llm.agent.band import parse_band
    from aqm_llm.errors import ConfigError
    from aqm_llm.runner import AgentSpec, RunSpec
    from aqm_llm.sweep.runs import SweepRun

    from aqm_llm.agent.band import band_form

    assert parse_band("off") is None and parse_band("2") == 2.0 and band_form("2") == INDEPENDENT
    assert parse_band("coupled:2") == 2.0 and band_form("coupled:2") == COUPLED_FORM
    assert parse_band("ramp:3") == 3.0 and band_form(" Ramp:3") == RAMP_FORM
    for bad in ("0.5", "nan", "x", "coupled:0.5", "coupled:", "ramp:0.5", "ramp:"):
        with pytest.raises(ValueError, match="bad p' band"):
            parse_band(bad)
    spec = RunSpec("dumbbell", "l4s-llm", 1, {})
    keys = set()
    for band in (None, "off", "2", "coupled:2", "ramp:2"):
        agent = AgentSpec(p_prime_band=band)
        cmd = agent.command(None)
        assert ("--p-prime-band" in cmd) == (band is not None)
        keys.add(SweepRun(spec, agent=agent).key())
    assert len(keys) == 5  # five different policies in effect, five rows
    with pytest.raises(ConfigError, match="bad p' band '0.5'"):
        AgentSpec(p_prime_band="0.5").check()
