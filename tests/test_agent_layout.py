"""The agent's token layout, feature normalisation, reward/RTG and the torch-free interface
(stub agents, load_agent)."""

from __future__ import annotations

import numpy as np
import pytest

from aqm_llm import channel as C
from aqm_llm.agent import features as F
from aqm_llm.agent.interface import Decision, RunInfo, load_agent
from aqm_llm.agent.layout import (DEFAULT_LAYOUT, WIDE_LAYOUT, EpochRecord, History, TokenLayout,
                                  TokenType, build_inputs_from_request, stack_inputs)
from aqm_llm.agent.reward import ReturnToGo, RewardConfig, epoch_reward, returns_to_go
from aqm_llm.agent.stub import ForwardAllAgent, SojournThresholdAgent
from aqm_llm.agent.synthetic import as_request, fill_random_request, random_request


def record(hist: int = 0) -> EpochRecord:
    return EpochRecord(rtg=float(hist), state=np.full(F.STATE_SUMMARY_DIM, hist, np.float32),
                       action=np.full(F.ACTION_SUMMARY_DIM, hist, np.float32))


# ------------------------------------------------------------------------ layout


def test_wide_layout_fits_64_tokens() -> None:
    lay = WIDE_LAYOUT
    assert (lay.packets, lay.history, len(lay.scalar_groups), lay.series) == (16, 12, 2, 8)
    assert lay.current_tokens == 1 + 2 + 8 + 16 + 1 == 28
    assert lay.total == 12 * 3 + 28 == 64 <= 64
    assert TokenLayout.fit(packets=8).history == (64 - 20) // 3 == 14
    assert TokenLayout.fit(max_tokens=28).history == 0
    with pytest.raises(ValueError, match="needs 67 tokens"):
        TokenLayout(history=13)
    with pytest.raises(ValueError, match="current epoch alone"):
        TokenLayout.fit(packets=32, max_tokens=40)


def test_index_helpers_match_the_token_types() -> None:
    lay = WIDE_LAYOUT
    types = lay.token_types()
    assert types.shape == (64,)
    for j in range(lay.history):
        r, s, a = lay.history_slots(j)
        assert (types[r], types[s], types[a]) == (TokenType.HIST_RTG, TokenType.HIST_STATE,
                                                  TokenType.HIST_ACTION)
    assert lay.rtg_index == 36 and types[36] == TokenType.RTG
    assert lay.scalar_slice == slice(37, 39) and (types[37:39] == TokenType.SCALAR).all()
    assert lay.series_slice == slice(39, 47) and (types[39:47] == TokenType.SERIES).all()
    assert lay.packet_slice == slice(47, 63) and (types[lay.packet_indices] == TokenType.PACKET).all()
    assert lay.epoch_index == 63 and types[63] == TokenType.EPOCH
    assert TokenLayout.from_dict(lay.to_dict()) == lay
    with pytest.raises(IndexError):
        lay.history_slots(12)


def test_build_inputs_masks_absent_history_and_packets() -> None:
    lay = WIDE_LAYOUT
    rng = np.random.default_rng(0)
    history = History(lay.history)
    for i in range(3):
        history.append(record(i + 1))
    inputs, feats = build_inputs_from_request(random_request(rng, packets=5), history, 0.5, lay)
    assert inputs.mask.sum() == lay.present_tokens(5, 3) == 28 - 11 + 9
    # The three records sit in the newest history slots, oldest first.
    assert not inputs.mask[:27].any() and inputs.mask[27:36].all()
    assert inputs.hist_rtg[9:, 0].tolist() == [1.0, 2.0, 3.0] and not inputs.hist_rtg[:9].any()
    assert inputs.mask[lay.packet_indices].tolist() == [True] * 5 + [False] * 11
    assert inputs.mask[lay.rtg_index] and inputs.mask[lay.epoch_index]
    assert np.array_equal(inputs.packets[:5], feats.packets) and not inputs.packets[5:].any()
    assert inputs.rtg.tolist() == [0.5]
    # More packets than K: the first K get tokens.
    inputs, _ = build_inputs_from_request(random_request(rng, packets=32), history, 0.0, lay)
    assert inputs.mask[lay.packet_indices].all() and inputs.packets.shape == (16, F.PACKET_FEATURES)
    batch = stack_inputs([inputs, inputs])
    assert batch.mask.shape == (2, 64) and batch.series.shape == (2, 8, 2, C.WINDOW)


