"""``aqm-llm bench inference``: how long the LLM agent takes to decide one epoch, every way tried.

Every row decides the same random but valid requests (K packets) with ``PolicyAgent.decide``
(validation, features, token layout, one forward pass, action selection); rows differ in how the
network runs (``bench.techniques``): the first checkpoint's path (eager PyTorch fp32, 64-token
layout, all 30 layers), the dense 24-token layout, the backbone cut to its first layers, LoRA
merged, int8 weights (PyTorch dynamic quantisation, ONNX Runtime per-channel), ONNX Runtime fp32
(the agent's default), thread counts; and the text-generation baseline the head replaces
(``bench.textgen``). Rows that compute the reference's network (the checkpoint in eager PyTorch)
another way are compared with it on the same inputs: the share of packet actions that agree and
the largest epoch-probability difference. Then the co-simulation figures (``bench.cosim``): the
agent's start time, wall seconds per simulated second of a dumbbell run, two runs side by side.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aqm_llm.bench import report
from aqm_llm.bench.machine import peak_rss_mb
from aqm_llm.bench.rows import Row, current_rss_mb, render_table

SECTION_BEGIN = "<!-- bench-inference:begin -->"
SECTION_END = "<!-- bench-inference:end -->"
# The targets of a decision within one 16 ms epoch (2 threads: p50, p99; 1 thread: p50).
TARGET_P50_MS, TARGET_P99_MS, TARGET_P50_1T_MS = 16.0, 25.0, 30.0
GRID_LAYERS = (6, 8, 12, 16)  # and all of the backbone's
GRID_TOKENS = (16, 24, 32, 64)
GRID_RUNS = 30


@dataclass(frozen=True)
class BenchConfig:
    backbone: str = "smollm2"
    checkpoint: str | None = None  # None: the shipped one (if it was trained on this backbone)
    epochs: int = 200
    warmup: int = 20
    text_epochs: int = 5
    packets: int = 16
    threads: int = 2
    seed: int = 1
    omp_wait_policy: str = "PASSIVE"
    cosim_duration: str = "20s"
    grid: bool = True  # the backbone body alone over layers x tokens


# ---------------------------------------------------------------------------- measuring


def measure(name: str, policy: Any, requests: list[Any], cfg: BenchConfig, threads: int) -> Row:
    """Time ``policy.decide`` over ``requests`` (the first ``cfg.warmup`` untimed)."""
    import torch

    from aqm_llm.agent.interface import RunInfo

    layers = policy.config.layers
    row = Row(name, layers="all" if layers is None else str(layers), threads=threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        policy.reset(RunInfo(seed=cfg.seed))
        for epoch, request in enumerate(requests):
            start = time.perf_counter()
            decision = policy.decide(request)
            elapsed = time.perf_counter() - start
            if epoch < cfg.warmup:
                continue
            row.latencies_ms.append(elapsed * 1e3)
            row.tokens_in.append(policy.layout.present_tokens(cfg.packets, epoch))
            row.tokens_out.append(0)
            row.valid.append(decision.problem(request) is None)
    finally:
        torch.set_num_threads(previous)
    row.rss_mb, row.rss_now_mb = peak_rss_mb(), current_rss_mb()
    return row


def compare(row: Row, network: Any, reference: Any, inputs: list[Any], packets: int) -> None:
    """Agreement of ``network`` with ``reference`` on the reference run's inputs."""
    same = total = 0
    max_dp = 0.0
    for x in inputs:
        a, b = network.infer(x), reference.infer(x)
        n = min(packets, a.packet_logits.shape[0])
        same += int((a.packet_logits[:n].argmax(-1) == b.packet_logits[:n].argmax(-1)).sum())
        total += n
        max_dp = max(max_dp, float(np.abs(a.epoch_probs - b.epoch_probs).max()))
    row.agree, row.max_dp = (same / total if total else None), max_dp


# ---------------------------------------------------------------------------- report


