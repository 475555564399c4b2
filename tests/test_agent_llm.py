"""The agent with the real SmolLM2-135M backbone (loaded once per session; ``-m llm`` selects
these tests, ``-m "not llm"`` skips them), and the inference benchmark's smoke run."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see agent.server

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from aqm_llm.agent.backbone import LoraSpec, TransformerBackbone, load_backbone
from aqm_llm.agent.interface import RunInfo
from aqm_llm.agent.policy import LlmPolicy, PolicyConfig
from aqm_llm.agent.synthetic import random_request
from aqm_llm.bench import inference, textgen


@pytest.fixture(scope="session")
def smollm2() -> tuple[TransformerBackbone, float]:
    torch.set_num_threads(2)
    start = time.monotonic()
    backbone = load_backbone("smollm2", lora=LoraSpec())
    assert isinstance(backbone, TransformerBackbone)
    return backbone, time.monotonic() - start


@pytest.mark.llm
def test_smollm2_backbone_facts(smollm2: tuple[TransformerBackbone, float]) -> None:
    backbone, _ = smollm2
    assert (backbone.arch, backbone.hidden_size) == ("llama", 576)
    lora = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    base = sum(p.numel() for p in backbone.parameters() if not p.requires_grad)
    assert lora == 460_800  # r=8 on q_proj, v_proj of 30 layers (DESIGN.md)
    assert 134e6 < base < 135e6


@pytest.mark.llm
def test_short_run_with_smollm2(smollm2: tuple[TransformerBackbone, float],
                                record_property: pytest.RecordProperty,
                                capsys: pytest.CaptureFixture[str]) -> None:
    backbone, load_s = smollm2
    policy = LlmPolicy(PolicyConfig(sample=True), backbone=backbone)
    assert not policy.trained
    policy.reset(RunInfo(seed=2))
    rng = np.random.default_rng(0)
    latencies = []
    for epoch in range(6):
        request = random_request(rng, packets=16, epoch=epoch)
        start = time.perf_counter()
        decision = policy.decide(request)
        latencies.append(time.perf_counter() - start)
        assert decision.problem(request) is None
    record_property("smollm2_load_s", round(load_s, 1))
    record_property("smollm2_decide_ms", [round(x * 1e3) for x in latencies])
    with capsys.disabled():
        print(f"\n[llm] SmolLM2 load {load_s:.1f} s; decide ms per epoch (tokens 28..43): "
              f"{[round(x * 1e3) for x in latencies]}")


@pytest.mark.llm
def test_llm_checkpoint_round_trip(smollm2: tuple[TransformerBackbone, float], tmp_path: Path) -> None:
    backbone, _ = smollm2
    policy = LlmPolicy(PolicyConfig(), backbone=backbone)
    policy.save(tmp_path)
    adapter = tmp_path / "adapter" / "adapter_model.safetensors"
    assert adapter.exists() and adapter.stat().st_size < 3_000_000  # 460,800 fp32 + header
    again = LlmPolicy.load(tmp_path, backbone=backbone)
    request = random_request(np.random.default_rng(3), packets=5)
    a, b = policy.decide(request), again.decide(request)
    assert a.actions.tolist() == b.actions.tolist() and a.p_l_mark == b.p_l_mark


def test_bench_inference_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "bench.md"
    assert inference.main(["--backbone", "random:llama", "--quick", "--threads", "1",
                           "--save", str(doc)]) == 0
    out = capsys.readouterr().out
    assert "eager torch fp32 (reference)" in out and "ONNX Runtime fp32, LoRA merged (agent)" in out
    assert "co-simulation" not in out  # --quick skips it
    text = doc.read_text()
    assert inference.SECTION_BEGIN in text and "command: aqm-llm bench inference" in text
    inference.main(["--backbone", "random:llama", "--quick", "--threads", "1", "--save", str(doc)])
    assert doc.read_text().count(inference.SECTION_BEGIN) == 1  # the section is replaced


def test_text_answer_parsing() -> None:
    codes, valid = textgen.parse_answer("1: forward\n2: Mark\n3. drop", 3)
    assert codes == [0, 2, 1] and valid
    codes, valid = textgen.parse_answer("1: forward\nI think packet 2 should be kept", 3)
    assert codes == [0, 0, 0] and not valid
    assert not textgen.parse_answer("1: drop\n1: mark\n2: drop", 2)[1]  # duplicate answer


def test_bench_inference_cosim_overhead(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A real l4s-llm run with an agent process (tiny random backbone) against dualpi2.
    monkeypatch.setenv("AQM_LLM_CACHE", str(tmp_path))  # the agent builds its ONNX network here
    assert inference.main(["--backbone", "random:llama", "--epochs", "2", "--warmup", "0",
                           "--text-epochs", "0", "--threads", "1", "--cosim-duration", "1s",
                           "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "co-simulation" in out and "agent start (process start to READY)" in out
    assert "two l4s-llm runs side by side" in out
    decisions = int(out.split("l4s-llm simulation wall time")[1].split("(")[1].split()[0])
    assert decisions >= 60  # 1 s / 16 ms
    assert "0 fallbacks" in out