def test_dense_default_layout_groups_packets_series_and_past_epochs() -> None:
    lay = DEFAULT_LAYOUT
    assert (lay.packets, lay.packets_per_token, lay.packet_tokens) == (16, 4, 4)
    assert (lay.series, lay.series_per_token, lay.series_tokens) == (8, 2, 4)
    assert lay.tokens_per_past_epoch == 1 and lay.history == 12
    assert lay.current_tokens == 1 + 2 + 4 + 4 + 1 == 12 and lay.total == 24 == lay.max_tokens
    types = lay.token_types()
    assert (types[:12] == TokenType.HIST_STATE).all() and types[12] == TokenType.RTG
    assert lay.series_slice == slice(15, 19) and lay.packet_slice == slice(19, 23)
    assert lay.epoch_index == 23 and lay.history_slice(11) == slice(11, 12)
    with pytest.raises(ValueError, match="one token per past epoch"):
        lay.history_slots(0)
    assert TokenLayout.from_dict(lay.to_dict()) == lay
    # A layout saved before the grouping fields existed reads as the wide layout it was.
    old = {k: v for k, v in WIDE_LAYOUT.to_dict().items()
           if k not in ("packets_per_token", "series_per_token", "tokens_per_past_epoch")}
    assert TokenLayout.from_dict(old) == WIDE_LAYOUT
    with pytest.raises(ValueError, match="tokens_per_past_epoch = 2"):
        TokenLayout.fit(tokens_per_past_epoch=2)
    with pytest.raises(ValueError, match="packets_per_token = 17"):
        TokenLayout.fit(packets_per_token=17)
    # 9 packets at 4 a token: 3 tokens, the last one padded.
    assert TokenLayout.fit(packets=9, packets_per_token=4, max_tokens=40).packet_tokens == 3


@pytest.mark.parametrize("packets, past, packet_tokens_present", [(0, 0, 0), (1, 3, 1), (4, 12, 1),
                                                                   (5, 20, 2), (16, 12, 4), (32, 5, 4)])
def test_dense_presence_mask(packets: int, past: int, packet_tokens_present: int) -> None:
    lay = DEFAULT_LAYOUT
    history = History(lay.history)
    for i in range(past):
        history.append(record(i + 1))
    inputs, _ = build_inputs_from_request(random_request(np.random.default_rng(packets), packets=packets),
                                          history, 0.0, lay)
    filled = min(past, lay.history)
    assert inputs.mask[:lay.history].tolist() == [False] * (12 - filled) + [True] * filled
    assert inputs.mask[lay.packet_indices].sum() == packet_tokens_present
    assert inputs.mask.sum() == lay.present_tokens(packets, past) == 8 + filled + packet_tokens_present
    # Batches (training) use the same rule.
    assert np.array_equal(lay.presence_mask([packets], [past])[0], inputs.mask)


def test_history_keeps_the_newest() -> None:
    h = History(2)
    for i in range(5):
        h.append(record(i))
    assert [r.rtg for r in h] == [3.0, 4.0]
    h0 = History(0)
    h0.append(record())
    assert len(h0) == 0


# ------------------------------------------------------------------------ features


def known_request() -> C.Request:
    rec = np.zeros((), C.REQUEST_DTYPE)
    rec["series_count"], rec["window_len"], rec["scalar_count"] = 8, 4, 4
    rec["series"][C.Series.L_SOJOURN, :4] = [0.001, 0.002, 0.003, 0.01]  # s
    rec["series"][C.Series.QUEUE_BYTES, :4] = 1500.0 * (np.e - 1)
    rec["series"][C.Series.ARRIVAL_RATE, :4] = 50e6
    rec["series"][C.Series.MARKS, :4] = np.e - 1
    rec["scalars"][:4] = [0.015, 0.1, 0.2, 0.01]
    rec["packet_count"] = 3
    pk = rec["packets"]
    pk["sojourn_s"][:3] = [0.0005, 0.02, 0.001]
    pk["size_bytes"][:3] = [1500, 750, 64]
    pk["flow_hash"][:3] = [7, 9, 7]
    pk["traffic_class"][:3] = [0, 1, 0]
    pk["ecn"][:3] = [1, 0, 3]
    rec["reward_count"] = 4
    rec["rewards"][:4] = [0.9, 0.001, 0.01, 0.02]
    return as_request(rec)


