"""Encoder, backbone (tiny random GPT-2 / Llama / OPT), head and LlmPolicy: shapes, the
valid-action guarantee, determinism, checkpoints, LoRA placement."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see agent.server

from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aqm_llm import channel as C
from aqm_llm.agent import features as F
from aqm_llm.agent.backbone import LoraSpec, MlpBackbone, load_backbone, random_backbone
from aqm_llm.agent.encoder import TensorInputs
from aqm_llm.agent.head import overflow_actions, select_packet_actions
from aqm_llm.agent.levels import N_LEVELS
from aqm_llm.agent.interface import RunInfo
from aqm_llm.agent.layout import (DEFAULT_LAYOUT, WIDE_LAYOUT, EpochRecord, History, TokenLayout,
                                  build_inputs_from_request, stack_inputs)
from aqm_llm.agent.model import AqmModel
from aqm_llm.agent.policy import LlmPolicy, MlpPolicy, PolicyConfig
from aqm_llm.agent.synthetic import random_request

TINY = PolicyConfig(backbone="random:llama")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny models: one thread is fastest and immune to a busy neighbour on 2 cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def policy() -> LlmPolicy:
    return LlmPolicy(TINY)


def perturb(policy: LlmPolicy, seed: int = 7) -> None:
    """Move every trainable weight away from its initial value (LoRA B starts at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in policy.model.trainable_parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


# ------------------------------------------------------------------------ shapes


EPOCH_FIRST_LAYOUT = replace(DEFAULT_LAYOUT, epoch_sees_packets=False)


@pytest.mark.parametrize("arch, layout", [("llama", WIDE_LAYOUT), ("gpt2", WIDE_LAYOUT),
                                          ("opt", WIDE_LAYOUT), ("llama", DEFAULT_LAYOUT),
                                          ("llama", EPOCH_FIRST_LAYOUT)])
def test_encoder_and_head_shapes(arch: str, layout: TokenLayout) -> None:
    backbone = random_backbone(arch, hidden_size=32, lora=LoraSpec())
    model = AqmModel(layout, backbone).eval()
    rng = np.random.default_rng(0)
    history = History(layout.history)
    for i in range(5):  # some history slots filled, the oldest absent
        history.append(EpochRecord(rtg=0.1 * i, state=np.full(F.STATE_SUMMARY_DIM, i, np.float32),
                                   action=np.full(F.ACTION_SUMMARY_DIM, i, np.float32)))
    items = [build_inputs_from_request(random_request(rng, packets=n), history, 0.3,
                                       layout)[0] for n in (0, 7, 32)]
    x = TensorInputs.from_numpy(stack_inputs(items))
    with torch.inference_mode():
        tokens = model.encoder(x)
        out = model(x)
    assert tokens.shape == (3, layout.total, 32) and torch.isfinite(tokens).all()
    assert out.packet_logits.shape == (3, 16, 3) and out.epoch_logits.shape == (3, 3, N_LEVELS)
    assert ((out.epoch_probs >= 0) & (out.epoch_probs <= 1)).all()
    # One epoch without the absent tokens gives what the masked batch gives.
    for i, item in enumerate(items):
        with torch.inference_mode():
            alone = model(TensorInputs.from_numpy(item), compact=True)
        n = min(int(item.mask[layout.packet_indices].sum()) * layout.packets_per_token,
                [0, 7, 32][i], layout.packets)
        torch.testing.assert_close(alone.packet_logits[0, :n], out.packet_logits[i, :n],
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(alone.epoch_logits[0], out.epoch_logits[i], rtol=1e-4, atol=1e-5)


def test_epoch_first_layout_decides_the_epoch_from_the_state_alone() -> None:
    """With the epoch token before the packet tokens, the epoch logits are the same whatever the
    head-of-queue packets (none, some, others), while the packet logits still follow them."""
    layout = EPOCH_FIRST_LAYOUT
    assert layout.epoch_index == layout.packet_slice.start - 1 < layout.total - 1
    backbone = random_backbone("llama", hidden_size=32, lora=LoraSpec())
    model = AqmModel(layout, backbone).eval()
    base = build_inputs_from_request(random_request(np.random.default_rng(0), packets=9),
                                     History(layout.history), 0.3, layout)[0]
    rng = np.random.default_rng(1)
    others = replace(base, packets=rng.random(base.packets.shape).astype(np.float32))
    empty = replace(base, packets=np.zeros_like(base.packets), mask=layout.presence_mask([0], [0])[0])
    with torch.inference_mode():
        outs = [model(TensorInputs.from_numpy(stack_inputs([item]))) for item in (base, others, empty)]
        alone = model(TensorInputs.from_numpy(empty), compact=True)
    for out in outs[1:] + [alone]:
        torch.testing.assert_close(out.epoch_logits, outs[0].epoch_logits, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(outs[1].packet_logits[0, :9], outs[0].packet_logits[0, :9])
    # The default layout's epoch token comes last and does see the packets (same inputs, its mask).
    seeing = AqmModel(DEFAULT_LAYOUT, random_backbone("llama", hidden_size=32, lora=LoraSpec())).eval()
    mask = DEFAULT_LAYOUT.presence_mask([9], [0])[0]
    assert mask[DEFAULT_LAYOUT.epoch_index] and mask[DEFAULT_LAYOUT.packet_indices].sum() == 3
    items = [replace(base, mask=mask), replace(others, mask=mask)]
    with torch.inference_mode():
        a, b = (seeing(TensorInputs.from_numpy(stack_inputs([it]))) for it in items)
    assert not torch.allclose(a.epoch_logits, b.epoch_logits)
    assert TokenLayout.from_dict(layout.to_dict()) == layout
    with pytest.raises(ValueError, match="epoch_sees_packets"):
        TokenLayout.from_dict({**layout.to_dict(), "epoch_sees_packets": "false"})
    assert "[epoch], 4 packet tokens" in layout.describe()


def test_head_selection_is_always_valid() -> None:
    ecn = np.array([0, 1, 2, 3, 0], np.uint8)
    logits = torch.tensor([[0, 0, 9], [0, 0, 9], [float("nan")] * 3, [float("inf"), 0, 0],
                           [0, 9, 0]])
    acts = select_packet_actions(logits, ecn, sample=False)
    assert acts.tolist() == [1, 2, 0, 0, 1]  # mark on Not-ECT -> drop; NaN -> a valid code
    g = torch.Generator().manual_seed(0)
    sampled = select_packet_actions(logits, ecn, sample=True, generator=g)
    assert set(sampled.tolist()) <= {0, 1, 2} and sampled[0] != 2
    cls = np.array([0, 1, 1, 0], np.uint8)
    over = overflow_actions(cls, np.array([1, 2, 0, 3], np.uint8), (1.0, 1.0, 1.0), g)
    assert over.tolist() == [2, 1, 1, 2]  # p_C drop first (the queue disc's one draw), then marks
    # A classic signal sent as marks only (the factor output) still drops what cannot carry one.
    marks_only = overflow_actions(cls, np.array([1, 2, 0, 3], np.uint8), (0.0, 0.0, 1.0), g)
    assert marks_only.tolist() == [0, 2, 1, 0]
    assert overflow_actions(cls, np.array([1, 2, 0, 3], np.uint8), (0.0, 0.0, 0.0), g).tolist() == [0] * 4


# ------------------------------------------------------------------------ valid actions


@st.composite
def requests(draw: st.DrawFn) -> np.ndarray:
    """Any request the channel accepts (counts up to capacity, finite values, edge cases)."""
    rec = np.zeros((), C.REQUEST_DTYPE)
    ns = draw(st.integers(0, C.MAX_SERIES))
    w = draw(st.integers(0, C.WINDOW))
    nsc = draw(st.integers(0, C.MAX_SCALARS))
    n = draw(st.integers(0, C.MAX_PACKETS))
    nr = draw(st.integers(0, C.MAX_REWARDS))
    big = st.floats(0, 1e12, allow_nan=False, allow_infinity=False)
    anyf = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
    rec["series_count"], rec["window_len"], rec["scalar_count"] = ns, w, nsc
    rec["packet_count"], rec["reward_count"] = n, nr
    rec["header"]["epoch"] = draw(st.integers(0, 2**40))
    rec["series"][:min(ns, 8), :w] = draw(hnp.arrays(np.float64, (min(ns, 8), w), elements=big))
    rec["series"][8:ns, :w] = draw(hnp.arrays(np.float64, (max(ns - 8, 0), w), elements=anyf))
    rec["scalars"][:nsc] = draw(hnp.arrays(np.float64, nsc, elements=anyf))
    rec["rewards"][:nr] = draw(hnp.arrays(np.float64, nr, elements=anyf))
    pk = rec["packets"]
    pk["uid"][:n] = draw(hnp.arrays(np.uint64, n, elements=st.integers(0, 2**64 - 1)))
    pk["sojourn_s"][:n] = draw(hnp.arrays(np.float64, n, elements=st.floats(0, 1e6)))
    pk["size_bytes"][:n] = draw(hnp.arrays(np.int32, n, elements=st.integers(0, 1 << 24)))
    pk["flow_hash"][:n] = draw(hnp.arrays(np.uint32, n, elements=st.integers(0, 2**32 - 1)))
    pk["traffic_class"][:n] = draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 1)))
    pk["ecn"][:n] = draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 3)))
    return rec