def render(rows: list[Row], cfg: BenchConfig, info: dict[str, str], command: str,
           agent: Row | None, agent_1t: Row | None) -> str:
    out = [f"machine: {info['cpu']}; {info['os']}; torch {info['torch']}, onnxruntime {info['ort']}, "
           f"OMP_WAIT_POLICY={info['omp']}",
           f"load average (1/5/15 min) before: {info['load']}, after: {info['load_after']}",
           f"command: {command}",
           f"backbone: {info['backbone']} (GGUF loaded and de-quantised in {info['load_s']} s)",
           f"checkpoint: {info['checkpoint']}",
           f"layouts: dense = {info['dense']}; wide = {info['wide']}",
           "", *render_table(rows), ""]
    if agent is not None and agent_1t is not None:
        def met(ok: bool) -> str:
            return "met" if ok else "NOT met"
        p50, p99 = agent.p50(), float(np.percentile(agent.latencies_ms, 99))
        out += [f"the agent's path ({agent.method}, {agent.layers} layers): p50 {p50:.1f} ms, "
                f"p99 {p99:.1f} ms with {agent.threads} threads (targets {TARGET_P50_MS:g} / "
                f"{TARGET_P99_MS:g} ms: {met(p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS)}); "
                f"p50 {agent_1t.p50():.1f} ms with 1 thread (target {TARGET_P50_1T_MS:g} ms: "
                f"{met(agent_1t.p50() <= TARGET_P50_1T_MS)})"]
    if info.get("agent_load"):
        out.append(info["agent_load"])
    out += ["",
            f"Latency: PolicyAgent.decide (validation, features, layout, one forward pass, action "
            f"selection) over {cfg.epochs} epochs after {cfg.warmup} warm-up, {cfg.packets} packets "
            f"each; tokens in: mean tokens with content (the whole layout once the history is "
            f"full); the text row: prompt building, tokenisation, greedy generation (at most "
            f"{6 * cfg.packets} new tokens) and parsing over {cfg.text_epochs} epochs.",
            "actions = ref / max |dp|: on the reference row's inputs, the share of packet actions "
            "(argmax) equal to the reference's and the largest difference of an epoch probability; "
            "'-' where the network is another one (other layout or layer count).",
            "valid: share of epochs whose output gave every packet exactly one action. RSS: "
            "resident after the row (the process holds every model loaded so far)."]
    out += [f"note ({r.method}): {r.note}" for r in rows if r.note]
    return "\n".join(out) + "\n"


def render_grid(grid: list[tuple[int, int, float, float]], threads: int) -> str:
    tokens = sorted({t for _, t, _, _ in grid})
    by = {(n, t): (a, b) for n, t, a, b in grid}
    head = f"{'layers':>6}  " + "  ".join(f"{t:>3} tok ({threads}t / 1t)" for t in tokens)
    lines = [f"the backbone body alone (no encoder, head or Python), ONNX Runtime fp32, LoRA merged, random "
             f"input embeddings, p50 ms of {GRID_RUNS} runs, {threads} threads / 1 thread:", head]
    for n in sorted({n for n, _, _, _ in grid}):
        lines.append(f"{n:>6}  " + "  ".join(f"{by[n, t][0]:>9.1f} / {by[n, t][1]:>5.1f}" for t in tokens))
    return "\n".join(lines) + "\n"


def save_section(path: Path, text: str) -> None:
    report.save_section(
        path, text, SECTION_BEGIN, SECTION_END,
        "# Inference benchmark\n\n"
        "`aqm-llm bench inference` measures how long the LLM agent takes to decide one epoch,\n"
        "every technique tried side by side. Regenerate with\n"
        "`aqm-llm bench inference --save docs/bench-inference.md`.\n\n")


# ---------------------------------------------------------------------------- entry point


def parse(argv: list[str]) -> tuple[BenchConfig, Path | None]:
    p = argparse.ArgumentParser(prog="aqm-llm bench inference", description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="smollm2",
                   help="'smollm2' (default), a local causal-LM path, or random:<arch> (smoke test)")
    p.add_argument("--checkpoint", default=None,
                   help="policy checkpoint of the cut rows (default: the shipped one, if trained "
                        "on this backbone; else an untrained policy)")
    p.add_argument("--epochs", type=int, default=200, help="timed epochs per row")
    p.add_argument("--warmup", type=int, default=20, help="untimed epochs first (fills the history)")
    p.add_argument("--text-epochs", type=int, default=5,
                   help="epochs of the text-generation baseline (0: skip)")
    p.add_argument("--packets", type=int, default=16, help="packets per request")
    p.add_argument("--threads", type=int, default=2, help="threads of the agent's path")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--omp-wait-policy", choices=("PASSIVE", "ACTIVE", "default"), default="PASSIVE",
                   help="OpenMP workers' wait policy (PASSIVE, as the agent server runs; "
                        "'default': libgomp's own, spinning a while)")
    p.add_argument("--cosim-duration", default="20s",
                   help="simulated time of the co-simulation runs (default 20s, the dumbbell's "
                        "default; 0s: skip)")
    p.add_argument("--no-grid", action="store_true",
                   help="skip the grid of the backbone body alone (layers x tokens, ONNX Runtime)")
    p.add_argument("--quick", action="store_true", help="few epochs, no grid, no co-simulation")
    report.add_save_options(p, "docs/bench-inference.md")
    a = p.parse_args(argv)
    if a.quick:
        a.epochs, a.warmup, a.text_epochs = min(a.epochs, 10), min(a.warmup, 3), min(a.text_epochs, 1)
    if a.epochs < 1 or a.warmup < 0 or a.text_epochs < 0 or not 0 <= a.packets <= 32 or a.threads < 1:
        p.error("need --epochs >= 1, --warmup >= 0, --text-epochs >= 0, --packets 0..32, --threads >= 1")
    from aqm_llm.scenarios import parse_seconds

    if parse_seconds(a.cosim_duration) is None:
        p.error(f"bad value '{a.cosim_duration}' for --cosim-duration: expected a time such as 2s")
    if a.quick:
        a.cosim_duration = "0s"
    cfg = BenchConfig(backbone=a.backbone, checkpoint=a.checkpoint, epochs=a.epochs, warmup=a.warmup,
                      text_epochs=a.text_epochs, packets=a.packets, threads=a.threads, seed=a.seed,
                      omp_wait_policy=a.omp_wait_policy, cosim_duration=a.cosim_duration,
                      grid=not (a.no_grid or a.quick))
    save = report.save_path(a, "docs/bench-inference.md")
    return cfg, save