def test_feature_scales() -> None:
    f = F.encode_request(known_request())
    # Series: right-aligned (window 4 of 16), sojourn in ms / 10, log1p queue packets, Mb/s / 100.
    assert f.series.shape == (8, 2, 16)
    assert f.series[C.Series.L_SOJOURN, 1].tolist() == [0.0] * 12 + [1.0] * 4
    np.testing.assert_allclose(f.series[C.Series.L_SOJOURN, 0, 12:], [0.1, 0.2, 0.3, 1.0], rtol=1e-6)
    np.testing.assert_allclose(f.series[C.Series.QUEUE_BYTES, 0, 12:], 1.0, rtol=1e-6)
    np.testing.assert_allclose(f.series[C.Series.ARRIVAL_RATE, 0, 12:], 0.5, rtol=1e-6)
    np.testing.assert_allclose(f.series[C.Series.MARKS, 0, 12:], 1.0, rtol=1e-6)
    # Probabilities on a log scale (features v2): (log10 p + 7) / 7.
    np.testing.assert_allclose(f.scalars[:, 0], [1.5, 6 / 7, (np.log10(0.2) + 7) / 7, 5 / 7], rtol=1e-6)
    assert f.scalars[:, 1].tolist() == [1.0] * 4
    p = f.packets
    np.testing.assert_allclose(p[:, 0], [0.05, 2.0, 0.1], rtol=1e-6)  # sojourn ms / 10
    np.testing.assert_allclose(p[:, 1], [1.0, 0.5, 64 / 1500], rtol=1e-6)  # size / 1500
    assert p[:, 2].tolist() == [1.0, 0.0, 1.0]  # is L
    assert p[:, 3:7].tolist() == [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]  # ECN one-hot
    np.testing.assert_allclose(p[:, 7], [2 / 3, 1 / 3, 2 / 3])  # flow share
    np.testing.assert_allclose(p[:, 8], [0, 1 / 32, 0])  # flow rank by first appearance
    assert p[:, 9].tolist() == [1.0] * 3
    s = F.state_summary(f)
    assert s.shape == (F.STATE_SUMMARY_DIM,) and np.isfinite(s).all()
    np.testing.assert_allclose(s[C.Series.L_SOJOURN], 0.4, rtol=1e-6)  # mean of present points
    np.testing.assert_allclose(s[8 + C.Series.L_SOJOURN], 1.0, rtol=1e-6)  # newest point
    a = F.action_summary(np.array([2, 1, 0], np.uint8), f.traffic_class, (0.1, 0.2, 0.3))
    logp = [(np.log10(x) + 7) / 7 for x in (0.1, 0.2, 0.3)]  # log scale, as the scalars
    np.testing.assert_allclose(a, [0.5, 0, 0.5, 0, 1, 0, *logp], rtol=1e-6)


def test_huge_values_are_clipped_and_short_inputs_padded() -> None:
    rec = np.zeros((), C.REQUEST_DTYPE)
    rec["series_count"], rec["window_len"] = 2, 1
    rec["series"][0, 0] = 1e6  # a million seconds
    rec["packet_count"] = 1
    rec["packets"]["size_bytes"][0] = 1 << 24
    f = F.encode_request(as_request(rec))
    assert f.series.max() == F.CLIP and f.packets.max() == F.CLIP
    assert f.series[2:, 1].sum() == 0 and f.scalars[:, 1].sum() == 0  # absent: mask 0
    empty = F.encode_request(as_request(np.zeros((), C.REQUEST_DTYPE)))
    assert empty.packet_count == 0 and np.isfinite(F.state_summary(empty)).all()


