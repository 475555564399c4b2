"""The fast inference path: the policy network exported to ONNX (LoRA merged) and run by ONNX
Runtime decides what the fp32 PyTorch reference decides, on requests recorded from a real run.

Thresholds: every packet action and every epoch probability of the replayed epochs are compared
in lockstep (both policies keep their own history, so one disagreement would show in all later
epochs). Packet actions must agree on at least 99.5% of packets (argmax of logits that differ
by float rounding can flip only at an exact tie) and epoch probabilities within 1e-4 absolute.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see agent.server

from pathlib import Path

import numpy as np
import pytest
import torch

import aqm_llm
from aqm_llm.agent import export as E
from aqm_llm.agent.interface import RunInfo
from aqm_llm.agent.layout import DEFAULT_LAYOUT
from aqm_llm.agent.policy import LlmPolicy, PolicyAgent, PolicyConfig, make_llm_policy
from aqm_llm.agent.runtime import OnnxNetwork
from aqm_llm.agent.synthetic import as_request
from aqm_llm.training.records import read_records

ACTION_AGREEMENT = 0.995
PROBABILITY_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def recorded_requests(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Requests as the queue disc sent them: a 2 s dumbbell run recorded in teacher mode."""
    tmp = tmp_path_factory.mktemp("rec")
    rec = tmp / "run.rec"
    aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=4, output_dir=tmp,
                params={"duration": "2s", "warmup": "0.5s", "l4s_flows": 2, "classic_flows": 2,
                        "llm_mode": "record", "record_actor": "teacher", "teacher": "dualpi2",
                        "record_path": str(rec)})
    _, records = read_records(rec)
    requests = [as_request(records["request"][i]) for i in range(len(records))]
    counts = [int(r.packets.shape[0]) for r in requests]
    assert len(requests) >= 100 and min(counts) < 16 and max(counts) == 16  # absent slots and full
    return requests


def replay(a: PolicyAgent, b: PolicyAgent, requests: list, seed: int = 7) -> tuple[float, float]:
    """(share of packet actions equal, largest epoch-probability difference) in lockstep."""
    a.reset(RunInfo(seed=seed))
    b.reset(RunInfo(seed=seed))
    same = total = 0
    max_dp = 0.0
    for request in requests:
        x, y = a.decide(request), b.decide(request)
        same += int((x.actions == y.actions).sum())
        total += int(x.actions.shape[0])
        max_dp = max(max_dp, abs(x.p_l_mark - y.p_l_mark), abs(x.p_c_drop - y.p_c_drop),
                     abs(x.p_c_mark - y.p_c_mark))
    return same / max(total, 1), max_dp


def trained_like(config: PolicyConfig) -> LlmPolicy:
    """A policy whose LoRA adapter is not zero (a fresh one's B matrices are), so that merging it
    into the weights changes them, and whose head is not at its initial biases."""
    policy = LlmPolicy(config)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name or name.startswith("head."):
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    return policy


@pytest.mark.parametrize("sample", [False, True])
def test_onnx_runtime_decides_like_the_torch_reference(tmp_path: Path, recorded_requests: list,
                                                       sample: bool) -> None:
    config = PolicyConfig(backbone="random:llama", layout=DEFAULT_LAYOUT, sample=sample)
    reference = trained_like(config)
    path = E.export_onnx(reference, tmp_path / "policy.onnx")
    # The export merged LoRA for the export only: the reference is unchanged afterwards.
    assert reference.model.backbone.model.base_model.model.layers[0].self_attn.q_proj.merged is False
    fast = PolicyAgent(config, OnnxNetwork(path, threads=1))
    agree, max_dp = replay(reference, fast, recorded_requests)
    assert agree >= ACTION_AGREEMENT and max_dp <= PROBABILITY_TOLERANCE
    # The replay is not trivially all-forward: the reference drops or marks some packets.
    reference.reset(RunInfo(seed=7))
    acted = sum(int((reference.decide(r).actions != 0).sum()) for r in recorded_requests[:60])
    assert acted > 0