def cut_policy(cfg: BenchConfig) -> Any:
    """The policy of the agent's path in eager PyTorch: the checkpoint the agent would serve for
    this backbone (given, or the shipped one if trained on it), else an untrained policy."""
    from aqm_llm.agent.policy import LlmPolicy, resolve_checkpoint, untrained_config

    path = resolve_checkpoint(cfg.checkpoint, cfg.backbone)
    if path is not None:
        return LlmPolicy.load(path)
    return LlmPolicy(untrained_config(cfg.backbone))


def main(argv: list[str]) -> int:
    cfg, save = parse(argv)
    omp_note = ""
    if "torch" in sys.modules:  # too late to change OpenMP's wait policy in this process
        omp_note = " (torch was loaded before: the option had no effect)"
    elif cfg.omp_wait_policy == "default":
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = cfg.omp_wait_policy
    import torch

    from aqm_llm.agent.backbone import RANDOM_PREFIX, TransformerBackbone, load_backbone
    from aqm_llm.agent.backbone import load_causal_lm, load_tokenizer
    from aqm_llm.agent.layout import DEFAULT_LAYOUT, WIDE_LAYOUT
    from aqm_llm.agent.policy import LlmPolicy, PolicyConfig, make_llm_policy
    from aqm_llm.agent.runtime import onnxruntime_version
    from aqm_llm.agent.synthetic import random_request
    from aqm_llm.bench import techniques as T
    from aqm_llm.bench.cosim import measure_cosim
    from aqm_llm.bench.machine import machine_info
    from aqm_llm.bench.textgen import measure_text
    from aqm_llm.scenarios import parse_seconds

    torch.set_num_threads(cfg.threads)
    info = machine_info()
    info |= {"torch": torch.__version__, "ort": onnxruntime_version(),
             "omp": os.environ.get("OMP_WAIT_POLICY", "(unset: libgomp default)") + omp_note,
             "dense": DEFAULT_LAYOUT.describe(), "wide": WIDE_LAYOUT.describe()}
    command = "aqm-llm bench inference" + ("" if not argv else " " + shlex.join(argv))
    log = lambda m: print(f"bench inference: {m}", file=sys.stderr, flush=True)  # noqa: E731
    rng = np.random.default_rng(cfg.seed)
    requests = [random_request(rng, packets=cfg.packets, epoch=e) for e in range(cfg.warmup + cfg.epochs)]

    log(f"loading {cfg.backbone} ...")
    start = time.monotonic()
    lm = None
    lora = PolicyConfig().lora
    if cfg.backbone.startswith(RANDOM_PREFIX):
        full = load_backbone(cfg.backbone, lora=lora)
    else:
        lm = load_causal_lm(cfg.backbone)  # one model: the full-depth rows and the text baseline
        full = TransformerBackbone(lm.base_model, cfg.backbone)
        assert lora is not None
        full.apply_lora(lora)
    info |= {"backbone": f"{cfg.backbone} ({full.arch}, hidden {full.hidden_size})",
             "load_s": f"{time.monotonic() - start:.1f}"}
    cut = cut_policy(cfg)
    info["checkpoint"] = (f"{cut.source} ({cut.config.layers or 'all'} layers, {cut.layout.total} tokens)"
                          if cut.source else f"none: an untrained policy ({cut.config.layers or 'all'} layers)")
    rows: list[Row] = []
    with T.workdir() as tmp:
        work = Path(tmp)
        # Full depth: the first checkpoint's path, then the dense layout on it.
        log("full-depth rows ...")
        wide = LlmPolicy(PolicyConfig(backbone=cfg.backbone, layout=WIDE_LAYOUT), backbone=full)
        rows.append(measure("eager torch fp32, wide layout (before)", wide, requests, cfg, cfg.threads))
        del wide
        if cut.config.layers is not None:
            dense = LlmPolicy(PolicyConfig(backbone=cfg.backbone, layout=cut.layout), backbone=full)
            rows.append(measure("eager torch fp32, dense layout", dense, requests, cfg, cfg.threads))
            fast_full, _ = T.onnx_fp32(dense, work, cfg.threads)
            rows.append(measure("ONNX Runtime fp32, dense layout", fast_full, requests, cfg, cfg.threads))
            del dense, fast_full
        # The checkpoint's own network, every way.
        log("the checkpoint's network ...")
        recorder = T.RecordingNetwork(cut.network)
        reference = T.with_network(cut, recorder)
        rows.append(measure("eager torch fp32 (reference)", reference, requests, cfg, cfg.threads))
        inputs = recorder.inputs[:len(requests)]
        ref_net = cut.network
        fast, fp32_path = T.onnx_fp32(cut, work, cfg.threads)
        fast_1t = T.onnx_fp32_from(cut, fp32_path, 1)
        variants = [("eager torch fp32, LoRA merged", T.torch_merged(cut), cfg.threads),
                    ("eager torch, dynamic int8 Linear", T.torch_int8(cut), cfg.threads),
                    ("ONNX Runtime fp32, LoRA merged (agent)", fast, cfg.threads),
                    ("ONNX Runtime fp32, LoRA merged (agent)", fast_1t, 1),
                    ("ONNX Runtime int8 per channel", T.onnx_int8(cut, fp32_path, cfg.threads), cfg.threads)]
        agent_rows: list[Row] = []
        for name, policy, threads in variants:
            row = measure(name, policy, requests, cfg, threads)
            compare(row, policy.network, ref_net, inputs, cfg.packets)
            rows.append(row)
            if policy.network is fast.network or policy is fast_1t:
                agent_rows.append(row)
    if cut.source is not None and not cfg.backbone.startswith(RANDOM_PREFIX):
        t0 = time.monotonic()
        make_llm_policy(str(cut.source), runtime="onnx", threads=cfg.threads)  # builds the cache if missing
        t1 = time.monotonic()
        make_llm_policy(str(cut.source), runtime="onnx", threads=cfg.threads)
        info["agent_load"] = (f"loading the checkpoint for ONNX Runtime (make_llm_policy, in this process): "
                              f"{time.monotonic() - t1:.2f} s from the cache (first call, which builds "
                              f"the cache entry if it is missing: {t1 - t0:.1f} s)")
    del cut, reference, variants, fast, fast_1t
    grid_text = ""
    if cfg.grid:
        log("grid of the backbone body ...")
        total_layers = full.model.config.num_hidden_layers
        layer_counts = sorted({n for n in GRID_LAYERS if n < total_layers} | {total_layers})
        with T.workdir() as tmp:
            grid = T.body_grid(full, layer_counts, list(GRID_TOKENS), cfg.threads, GRID_RUNS, Path(tmp))
        grid_text = render_grid(grid, cfg.threads)
    if cfg.text_epochs and lm is not None:
        log("text generation ...")
        rows.append(measure_text(lm, load_tokenizer(cfg.backbone), cfg.packets, cfg.text_epochs, rng))
        rows[-1].layers, rows[-1].threads = "all", cfg.threads
    elif cfg.text_epochs:
        rows.append(Row("text generation + parsing", note="skipped: a random backbone has no tokenizer"))
    cosim = None
    if (parse_seconds(cfg.cosim_duration) or 0) > 0:
        del full, lm  # free this process's copies before the agent processes load theirs
        log("co-simulation ...")
        cosim = measure_cosim(cfg.cosim_duration, backbone=cfg.backbone, threads=cfg.threads)
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    agent, agent_1t = (agent_rows[0], agent_rows[1]) if len(agent_rows) == 2 else (None, None)
    text = render(rows, cfg, info, command, agent, agent_1t)
    if grid_text:
        text += "\n" + grid_text
    if cosim is not None:
        text += "\n" + cosim.render()
    return report.publish(text, save, save_section)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