@pytest.fixture(scope="module")
def channel_pair() -> Iterator[tuple[C.AgentChannel, C.AgentChannel]]:
    with C.AgentChannel.create() as server, C.AgentChannel.attach(server.name) as client:
        yield server, client


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(rec=requests(), sample=st.booleans())
def test_any_valid_request_gets_a_valid_reply(policy: LlmPolicy, rec: np.ndarray, sample: bool,
                                              channel_pair: tuple[C.AgentChannel, C.AgentChannel]) -> None:
    """Through the real channel: the reply the channel carries has one action in {0,1,2} per
    packet, with the request's uids, and probabilities in [0, 1]."""
    server, client = channel_pair
    policy.config = replace(TINY, sample=sample)
    client.request_view[...] = rec
    client.post_request()
    req = server.wait_request(5.0)
    d = policy.decide(req)
    assert d.problem(req) is None
    server.send_reply(d.actions, p_l_mark=d.p_l_mark, p_c_drop=d.p_c_drop, p_c_mark=d.p_c_mark)
    rep = client.wait_reply(5.0)
    n = int(rec["packet_count"])
    assert rep.status == C.ReplyStatus.OK and rep.actions.shape == (n,)
    assert np.array_equal(rep.actions["uid"], rec["packets"]["uid"][:n])
    assert set(rep.actions["action"].tolist()) <= {0, 1, 2}
    not_ect = rec["packets"]["ecn"][:n] == 0
    assert not (rep.actions["action"][not_ect] == C.Action.MARK).any()
    assert all(0.0 <= p <= 1.0 for p in (rep.p_l_mark, rep.p_c_drop, rep.p_c_mark))


