"""Where the policy network runs for one decision: PyTorch or ONNX Runtime.

Both take one epoch's :class:`~aqm_llm.agent.layout.ModelInputs` and return the head's raw
outputs as numpy arrays; the policy turns them into actions the same way whichever ran.

- ``torch``: :class:`TorchNetwork`, the reference: the trainable :class:`AqmModel` in eager
  PyTorch (fp32, LoRA unmerged), the backbone run on the present tokens only.
- ``onnx`` (the agent's default): :class:`OnnxNetwork`, the same network exported once to ONNX
  with the LoRA adapter merged into the weights (``agent.export``), run by ONNX Runtime in
  fp32 over the whole layout with absent slots masked. It decides the same as the reference
  (``tests/test_fast_path.py`` replays recorded requests through both) in a fraction of the
  time: ``docs/bench-inference.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from aqm_llm.agent.layout import ModelInputs
from aqm_llm.agent.levels import decode_logits

TORCH = "torch"
ONNX = "onnx"
RUNTIMES = (ONNX, TORCH)
#: Input and output names of an exported policy network (ModelInputs' fields, in order).
INPUT_NAMES = tuple(ModelInputs.__dataclass_fields__)
OUTPUT_NAMES = ("packet_logits", "epoch_logits")


@dataclass(frozen=True)
class NetworkOutput:
    """The head's outputs for one epoch."""

    packet_logits: npt.NDArray[np.float32]  # (K, 3): forward, drop, mark per packet slot
    epoch_logits: npt.NDArray[np.float32]  # (3, N_LEVELS): p_L mark, p_C drop, p_C mark levels

    @property
    def epoch_probs(self) -> npt.NDArray[np.float64]:
        """(3,) the epoch logits decoded on the probability grid (``agent.levels``): the
        probabilities of a network with the probability output; a factor network's decisions
        are decoded by ``agent.factor`` instead (this stays a like-for-like check of two
        runtimes of the same network)."""
        return decode_logits(self.epoch_logits)


class PolicyNetwork(Protocol):
    """Encoder + backbone + head for one epoch."""

    runtime: str

    def infer(self, inputs: ModelInputs) -> NetworkOutput: ...


def check_runtime(name: str) -> str:
    if name not in RUNTIMES:
        raise ValueError(f"bad value '{name}' for runtime: allowed {', '.join(RUNTIMES)}")
    return name


class TorchNetwork:
    """The trainable model in eager PyTorch (the reference path)."""

    runtime = TORCH

    def __init__(self, model: Any):
        self.model = model

    def infer(self, inputs: ModelInputs) -> NetworkOutput:
        import torch

        from aqm_llm.agent.encoder import TensorInputs

        with torch.inference_mode():
            out = self.model(TensorInputs.from_numpy(inputs), compact=True)
        return NetworkOutput(out.packet_logits[0].float().numpy(), out.epoch_logits[0].float().numpy())


class OnnxNetwork:
    """An exported policy network in ONNX Runtime (CPU, fp32)."""

    runtime = ONNX

    def __init__(self, path: Path, threads: int = 2, *, spin: bool = False):
        self.path = Path(path)
        self.threads = threads
        self.session = onnx_session(path, threads, spin=spin)
        names = tuple(i.name for i in self.session.get_inputs())
        if set(names) != set(INPUT_NAMES):
            raise ValueError(f"{path}: inputs {names}, expected {INPUT_NAMES}")

    def infer(self, inputs: ModelInputs) -> NetworkOutput:
        feed = {name: np.ascontiguousarray(getattr(inputs, name)[None]) for name in INPUT_NAMES}
        packet_logits, epoch_logits = self.session.run(OUTPUT_NAMES, feed)
        return NetworkOutput(packet_logits[0], epoch_logits[0])


def onnx_session(path: Path, threads: int, *, spin: bool = False) -> Any:
    """An ONNX Runtime CPU session with the agent's settings: ``threads`` intra-op threads,
    sequential execution, every graph optimisation, workers that sleep instead of spinning
    (unless ``spin``): a spinning worker burns the core the simulation (or a second run) needs
    between decisions, the same reason the torch path sets OMP_WAIT_POLICY=PASSIVE."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnxruntime_version() -> str:
    try:
        import onnxruntime

        return str(onnxruntime.__version__)
    except ImportError:
        return "not installed"


def cache_dir() -> Path:
    """Where converted networks are kept: $AQM_LLM_CACHE, else $XDG_CACHE_HOME/aqm-llm, else
    ~/.cache/aqm-llm. Entries are named by the content they were built from, so one cache
    serves every clone and checkout on the machine."""
    if os.environ.get("AQM_LLM_CACHE"):
        return Path(os.environ["AQM_LLM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "aqm-llm"