@pytest.mark.parametrize("field, index, value, match", [
    ("series", (1, 0), np.nan, r"series\[1, 0\] is nan"),
    ("scalars", (2,), np.inf, r"scalars\[2\] is inf"),
    ("rewards", (0,), -np.inf, r"rewards\[0\] is -inf"),
    ("series", (0, 3), -1.0, "negative"),
])
def test_non_finite_and_negative_values_are_rejected(field: str, index: tuple[int, ...],
                                                     value: float, match: str) -> None:
    rec = np.zeros((), C.REQUEST_DTYPE)
    fill_random_request(rec, np.random.default_rng(1), packets=4)
    rec[field][index] = value
    with pytest.raises(F.InvalidRequest, match=match):
        F.encode_request(as_request(rec))


def test_bad_packets_are_rejected() -> None:
    for name, value, match in (("sojourn_s", np.nan, "sojourn_s"), ("ecn", 4, "ecn"),
                               ("traffic_class", 2, "traffic_class"), ("size_bytes", -1, "size")):
        rec = np.zeros((), C.REQUEST_DTYPE)
        fill_random_request(rec, np.random.default_rng(1), packets=4)
        rec["packets"][name][2] = value
        with pytest.raises(F.InvalidRequest, match=match):
            F.encode_request(as_request(rec))


# ------------------------------------------------------------------------ reward


def test_reward_and_return_to_go() -> None:
    cfg = RewardConfig(target_return=10.0, rtg_scale=5.0)
    comps = np.array([0.9, 0.001, 0.015, 0.01])  # util, L 1 ms, C 15 ms, 1 % loss
    r = epoch_reward(comps, cfg)
    assert r == pytest.approx(0.9 - 0.1 - 0.3 - 0.1)
    assert epoch_reward(np.array([1.0]), cfg) == 1.0  # missing components count 0
    higher_delay = epoch_reward(np.array([0.9, 0.005, 0.015, 0.01]), cfg)
    assert higher_delay < r  # delay is penalised, never rewarded
    rtg = ReturnToGo(cfg)
    assert rtg.token() == 2.0
    online = [rtg.update(comps) for _ in range(3)]
    np.testing.assert_allclose(online, returns_to_go(np.tile(comps, (3, 1)), cfg))
    np.testing.assert_allclose(online, [(10 - r) / 5, (10 - 2 * r) / 5, (10 - 3 * r) / 5])
    rtg.reset()
    assert rtg.value == 10.0


# ------------------------------------------------------------------------ interface and stubs


def test_sojourn_threshold_agent() -> None:
    req = known_request()  # L 0.5 ms ECT(1), C 20 ms Not-ECT, L 1 ms CE
    d = SojournThresholdAgent(threshold_ms=0.8).decide(req)
    assert d.actions.tolist() == [0, 0, 2] and d.problem(req) is None
    assert (d.p_l_mark, d.p_c_drop, d.p_c_mark) == (0.0, 0.0, 0.0)
    rec = req.raw.copy()
    rec["packets"]["ecn"][0] = 0  # an L packet that is Not-ECT: the mark becomes a drop
    assert SojournThresholdAgent(threshold_ms=0.1).decide(as_request(rec)).actions.tolist() == [1, 0, 2]


def test_decision_problems() -> None:
    req = known_request()
    assert Decision(np.zeros(3, np.uint8)).problem(req) is None
    assert "2 actions for 3 packets" in Decision(np.zeros(2, np.uint8)).problem(req)
    assert "0..2" in Decision(np.array([0, 3, 0], np.uint8)).problem(req)
    assert "p_c_drop" in Decision(np.zeros(3, np.uint8), p_c_drop=float("nan")).problem(req)
    assert "1-d integer" in Decision(np.zeros(3)).problem(req)  # type: ignore[arg-type]


def test_load_agent() -> None:
    agent = load_agent("aqm_llm.agent.stub:SojournThresholdAgent", threshold_ms="2")
    assert isinstance(agent, SojournThresholdAgent) and agent.threshold_s == 0.002
    agent.reset(RunInfo(seed=3))
    assert isinstance(load_agent("aqm_llm.agent.stub:ForwardAllAgent"), ForwardAllAgent)
    for spec, match in (("nocolon", "module:Class"), ("no.such.module:X", "cannot import"),
                        ("aqm_llm.agent.stub:Nope", "no attribute Nope"),
                        ("builtins:dict", "lacks reset, decide, close")):
        with pytest.raises(ValueError, match=match):
            load_agent(spec)