def test_invalid_request_is_refused(policy: LlmPolicy) -> None:
    req = random_request(np.random.default_rng(0), packets=3)
    req.raw["series"][0, 0] = np.nan
    with pytest.raises(F.InvalidRequest):
        policy.decide(req)


# ------------------------------------------------------------------------ determinism


def run_actions(policy: LlmPolicy, seed: int, epochs: int = 15) -> list[list[int]]:
    policy.reset(RunInfo(seed=seed))
    rng = np.random.default_rng(42)
    return [policy.decide(random_request(rng, epoch=e)).actions.tolist() for e in range(epochs)]


def test_same_seed_same_actions_when_sampling() -> None:
    a = LlmPolicy(PolicyConfig(backbone="random:llama", sample=True))
    perturb(a)  # spread the head's distribution so that sampling matters
    b = LlmPolicy(PolicyConfig(backbone="random:llama", sample=True))
    perturb(b)
    first = run_actions(a, seed=5)
    assert run_actions(a, seed=5) == first  # reset restarts the run
    assert run_actions(b, seed=5) == first  # an identically built policy agrees
    assert run_actions(a, seed=6) != first


def test_history_and_rtg_evolve(policy: LlmPolicy) -> None:
    policy.reset(RunInfo(seed=1))
    rng = np.random.default_rng(0)
    for e in range(20):
        policy.decide(random_request(rng, epoch=e))
    assert len(policy._run.history) == DEFAULT_LAYOUT.history
    assert policy._run.rtg.value < policy.config.reward.target_return
    policy.reset(RunInfo(seed=1))
    assert len(policy._run.history) == 0


