"""The factor output (agent.factor): the epoch decision as factors on DualPI2's own p', its
level grid, its training targets, and a closed-loop run through the agent path."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

import aqm_llm
from aqm_llm.agent.factor import FACTOR, from_factors, to_factors
from aqm_llm.agent.interface import RunInfo
from aqm_llm.agent.layout import DEFAULT_LAYOUT, ModelInputs
from aqm_llm.agent.levels import FACTORS
from aqm_llm.agent.policy import PolicyAgent, PolicyConfig
from aqm_llm.agent.runtime import NetworkOutput
from aqm_llm.runner import AgentSpec

UNIT = int(np.flatnonzero(FACTORS.levels == 1.0)[0])


def test_factor_grid_spans_eighth_to_eight_and_round_trips() -> None:
    assert FACTORS.levels[0] == 0.0 and FACTORS.levels[1] == 0.125 and FACTORS.levels[-1] == 8.0
    np.testing.assert_allclose(FACTORS.levels[2:] / FACTORS.levels[1:-1], 2 ** 0.25)
    f = np.concatenate([np.logspace(np.log10(0.125), np.log10(8.0), 97), [1.0, 0.5, 3.0]])
    target = FACTORS.soft_targets(f)
    assert ((target > 0).sum(-1) <= 2).all()
    np.testing.assert_allclose(FACTORS.decode_logits(np.log(np.maximum(target, 1e-30))), f, rtol=1e-6)
    assert target[-3, UNIT] == 1.0  # 1 is a level of its own: "as DualPI2" is one-hot


def test_dualpi2s_own_decision_is_the_factor_one_and_back() -> None:
    p_prime = np.array([0.0, 1e-4, 0.02, 0.3, 0.6])
    p_l = np.minimum(2 * p_prime, 1.0)
    own = np.stack([p_l, np.zeros_like(p_prime), p_prime ** 2], axis=-1)
    f = to_factors(own, p_prime, p_l)
    np.testing.assert_allclose(f, 1.0)
    for pp in p_prime:
        assert from_factors(1.0, 1.0, pp) == pytest.approx((min(2 * pp, 1.0), 0.0, pp ** 2))
    # Another teacher's decision: twice DualPI2's classic signal is the factor sqrt(2) on p'.
    other = to_factors(np.array([0.04, 0.0008, 0.0]), 0.02, 0.04)
    np.testing.assert_allclose(other, [1.0, np.sqrt(2.0), 1.0])
    # No reference: 1 if the teacher is silent too, else the largest factor; NaN factors send nothing.
    np.testing.assert_allclose(to_factors(np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.01]]), 0.0, 0.0),
                               [[1.0, 1.0, 1.0], [8.0, 8.0, 1.0]])
    assert from_factors(float("nan"), -1.0, 0.1) == (0.0, 0.0, 0.0)


class _UnitFactorNetwork:
    """A network whose head always says "factor 1" and forwards its batch."""

    runtime = "test"

    def infer(self, inputs: ModelInputs) -> NetworkOutput:
        packets = np.tile(np.array([[5.0, -5.0, -5.0]], np.float32), (DEFAULT_LAYOUT.packets, 1))
        epoch = np.full((3, FACTORS.size), -20.0, np.float32)
        epoch[:, UNIT] = 20.0
        return NetworkOutput(packets, epoch)


class UnitFactorPolicy(PolicyAgent):
    """The policy's decision logic with the factor output around :class:`_UnitFactorNetwork`
    (loaded by the agent process in the closed-loop test)."""

    def __init__(self) -> None:
        super().__init__(PolicyConfig(epoch_output=FACTOR, lora=None), _UnitFactorNetwork(), trained=True)


def test_factor_one_through_the_policy_is_dualpi2s_probability() -> None:
    from aqm_llm.agent.stub import DualPi2ProbabilityAgent
    from aqm_llm.agent.synthetic import random_request

    policy, reference = UnitFactorPolicy(), DualPi2ProbabilityAgent()
    policy.reset(RunInfo())
    for seed in range(5):
        request = random_request(np.random.default_rng(seed))
        mine, theirs = policy.decide(request), reference.decide(request)
        assert (mine.p_l_mark, mine.p_c_drop, mine.p_c_mark) == pytest.approx(
            (theirs.p_l_mark, theirs.p_c_drop, theirs.p_c_mark))


CLOSED_LOOP = {"duration": "3s", "warmup": "1s", "bottleneck_rate": "50Mbps", "rtt": "20ms"}


@pytest.fixture(scope="module")
def native_dualpi2(tmp_path_factory) -> dict:
    """The queue disc's own DualPI2 (no agent) on :data:`CLOSED_LOOP`, seed 5."""
    from aqm_llm.native import scenario_binary

    out = tmp_path_factory.mktemp("native") / "native.json"
    subprocess.run([str(scenario_binary("dumbbell")), "--qdisc=l4s-llm", "--seed=5",
                    *(f"--{k}={v}" for k, v in CLOSED_LOOP.items()), f"--output={out}"],
                   check=True, capture_output=True)
    return json.loads(out.read_text())


