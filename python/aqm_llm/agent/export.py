"""Export a policy network to ONNX, once per checkpoint, for the fast path.

``export_onnx(policy, path)`` merges the LoRA adapter into the backbone's weights (and unmerges
it afterwards), exports encoder + backbone + head over the whole token layout (batch of one,
absent slots masked) with ``torch.onnx``'s dynamo exporter, then checks the file: ONNX Runtime
must reproduce the eager model on a full input and on one with absent history and packets, or
the export is refused. ``cached_onnx(...)`` keeps the result in ``runtime.cache_dir()/onnx``,
named by a sha256 of what it is built from (checkpoint files, backbone weights, the code of the
modules in the graph, torch), built under a file lock so that parallel runs build it once.
Building takes the backbone load (~15 s) plus the export (~5 s); ``make`` builds the shipped
checkpoint's entry, so runs only load it (under a second).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from aqm_llm.agent.layout import ModelInputs
from aqm_llm.agent.runtime import INPUT_NAMES, OUTPUT_NAMES, OnnxNetwork, cache_dir

OPSET = 18
#: Largest |ONNX Runtime - PyTorch| accepted on the check inputs, over the logits.
EXPORT_TOLERANCE = 1e-3


@contextlib.contextmanager
def merged_lora(backbone: Any) -> Iterator[None]:
    """The LoRA adapter merged into the base weights for the duration (inference only)."""
    model = getattr(backbone, "model", None)
    if getattr(backbone, "lora", None) is None or not hasattr(model, "merge_adapter"):
        yield
        return
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Library notes off for the duration: the exporter's progress on stdout (which the agent
    server keeps for READY), warnings, and logger notes below ERROR (e.g. torchvision missing;
    ONNX Runtime's quantiser logs through the root logger)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_graph(module: Any, args: tuple[Any, ...], path: Path, input_names: list[str],
                 output_names: list[str]) -> None:
    """``torch.onnx.export`` as the project uses it: the dynamo exporter, opset :data:`OPSET`,
    optimised, one self-contained file."""
    import torch

    with quiet():
        torch.onnx.export(module, args, str(path), dynamo=True, opset_version=OPSET,
                          input_names=input_names, output_names=output_names,
                          optimize=True, external_data=False, verbose=False)


def check_inputs(layout: Any, seed: int = 0) -> list[tuple[ModelInputs, int]]:
    """(inputs, packet count) that exercise the mask: a full layout, and one with absent
    history and packets."""
    from aqm_llm.agent import features as F
    from aqm_llm.channel import WINDOW

    rng = np.random.default_rng(seed)
    out = []
    for packets, past in ((layout.packets, layout.history), (max(1, layout.packets // 3), layout.history // 2)):
        out.append((ModelInputs(
            rtg=rng.normal(size=1).astype(np.float32),
            scalars=rng.random((F.N_SCALARS, 2)).astype(np.float32),
            series=rng.random((layout.series, 2, WINDOW)).astype(np.float32),
            packets=rng.random((layout.packets, F.PACKET_FEATURES)).astype(np.float32),
            hist_rtg=rng.normal(size=(layout.history, 1)).astype(np.float32),
            hist_state=rng.random((layout.history, F.STATE_SUMMARY_DIM)).astype(np.float32),
            hist_action=rng.random((layout.history, F.ACTION_SUMMARY_DIM)).astype(np.float32),
            mask=layout.presence_mask([packets], [past])[0]), packets))
    return out


def export_onnx(policy: Any, path: Path) -> Path:
    """Write ``policy``'s network (an :class:`~aqm_llm.agent.policy.LlmPolicy`) to ``path``."""
    import torch

    from aqm_llm.agent.encoder import TensorInputs
    from aqm_llm.agent.runtime import TorchNetwork

    model = policy.model.eval()

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *arrays: Any) -> tuple[Any, Any]:
            out = self.model(TensorInputs(*arrays), compact=False)
            return out.packet_logits, out.epoch_logits

    samples = check_inputs(policy.layout)
    example = TensorInputs.from_numpy(samples[1][0])
    args = tuple(getattr(example, name) for name in INPUT_NAMES)
    path.parent.mkdir(parents=True, exist_ok=True)
    with merged_lora(policy.backbone), torch.inference_mode(False), torch.no_grad():
        export_graph(Graph(), args, path, list(INPUT_NAMES), list(OUTPUT_NAMES))
    fast, reference = OnnxNetwork(path, threads=1), TorchNetwork(model)
    for i, (x, packets) in enumerate(samples):
        a, b = fast.infer(x), reference.infer(x)
        # Slots past the packet count carry no decision (the compact reference leaves them 0).
        err = max(float(np.abs(a.packet_logits[:packets] - b.packet_logits[:packets]).max()),
                  float(np.abs(a.epoch_logits - b.epoch_logits).max()))
        if not err <= EXPORT_TOLERANCE:
            path.unlink(missing_ok=True)
            raise RuntimeError(f"ONNX export of {policy.describe().get('checkpoint') or 'the policy'} "
                               f"differs from PyTorch by {err:.3g} on check input {i} "
                               f"(tolerance {EXPORT_TOLERANCE})")
    return path


#: The modules whose code is in the exported graph: an edit to any of them is a new cache entry,
#: so a cached network never runs code older than the PyTorch reference's.
GRAPH_MODULES = ("encoder.py", "backbone.py", "head.py", "model.py", "layout.py", "levels.py",
                 "export.py")


def code_digest() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in GRAPH_MODULES:
        h.update(name.encode())
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def cache_key(material: dict[str, Any]) -> str:
    import torch

    doc = {**material, "opset": OPSET, "torch": torch.__version__, "code": code_digest()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


def cached_onnx(material: dict[str, Any], build: Callable[[], Any], *, label: str = "the policy",
                log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> Path:
    """The cached ONNX file for ``material`` (what defines the network: checkpoint digest,
    backbone weights, ...; JSON-serialisable), exported from ``build()`` (a torch policy) if
    missing. ``label`` names the policy in the notice printed while building."""
    directory = cache_dir() / "onnx"
    key = cache_key(material)
    target = directory / f"{key}.onnx"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel run may be building the same entry
        if target.is_file():
            return target
        log(f"building the ONNX network for {label} (once; cached as {target})")
        start = time.monotonic()
        policy = build()
        fd, tmp = tempfile.mkstemp(suffix=".onnx.partial", dir=directory)
        os.close(fd)
        try:
            export_onnx(policy, Path(tmp))
            (directory / f"{key}.json").write_text(json.dumps(
                {**material, "source": label, "built_s": round(time.monotonic() - start, 1)},
                indent=1) + "\n")
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return target