# ------------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("spec", ["random:llama", "random:gpt2", "mlp"])
def test_save_load_round_trip(tmp_path: Path, spec: str) -> None:
    cfg = PolicyConfig(backbone=spec, lora=None if spec == "mlp" else LoraSpec(), sample=True)
    saved = LlmPolicy(cfg)
    perturb(saved)
    assert not saved.trained
    saved.save(tmp_path, trained=True, metadata={"note": "test"})
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    lora_files = [] if spec == "mlp" else ["adapter/adapter_config.json",
                                           "adapter/adapter_model.safetensors"]
    assert names == sorted(lora_files + ["config.json", "policy.safetensors"])
    loaded = LlmPolicy.load(tmp_path)
    assert loaded.trained and loaded.metadata == {"note": "test"} and loaded.config == cfg
    assert run_actions(loaded, seed=3) == run_actions(saved, seed=3)
    x = TensorInputs.from_numpy(build_inputs_from_request(
        random_request(np.random.default_rng(1), packets=9), History(12), 0.1, DEFAULT_LAYOUT)[0])
    with torch.inference_mode():
        a, b = saved.model(x, compact=True), loaded.model(x, compact=True)
    assert torch.equal(a.packet_logits, b.packet_logits) and torch.equal(a.epoch_logits, b.epoch_logits)
    fresh = LlmPolicy(cfg)  # same init seed but not perturbed: must differ
    with torch.inference_mode():
        assert not torch.equal(fresh.model(x, compact=True).packet_logits, a.packet_logits)


def test_checkpoint_mismatches_are_refused(tmp_path: Path) -> None:
    LlmPolicy(TINY).save(tmp_path)
    gpt2 = PolicyConfig(backbone="random:gpt2")
    with pytest.raises(ValueError, match="adapter"):
        LlmPolicy(gpt2).load_weights(tmp_path)
    with pytest.raises(ValueError, match="layout"):
        LlmPolicy(PolicyConfig(backbone="random:llama",
                               layout=type(DEFAULT_LAYOUT).fit(packets=8))).load_weights(tmp_path)
    with pytest.raises(FileNotFoundError):
        LlmPolicy.load(tmp_path / "nowhere")


def test_mlp_policy_from_stub_module(tmp_path: Path) -> None:
    from aqm_llm.agent.stub import MlpPolicy as FromStub

    assert FromStub is MlpPolicy
    p = MlpPolicy()
    assert isinstance(p.backbone, MlpBackbone) and p.backbone.lora is None
    p.save(tmp_path)
    q = MlpPolicy(checkpoint=str(tmp_path), sample="true")
    assert q.config.sample and run_actions(q, 1, 3) == run_actions(
        MlpPolicy(checkpoint=str(tmp_path), sample="true"), 1, 3)


# ------------------------------------------------------------------------ LoRA


@pytest.mark.parametrize("arch, targets", [("llama", {"q_proj", "v_proj"}), ("gpt2", {"c_attn"}),
                                           ("opt", {"q_proj", "v_proj"})])
def test_lora_targets_and_frozen_backbone(arch: str, targets: set[str]) -> None:
    policy = LlmPolicy(PolicyConfig(backbone=f"random:{arch}"))
    trainable = policy.model.trainable_parameters()
    lora_modules = set()
    for name, _ in trainable:
        if name.startswith(("encoder.", "head.")):
            continue
        assert name.startswith("backbone.") and ".lora_" in name, name
        lora_modules.add(name.split(".lora_")[0].rsplit(".", 1)[-1])
    assert lora_modules == targets
    n_layers = 2
    assert sum(".lora_A." in n for n, _ in trainable) == n_layers * len(targets)
    frozen = [n for n, p in policy.backbone.named_parameters() if not p.requires_grad]
    assert frozen and all(".lora_" not in n for n in frozen)


def test_unknown_arch_and_spec_errors() -> None:
    with pytest.raises(ValueError, match="choose llama, gpt2 or opt"):
        load_backbone("random:bert")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_backbone("/nonexistent/model")