@pytest.mark.parametrize("serving, reproduces", [
    ({"llm_batch": 0}, True),                  # no per-packet batch: every packet takes the epoch path
    ({"llm_agent_forward": "draw"}, True),     # a batch the head forwards takes the epoch draw
    ({}, False),                               # the batch matters: forwarded packets are not drawn
], ids=["no-batch", "forward-draw", "forward"])
def test_factor_one_reproduces_dualpi2_draw_for_draw_in_closed_loop(
        tmp_path, monkeypatch, native_dualpi2: dict, serving: dict[str, str | int], reproduces: bool) -> None:
    """The factor-1 policy whose head forwards every packet must give the queue disc's own DualPI2
    drops and marks exactly wherever its forwards defer to the epoch draw."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    via_policy = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=5, params={**CLOSED_LOOP, **serving},
                             output_dir=tmp_path / "policy",
                             agent=AgentSpec(agent="test_factor:UnitFactorPolicy", threads=1))
    assert via_policy["fallbacks"] == 0
    native = native_dualpi2
    counts = [(via_policy["classes"][cls][kind], native["classes"][cls][kind])
              for cls in ("l4s", "classic") for kind in ("drops", "marks")]
    assert all(mine == theirs for mine, theirs in counts) == reproduces, counts
    assert native["classes"]["l4s"]["marks"] > 50 and native["classes"]["classic"]["drops"] > 0


def test_the_factor_output_refuses_a_band_and_other_teachers_in_one_line(tmp_path) -> None:
    from aqm_llm import ConfigError
    from aqm_llm.agent.policy import LlmPolicy
    from aqm_llm.training.config import parse_train_config

    ckpt = tmp_path / "factor"
    LlmPolicy(PolicyConfig(backbone="random:llama", epoch_output=FACTOR)).save(ckpt, trained=True)
    spec = AgentSpec(checkpoint=str(ckpt), backbone="random:llama", p_prime_band="ramp:2")
    with pytest.raises(ConfigError, match="the checkpoint has the factor output"):
        spec.check()
    AgentSpec(checkpoint=str(ckpt), backbone="random:llama", p_prime_band="off").check()  # allowed
    with pytest.raises(ConfigError, match="epoch_output: factor trains only with distill_teacher: dualpi2"):
        parse_train_config({"pool": "p", "epoch_output": "factor"})
    with pytest.raises(ConfigError, match="epoch_output: bad value 'logit'"):
        parse_train_config({"pool": "p", "epoch_output": "logit"})
    cfg = parse_train_config({"pool": "p", "epoch_output": "factor", "distill_teacher": "dualpi2"})
    assert cfg.identity()["epoch_output"] == FACTOR
    assert "epoch_output" not in parse_train_config({"pool": "p"}).identity()  # older identities stay