def test_a_bad_export_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = LlmPolicy(PolicyConfig(backbone="random:llama"))
    monkeypatch.setattr(E, "EXPORT_TOLERANCE", -1.0)  # nothing can pass: the check must refuse
    with pytest.raises(RuntimeError, match="differs from PyTorch"):
        E.export_onnx(policy, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_the_onnx_cache_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AQM_LLM_CACHE", str(tmp_path / "cache"))
    builds: list[int] = []

    def build() -> LlmPolicy:
        builds.append(1)
        return LlmPolicy(PolicyConfig(backbone="random:llama"))

    material = {"checkpoint": "0" * 64, "backbone": "random:llama"}
    first = E.cached_onnx(material, build, log=lambda m: None)
    again = E.cached_onnx(material, build, log=lambda m: None)
    other = E.cached_onnx({**material, "checkpoint": "1" * 64}, build, log=lambda m: None)
    assert first == again != other and len(builds) == 2
    assert first.parent == tmp_path / "cache" / "onnx" and first.is_file()
    assert not list(first.parent.glob("*.partial"))


def test_checkpoint_served_on_both_runtimes(tmp_path: Path, recorded_requests: list,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AQM_LLM_CACHE", str(tmp_path / "cache"))
    ckpt = trained_like(PolicyConfig(backbone="random:llama")).save(tmp_path / "ckpt", trained=True)
    onnx = make_llm_policy(str(ckpt), runtime="onnx", threads=1)
    torch_policy = make_llm_policy(str(ckpt), runtime="torch")
    assert onnx.describe()["runtime"] == "onnx" and torch_policy.describe()["runtime"] == "torch"
    assert onnx.trained and onnx.source == ckpt.resolve()
    agree, max_dp = replay(torch_policy, onnx, recorded_requests[:80])
    assert agree >= ACTION_AGREEMENT and max_dp <= PROBABILITY_TOLERANCE
    with pytest.raises(ValueError, match="bad value 'tensorrt' for runtime"):
        make_llm_policy(str(ckpt), runtime="tensorrt")


@pytest.mark.llm
def test_shipped_checkpoint_fast_path_keeps_its_decisions(recorded_requests: list) -> None:
    """The shipped checkpoint on SmolLM2: the agent's ONNX path (the cache `make` builds) against
    the fp32 PyTorch reference, on recorded requests."""
    torch.set_num_threads(2)
    fast = make_llm_policy(runtime="onnx", threads=2)
    reference = make_llm_policy(runtime="torch")
    assert fast.trained and fast.source == reference.source
    agree, max_dp = replay(reference, fast, recorded_requests)
    assert agree >= ACTION_AGREEMENT and max_dp <= PROBABILITY_TOLERANCE


@pytest.mark.llm
def test_the_target_return_changes_what_the_return_conditioned_policy_does(recorded_requests: list) -> None:
    """Return conditioning conditions: the return-conditioned checkpoint (per-epoch, standardised
    RTG; shipped until the imitation recipe replaced it) asked for a low and for a high target
    return decides differently on the same recorded requests."""
    from dataclasses import replace

    checkpoint = Path(aqm_llm.__file__).resolve().parents[2] / "models" / "l4s-llm-return"
    base = make_llm_policy(checkpoint=str(checkpoint), runtime="onnx", threads=2)
    reward = base.config.reward
    assert reward.rtg_mode == "per_epoch"

    def decisions(target: float) -> tuple[np.ndarray, np.ndarray]:
        agent = PolicyAgent(replace(base.config, reward=replace(reward, target_return=target)), base.network)
        agent.reset(RunInfo(seed=7))
        out = [agent.decide(r) for r in recorded_requests]
        return (np.array([[d.p_l_mark, d.p_c_drop, d.p_c_mark] for d in out]),
                np.concatenate([d.actions for d in out]))

    low = decisions(reward.rtg_offset - 2 * reward.rtg_scale)
    high = decisions(reward.rtg_offset + 2 * reward.rtg_scale)
    assert np.abs(low[0] - high[0]).max() > 1e-4 or not np.array_equal(low[1], high[1])
