"""Drop and mark probabilities on a log scale (agent.levels): the head's epoch representation and
the model's probability inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aqm_llm.agent import levels as L
from aqm_llm.agent.head import L4sLmHead
from aqm_llm.agent.layout import DEFAULT_LAYOUT


def test_levels_span_zero_and_six_decades() -> None:
    assert L.LEVELS[0] == 0.0 and L.LEVELS[1] == pytest.approx(1e-6) and L.LEVELS[-1] == 1.0
    assert L.N_LEVELS == 26 and np.all(np.diff(L.LEVELS) > 0)
    ratios = L.LEVELS[2:] / L.LEVELS[1:-1]
    np.testing.assert_allclose(ratios, 10 ** 0.25)  # 4 levels per decade


def test_probability_round_trips_through_target_and_prediction() -> None:
    p = np.concatenate([np.logspace(-6, 0, 301), [1e-5, 1e-4, 1e-3, 2.5e-4, 0.5]])
    target = L.soft_targets(p)  # probability -> target
    assert target.shape == (p.size, L.N_LEVELS)
    np.testing.assert_allclose(target.sum(-1), 1.0, rtol=1e-6)
    assert ((target > 0).sum(-1) <= 2).all()  # two-hot
    # A head that predicts the target exactly (its logits are the target's log) decodes back.
    logits = np.log(np.maximum(target, 1e-30))
    back = L.decode_logits(logits)
    np.testing.assert_allclose(np.log10(back), np.log10(p), atol=1e-3)
    # Probabilities that set TCP's rate stay distinct: a factor of 10 costs the same anywhere.
    assert not np.allclose(L.soft_targets(1e-5), L.soft_targets(1e-4))
    cost = [float(-(L.soft_targets(10 * q) * np.log(np.maximum(L.soft_targets(q), 1e-9))).sum())
            for q in (1e-5, 1e-4, 1e-3)]
    assert max(cost) - min(cost) < 1e-6


def test_zero_is_exact_and_bad_values_are_safe() -> None:
    np.testing.assert_array_equal(L.soft_targets(0.0), np.eye(L.N_LEVELS)[0])
    assert L.decode(L.soft_targets(0.0)) == 0.0
    assert L.decode(L.soft_targets(1.0)) == 1.0
    out = L.decode_logits(np.array([[np.nan] * L.N_LEVELS, [np.inf] + [0.0] * 25]))
    assert np.all((out >= 0) & (out <= 1))
    assert L.soft_targets([np.nan, -1.0, 2.0]).sum() == pytest.approx(3.0)


def test_log_feature_spreads_the_decades() -> None:
    f = L.log_feature([0.0, 1e-7, 1e-5, 1e-4, 1e-3, 1.0])
    np.testing.assert_allclose(f, [0.0, 0.0, 2 / 7, 3 / 7, 4 / 7, 1.0])


def test_an_untrained_head_asks_for_no_epoch_drops() -> None:
    head = L4sLmHead(DEFAULT_LAYOUT, 32)
    out = head(torch.zeros(2, DEFAULT_LAYOUT.total, 32))
    assert out.epoch_logits.shape == (2, 3, L.N_LEVELS)
    assert torch.equal(out.epoch_probs, torch.zeros(2, 3, dtype=torch.float64))
