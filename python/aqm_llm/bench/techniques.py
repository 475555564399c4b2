"""The ways to run the policy network that ``aqm-llm bench inference`` measures side by side.

Each technique is a :class:`~aqm_llm.agent.policy.PolicyAgent` over some network: the same
``decide`` (validation, features, layout, one forward pass, action selection), so the rows
differ only in how the network runs. Techniques that compute the reference's network in
another way (merged LoRA, int8, ONNX Runtime) are compared with it on the same inputs.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from aqm_llm.agent.export import quiet
from aqm_llm.agent.layout import ModelInputs
from aqm_llm.agent.policy import LlmPolicy, PolicyAgent
from aqm_llm.agent.runtime import NetworkOutput, OnnxNetwork, TorchNetwork


class RecordingNetwork:
    """Passes through to a network and keeps every input it saw (the fidelity inputs)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.runtime = inner.runtime
        self.inputs: list[ModelInputs] = []

    def infer(self, inputs: ModelInputs) -> NetworkOutput:
        self.inputs.append(inputs)
        return self.inner.infer(inputs)


def with_network(policy: PolicyAgent, network: Any) -> PolicyAgent:
    return PolicyAgent(policy.config, network, trained=policy.trained, metadata=policy.metadata,
                       source=policy.source)


def merged_copy(policy: LlmPolicy) -> Any:
    """A copy of the policy's model with the LoRA adapter merged into the base weights."""
    model = copy.deepcopy(policy.model)
    backbone = model.backbone
    if getattr(backbone, "lora", None) is not None:
        backbone.model = backbone.model.merge_and_unload()
    return model.eval()


def torch_merged(policy: LlmPolicy) -> PolicyAgent:
    return with_network(policy, TorchNetwork(merged_copy(policy)))


def torch_int8(policy: LlmPolicy) -> PolicyAgent:
    """PyTorch dynamic quantisation of every Linear (int8 weights, fp32 activations)."""
    import torch

    with quiet():  # torch.ao.quantization is deprecated in favour of torchao, not installed here
        model = torch.ao.quantization.quantize_dynamic(merged_copy(policy), {torch.nn.Linear},
                                                       dtype=torch.qint8)
    return with_network(policy, TorchNetwork(model))


def onnx_fp32(policy: LlmPolicy, workdir: Path, threads: int) -> tuple[PolicyAgent, Path]:
    from aqm_llm.agent.export import export_onnx

    path = export_onnx(policy, workdir / f"fp32-{id(policy)}.onnx")
    return onnx_fp32_from(policy, path, threads), path


def onnx_fp32_from(policy: LlmPolicy, path: Path, threads: int) -> PolicyAgent:
    """The policy over an ONNX file already exported, with its own session and thread count."""
    return with_network(policy, OnnxNetwork(path, threads))


def onnx_int8(policy: LlmPolicy, fp32: Path, threads: int) -> PolicyAgent:
    """ONNX Runtime dynamic quantisation, int8 weights per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = fp32.with_name(fp32.stem + "-int8.onnx")
    with quiet():
        quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8)
    return onnx_fp32_from(policy, out, threads)


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="aqm-llm-bench-")


def body_grid(backbone: Any, layer_counts: list[int], token_counts: list[int], threads: int,
              runs: int, workdir: Path) -> list[tuple[int, int, float, float]]:
    """The backbone's transformer body alone (no encoder, head or Python around it) exported to
    ONNX and timed in ONNX Runtime for each (layers, tokens): rows (layers, tokens, p50 ms with
    ``threads`` threads, p50 ms with 1 thread), over random input embeddings, LoRA merged."""
    import time

    import numpy as np
    import torch

    from aqm_llm.agent.backbone import decoder_layers
    from aqm_llm.agent.export import export_graph, merged_lora
    from aqm_llm.agent.runtime import onnx_session

    base = backbone.model.get_base_model() if hasattr(backbone.model, "get_base_model") else backbone.model
    owner, attr = decoder_layers(base)
    all_layers, all_count = getattr(owner, attr), base.config.num_hidden_layers
    out = []

    class Body(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, embeds: Any, mask: Any) -> Any:
            positions = torch.arange(embeds.shape[1])[None]
            return self.backbone(embeds, attention_mask=mask, position_ids=positions)

    def p50(path: Path, n_threads: int, feed: dict[str, Any]) -> float:
        session = onnx_session(path, n_threads)
        lat = []
        for i in range(runs + 5):
            t0 = time.perf_counter()
            session.run(None, feed)
            if i >= 5:
                lat.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(lat))

    try:
        with merged_lora(backbone), torch.no_grad():
            for n in layer_counts:
                setattr(owner, attr, all_layers[:n])
                base.config.num_hidden_layers = n
                for t in token_counts:
                    embeds = torch.randn(1, t, backbone.hidden_size)
                    mask = torch.ones(1, t, dtype=torch.long)
                    path = workdir / f"body-{n}-{t}.onnx"
                    export_graph(Body(), (embeds, mask), path, ["embeds", "mask"], ["hidden"])
                    feed = {"embeds": embeds.numpy(), "mask": mask.numpy()}
                    out.append((n, t, p50(path, threads, feed), p50(path, 1, feed)))
                    path.unlink()
    finally:
        setattr(owner, attr, all_layers)
        base.config.num_hidden_layers = all_count
    return out
