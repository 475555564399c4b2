"""``aqm-llm bench inference``: per-epoch decision latency of the LLM agent.

Two ways for the same backbone to decide one epoch (random but valid requests, K packets):

1. the L4S-LM head (what the agent does): the full token layout (64 tokens with the
   defaults once the history is full), one forward pass, actions read off the head;
2. text generation (what the head replaces): a prompt describing the state and the K
   packets, greedy token-by-token generation, the answer parsed into forward/drop/mark per
   packet (unparsable answers count as invalid; the packet would be forwarded).

Reported: latency p50/p99 per epoch, tokens in/out, the share of valid answers, peak RSS
(``resource.getrusage``) after each phase. The text baseline reuses the loaded model (its
LoRA adapter is zero at initialisation, so it computes the plain backbone).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aqm_llm.bench import report

SECTION_BEGIN = "<!-- bench-inference:begin -->"
SECTION_END = "<!-- bench-inference:end -->"
ACTION_WORDS = ("forward", "drop", "mark")
ANSWER_RE = re.compile(r"(\d+)\s*[:.)\-]\s*(forward|drop|mark)\b", re.I)


@dataclass(frozen=True)
class BenchConfig:
    backbone: str = "smollm2"
    epochs: int = 200
    warmup: int = 20
    text_epochs: int = 5
    packets: int = 16
    threads: int = 2
    seed: int = 1
    omp_wait_policy: str = "PASSIVE"
    cosim_duration: str = "2s"


@dataclass
class Row:
    method: str
    latencies_ms: list[float] = field(default_factory=list)
    tokens_in: list[int] = field(default_factory=list)
    tokens_out: list[int] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    rss_mb: float = 0.0  # peak (getrusage) after the phase
    rss_now_mb: float = 0.0  # resident after the phase
    load_s: float = 0.0
    note: str = ""

    def cells(self) -> list[str]:
        lat = np.asarray(self.latencies_ms)
        def pct(q: float) -> str:
            return f"{np.percentile(lat, q):,.1f}" if lat.size else "-"
        def mean(xs: list[int]) -> str:
            return f"{np.mean(xs):.0f}" if xs else "-"
        valid = f"{100 * np.mean(self.valid):.0f} %" if self.valid else "-"
        return [self.method, mean(self.tokens_in), mean(self.tokens_out), pct(50), pct(99),
                str(lat.size), valid, f"{self.rss_mb:,.0f}" if self.rss_mb else "-",
                f"{self.rss_now_mb:,.0f}" if self.rss_now_mb else "-"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


# ---------------------------------------------------------------------------- the head


def measure_head(policy: Any, cfg: BenchConfig, rng: np.random.Generator) -> Row:
    from aqm_llm.agent.interface import RunInfo
    from aqm_llm.agent.synthetic import random_request

    row = Row("L4S-LM head: 1 forward pass")
    policy.reset(RunInfo(seed=cfg.seed))
    layout = policy.layout
    for epoch in range(cfg.warmup + cfg.epochs):
        request = random_request(rng, packets=cfg.packets, epoch=epoch)
        start = time.perf_counter()
        decision = policy.decide(request)
        elapsed = time.perf_counter() - start
        if epoch < cfg.warmup:
            continue
        row.latencies_ms.append(elapsed * 1e3)
        row.tokens_in.append(layout.present_tokens(cfg.packets, epoch))
        row.tokens_out.append(0)
        row.valid.append(decision.problem(request) is None)
    row.rss_mb, row.rss_now_mb = peak_rss_mb(), current_rss_mb()
    return row


# ---------------------------------------------------------------------------- text baseline


def describe_request(request: Any) -> str:
    """The state as a prompt: the information the encoder gets, in words."""
    from aqm_llm.bridge import Scalar, Series

    s = request.series
    def row(i: int, scale: float, fmt: str) -> str:
        return " ".join(format(v * scale, fmt) for v in s[i]) if i < s.shape[0] else "n/a"
    sc = request.scalars
    lines = [
        f"Decision epoch {request.epoch} of a dual-queue L4S bottleneck (16 ms per interval, oldest first).",
        f"L queue sojourn ms: {row(Series.L_SOJOURN, 1e3, '.2f')}",
        f"C queue sojourn ms: {row(Series.C_SOJOURN, 1e3, '.2f')}",
        f"Queue KB: {row(Series.QUEUE_BYTES, 1e-3, '.0f')}",
        f"Arrival Mb/s: {row(Series.ARRIVAL_RATE, 1e-6, '.0f')}",
        f"Departure Mb/s: {row(Series.DEPARTURE_RATE, 1e-6, '.0f')}",
        f"CE marks: {row(Series.MARKS, 1, '.0f')}",
        f"Drops: {row(Series.DROPS, 1, '.0f')}",
        f"Capacity Mb/s: {row(Series.CAPACITY, 1e-6, '.0f')}",
        f"Burst allowance {sc[Scalar.BURST_ALLOWANCE] * 1e3:.1f} ms; p'={sc[Scalar.P_PRIME]:.3f} "
        f"p_L={sc[Scalar.P_L]:.3f} p_C={sc[Scalar.P_C]:.3f}.",
        "Head-of-queue packets:",
    ]
    ecn_names = ("Not-ECT", "ECT(1)", "ECT(0)", "CE")
    for i, p in enumerate(request.packets, start=1):
        cls = "L" if p["traffic_class"] == 0 else "C"
        lines.append(f"{i}. class {cls}, {int(p['size_bytes'])} B, sojourn "
                     f"{p['sojourn_s'] * 1e3:.2f} ms, {ecn_names[int(p['ecn'])]}, flow {int(p['flow_hash'])}")
    lines.append("For every packet answer forward, drop or mark, one line per packet and nothing "
                 "else, e.g. for three packets:\n1: forward\n2: mark\n3: drop")
    return "\n".join(lines)


def parse_answer(text: str, packets: int) -> tuple[list[int], bool]:
    """Action codes parsed from a generated answer; unparsed packets are forwarded.
    Valid only if every packet got exactly one action."""
    codes: dict[int, int] = {}
    duplicate = False
    for m in ANSWER_RE.finditer(text):
        i = int(m.group(1))
        if 1 <= i <= packets:
            duplicate |= i in codes
            codes[i] = ACTION_WORDS.index(m.group(2).lower())
    return [codes.get(i, 0) for i in range(1, packets + 1)], len(codes) == packets and not duplicate


def measure_text(lm: Any, tokenizer: Any, cfg: BenchConfig, rng: np.random.Generator) -> Row:
    import torch

    from aqm_llm.agent.synthetic import random_request

    row = Row("text generation + parsing")
    max_new = 6 * cfg.packets  # "12: forward\n" is about 5 tokens
    for epoch in range(cfg.text_epochs):
        request = random_request(rng, packets=cfg.packets, epoch=epoch)
        messages = [{"role": "system", "content": "You are the active queue management controller "
                     "of a router. Answer only in the requested format."},
                    {"role": "user", "content": describe_request(request)}]
        start = time.perf_counter()
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = lm.generate(**ids, max_new_tokens=max_new, do_sample=False,
                              pad_token_id=tokenizer.eos_token_id)
        new = out[0, ids["input_ids"].shape[1]:]
        answer = tokenizer.decode(new, skip_special_tokens=True)
        _, valid = parse_answer(answer, cfg.packets)
        row.latencies_ms.append((time.perf_counter() - start) * 1e3)
        row.tokens_in.append(int(ids["input_ids"].shape[1]))
        row.tokens_out.append(int(new.shape[0]))
        row.valid.append(valid)
        if epoch == 0:
            row.note = "first answer: " + " | ".join(answer.strip().splitlines()[:4])[:160]
    row.rss_mb, row.rss_now_mb = peak_rss_mb(), current_rss_mb()
    return row


# ---------------------------------------------------------------------------- report


def render(rows: list[Row], cfg: BenchConfig, info: dict[str, str], command: str,
           policy_tokens: int) -> str:
    header = ["method", "tokens in", "tokens out", "p50 ms", "p99 ms", "epochs", "valid",
              "peak RSS MB", "RSS MB"]
    table = [header] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    def fmt(line: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths))).rstrip()
    out = [f"machine: {info['cpu']}; {info['os']}; torch {info['torch']}, "
           f"{cfg.threads} threads, OMP_WAIT_POLICY={info['omp']}",
           f"load average (1/5/15 min) before: {info['load']}, after: {info['load_after']}",
           f"command: {command}",
           f"backbone: {info['backbone']} (loaded in {info['load_s']} s); layout: {info['layout']}",
           "", fmt(header), fmt(["-" * w for w in widths])]
    out += [fmt(line) for line in table[1:]]
    out += ["",
            f"Per-epoch latency: the head row times LlmPolicy.decide (validation, features, "
            f"one forward pass, action selection) over {cfg.epochs} epochs after {cfg.warmup} "
            f"warm-up (tokens in: mean tokens with content, {policy_tokens} once the history is "
            f"full); the text row times prompt "
            f"building, tokenisation, greedy generation (at most {6 * cfg.packets} new tokens) "
            f"and parsing over {cfg.text_epochs} epochs, {cfg.packets} packets each.",
            "valid: share of epochs whose output gave every packet exactly one action.",
            "peak RSS: getrusage after the phase (cumulative: loading the GGUF and de-quantising "
            "it sets the peak); RSS: resident after the phase."]
    out += [f"note ({r.method}): {r.note}" for r in rows if r.note]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class CosimResult:
    duration: str
    llm_wall_s: float       # the simulation loop of the l4s-llm run (agent start-up excluded)
    agent_compute_s: float  # decisions x mean decision latency, as the agent server timed them
    decisions: int
    dualpi2_wall_s: float
    fallbacks: int

    def render(self) -> str:
        overhead = self.llm_wall_s - self.agent_compute_s
        return "\n".join([
            f"co-simulation overhead: dumbbell (defaults), {self.duration} simulated, l4s-llm with the "
            f"agent above vs dualpi2, one run each",
            f"  l4s-llm simulation wall time      {self.llm_wall_s:8.2f} s  ({self.decisions} decisions, "
            f"{self.fallbacks} fallbacks)",
            f"  less the agent's compute          {self.agent_compute_s:8.2f} s",
            f"  = simulation + bridge + waiting   {overhead:8.2f} s",
            f"  dualpi2 simulation wall time      {self.dualpi2_wall_s:8.2f} s",
            f"  co-simulation overhead            {overhead - self.dualpi2_wall_s:8.2f} s "
            f"({(overhead - self.dualpi2_wall_s) / max(self.decisions, 1) * 1e3:.2f} ms per epoch)",
            f"  wall s per simulated s            {self.llm_wall_s / self.sim_s:8.2f}    "
            f"(dualpi2: {self.dualpi2_wall_s / self.sim_s:.2f})",
        ]) + "\n"

    @property
    def sim_s(self) -> float:
        from aqm_llm.scenarios import parse_seconds

        return parse_seconds(self.duration) or 1.0


def measure_cosim(cfg: BenchConfig, duration: str) -> CosimResult:
    import tempfile

    import aqm_llm
    from aqm_llm.runner import AgentSpec

    params = {"duration": duration, "warmup": "0.5s"}
    with tempfile.TemporaryDirectory() as tmp:
        llm = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=cfg.seed, params=params, output_dir=tmp,
                          agent=AgentSpec(agent="llm", backbone=cfg.backbone, threads=cfg.threads))
        base = aqm_llm.run("dumbbell", qdisc="dualpi2", seed=cfg.seed, params=params, output_dir=tmp)
    stats = llm.get("agent", {})
    decisions = int(stats.get("decisions", 0))
    compute = decisions * float(stats.get("latency_ms", {}).get("mean", 0.0)) / 1e3
    return CosimResult(duration, float(llm["wall_time_s"]), compute, decisions,
                       float(base["wall_time_s"]), int(llm.get("fallbacks", 0)))


def save_section(path: Path, text: str) -> None:
    report.save_section(
        path, text, SECTION_BEGIN, SECTION_END,
        "# Inference benchmark\n\n"
        "`aqm-llm bench inference` measures how long the LLM agent takes to decide one epoch:\n"
        "the L4S-LM head (one forward pass over the token layout) beside the same backbone\n"
        "deciding by generating a textual answer token by token and parsing it. The machine is\n"
        "shared: the load average is printed; regenerate with\n"
        "`aqm-llm bench inference --save docs/bench-inference.md`.\n\n")


# ---------------------------------------------------------------------------- entry point


def parse(argv: list[str]) -> tuple[BenchConfig, Path | None]:
    p = argparse.ArgumentParser(prog="aqm-llm bench inference", description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="smollm2",
                   help="'smollm2' (default), a local causal-LM path, or random:<arch> (smoke test)")
    p.add_argument("--epochs", type=int, default=200, help="timed epochs of the head")
    p.add_argument("--warmup", type=int, default=20, help="untimed epochs first (fills the history)")
    p.add_argument("--text-epochs", type=int, default=5,
                   help="epochs of the text-generation baseline (0: skip)")
    p.add_argument("--packets", type=int, default=16, help="packets per request")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--omp-wait-policy", choices=("PASSIVE", "ACTIVE", "default"), default="PASSIVE",
                   help="OpenMP workers' wait policy (PASSIVE, as the agent server runs; "
                        "'default': libgomp's own, spinning a while)")
    p.add_argument("--cosim-duration", default="2s",
                   help="simulated time of the co-simulation overhead runs (0s: skip)")
    p.add_argument("--quick", action="store_true", help="few epochs (a smoke test)")
    p.add_argument("--save", type=Path, default=None,
                   help="write the output into a section of this Markdown file "
                        "(default: docs/bench-inference.md if ./docs exists)")
    p.add_argument("--no-save", action="store_true")
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
    cfg = BenchConfig(backbone=a.backbone, epochs=a.epochs, warmup=a.warmup,
                      text_epochs=a.text_epochs, packets=a.packets, threads=a.threads, seed=a.seed,
                      omp_wait_policy=a.omp_wait_policy, cosim_duration=a.cosim_duration)
    save = None if a.no_save else (a.save or (Path("docs/bench-inference.md")
                                              if Path("docs").is_dir() else None))
    return cfg, save


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
    from aqm_llm.agent.policy import LlmPolicy, PolicyConfig
    from aqm_llm.bench.machine import machine_info
    from aqm_llm.scenarios import parse_seconds

    torch.set_num_threads(cfg.threads)
    info = machine_info()
    info |= {"torch": torch.__version__,
             "omp": os.environ.get("OMP_WAIT_POLICY", "(unset: libgomp default)") + omp_note}
    command = "aqm-llm bench inference" + ("" if not argv else " " + shlex.join(argv))
    config = PolicyConfig(backbone=cfg.backbone)
    print(f"bench inference: loading {cfg.backbone} ...", file=sys.stderr, flush=True)
    start = time.monotonic()
    lm = None
    if cfg.backbone.startswith(RANDOM_PREFIX):
        backbone = load_backbone(cfg.backbone, lora=config.lora)
    else:
        lm = load_causal_lm(cfg.backbone)  # one model: the head and the text baseline share it
        backbone = TransformerBackbone(lm.base_model, cfg.backbone)
        assert config.lora is not None
        backbone.apply_lora(config.lora)
    policy = LlmPolicy(config, backbone=backbone)
    info |= {"backbone": f"{cfg.backbone} ({backbone.arch}, hidden {backbone.hidden_size})",
             "load_s": f"{time.monotonic() - start:.1f}", "layout": policy.layout.describe()}
    rng = np.random.default_rng(cfg.seed)
    print("bench inference: L4S-LM head ...", file=sys.stderr, flush=True)
    rows = [measure_head(policy, cfg, rng)]
    if cfg.text_epochs and lm is not None:
        print("bench inference: text generation ...", file=sys.stderr, flush=True)
        rows.append(measure_text(lm, load_tokenizer(cfg.backbone), cfg, rng))
    elif cfg.text_epochs:
        rows.append(Row("text generation + parsing", note="skipped: a random backbone has no tokenizer"))
    layout_tokens = policy.layout.present_tokens(cfg.packets, policy.layout.history)
    cosim = None
    if (parse_seconds(cfg.cosim_duration) or 0) > 0:
        del policy, backbone, lm  # free this process's copy before the agent process loads its own
        print("bench inference: co-simulation overhead ...", file=sys.stderr, flush=True)
        cosim = measure_cosim(cfg, cfg.cosim_duration)
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = render(rows, cfg, info, command, layout_tokens)
    if cosim is not None:
        text += "\n" + cosim.render()
    print(text, end="")
    if save is not None:
        save_section(save, text)
        print(f"saved to {save}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
