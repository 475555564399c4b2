"""``aqm-llm bench finetune``: data-driven LoRA against full fine-tuning of the same backbone.

Both modes train the policy exactly as ``aqm-llm train`` does (same config, batch size, real
batches of the config's experience pool, the same loss, AdamW with the config's learning-rate
schedule, gradient clipping), each in a fresh process so that its peak RSS is its own:

- ``lora``: the training policy itself (base weights frozen; encoder, head, LoRA train);
- ``full``: the same policy without LoRA and with the backbone's base weights trainable (all of
  them but the input embedding table, which the policy never uses: it feeds embeddings).

Per mode: warm-up steps, then timed steps (batch building, forward, loss, backward, clip,
optimizer step). Reported: trainable and total parameters, step time p50/mean, peak RSS of the
process (``getrusage``; loading the model counts), peak RSS while training (the kernel's high
-water mark reset once the model is built), the optimizer state (AdamW moments) and threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aqm_llm.bench import report
from aqm_llm.bench.machine import peak_rss_mb, status_mb
from aqm_llm.errors import ConfigError
from aqm_llm.training.config import TrainConfig, load_train_config

SECTION_BEGIN = "<!-- bench-finetune:begin -->"
SECTION_END = "<!-- bench-finetune:end -->"
MODES = ("lora", "full")
MANIFEST = "manifest.json"  # aqm_llm.training.pool.MANIFEST (not imported: it needs pyarrow)


@dataclass(frozen=True)
class BenchConfig:
    config: Path = Path("configs/train-default.yaml")
    steps: int = 10
    warmup_steps: int = 2
    batch_size: int | None = None  # None: the config's
    backbone: str | None = None  # None: the config's
    threads: int | None = None  # None: the config's (else torch's default)

    def args(self) -> list[str]:
        """Command-line arguments that give this config back (for the per-mode processes)."""
        out = ["--config", str(self.config), "--steps", str(self.steps),
               "--warmup-steps", str(self.warmup_steps)]
        for flag, value in (("--batch-size", self.batch_size), ("--backbone", self.backbone),
                            ("--threads", self.threads)):
            if value is not None:
                out += [flag, str(value)]
        return out


@dataclass
class ModeResult:
    mode: str
    trainable: int  # parameters with requires_grad
    total: int
    step_s: list[float]
    losses: list[float]
    peak_rss_mb: float  # whole process (getrusage), model loading included
    train_peak_mb: float | None  # high-water mark reset after building (None: not supported)
    optimizer_mb: float  # tensors in opt.state
    threads: int
    batch_size: int
    train_rows: int
    device: str
    backbone: str
    detail: str
    torch: str
    build_s: float

    @property
    def p50(self) -> float:
        return float(np.percentile(self.step_s, 50))

    @property
    def mean(self) -> float:
        return float(np.mean(self.step_s))


@dataclass
class Setup:
    """A policy ready to train as ``aqm-llm train`` would, with its data and optimizer."""

    cfg: TrainConfig
    mode: str
    policy: Any
    optimiser: Any  # training.trainer.Optimiser
    data: Any
    rtg: np.ndarray
    train_rows: np.ndarray
    device: str


# ---------------------------------------------------------------------------- config


def train_config(bench: BenchConfig) -> TrainConfig:
    """The training config with the benchmark's overrides; refused without its pools."""
    cfg = load_train_config(bench.config)
    if bench.backbone is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backbone=bench.backbone))
    if bench.batch_size is not None:
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, batch_size=bench.batch_size))
    if bench.threads is not None:
        cfg = dataclasses.replace(cfg, threads=bench.threads)
    if cfg.is_mlp:
        raise ConfigError(f"{cfg.source}: backbone 'mlp' has no LoRA nor base weights to fine-tune")
    for pool in cfg.pools:
        if not (pool / MANIFEST).is_file():
            raise ConfigError(f"{cfg.source}: experience pool {pool} is missing (no {pool / MANIFEST}): "
                              f"run `aqm-llm collect` for it first")
    return cfg


# ---------------------------------------------------------------------------- one mode


def base_weights(policy: Any) -> dict[str, Any]:
    """The backbone's own parameters (LoRA matrices excluded), by name."""
    return {n: p for n, p in policy.backbone.named_parameters() if "lora_" not in n}


def unfreeze_backbone(policy: Any) -> None:
    """Full fine-tuning: every base weight of the backbone trains, except the input embedding
    table, which gets no gradient (the policy passes embeddings, never token ids)."""
    from aqm_llm.agent.backbone import TransformerBackbone

    backbone = policy.backbone
    if not isinstance(backbone, TransformerBackbone) or backbone.lora is not None:
        raise ConfigError(f"backbone {backbone.spec}: full fine-tuning needs a transformer without LoRA")
    backbone.model.requires_grad_(True)
    backbone.model.get_input_embeddings().requires_grad_(False)


def build(cfg: TrainConfig, mode: str) -> Setup:
    """The training policy (``lora``) or the same without LoRA, backbone trainable (``full``),
    with the pool's training rows and the trainer's optimizer and schedule."""
    from aqm_llm.agent.policy import LlmPolicy
    from aqm_llm.training import dataset as D
    from aqm_llm.training.trainer import set_train_modes, make_optimiser, policy_config, prepare, resolve_device

    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {MODES}")
    device = resolve_device(cfg.device)
    prep = prepare(cfg)
    data = prep["data"]
    rtg = D.rtg_tokens(data, prep["ckpt_reward"], cfg.return_conditioning)
    train_rows, _ = D.split_episodes(data, cfg.validation.fraction, cfg.seed)
    if train_rows.shape[0] == 0:
        raise ConfigError("the pool has no training rows (no epoch with a known action)")
    pc = policy_config(cfg, prep["ckpt_reward"])
    if mode == "full":
        pc = dataclasses.replace(pc, lora=None)
    policy = LlmPolicy(pc)
    if mode == "full":
        unfreeze_backbone(policy)
    policy.model.to(device)
    set_train_modes(policy.model)
    return Setup(cfg, mode, policy, make_optimiser(policy.model, cfg, device), data, rtg, train_rows, device)


def train_step(s: Setup, step: int) -> float:
    """One training step as the trainer's loop does it; returns the loss."""
    import torch

    from aqm_llm.training import trainer

    rows = trainer.batch_rows(s.train_rows, step, s.cfg.optim.batch_size, s.cfg.seed)
    parts = trainer.train_step(s.policy.model, s.optimiser, s.data, rows, s.rtg, s.device, s.cfg)
    if s.device.startswith("cuda"):
        torch.cuda.synchronize()
    return float(parts["loss"])


def optimizer_bytes(opt: Any) -> int:
    import torch

    return sum(v.numel() * v.element_size() for state in opt.state.values()
               for v in state.values() if isinstance(v, torch.Tensor))


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _hwm_mb() -> float | None:
    return status_mb("VmHWM")


def _detail(s: Setup) -> str:
    from aqm_llm.agent.backbone import LORA_TARGETS

    bb = s.policy.backbone
    if s.mode == "lora":
        spec = bb.lora
        targets = spec.target_modules or LORA_TARGETS.get(bb.arch, ())
        return f"LoRA r={spec.r}, alpha={spec.alpha} on {', '.join(targets)}; base weights frozen"
    frozen = sum(p.numel() for p in s.policy.model.parameters() if not p.requires_grad)
    return f"no LoRA; all backbone weights train but the input embedding table ({frozen:,} frozen)"


def run_mode(cfg: TrainConfig, mode: str, steps: int, warmup: int) -> ModeResult:
    """Build ``mode``'s policy and time ``steps`` training steps after ``warmup`` untimed ones
    (in this process: its peak RSS is only that mode's in a fresh process)."""
    import torch

    prev_det, prev_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)  # as the trainer runs
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        start = time.monotonic()
        s = build(cfg, mode)
        build_s = time.monotonic() - start
        torch.manual_seed(cfg.seed)  # as the trainer does before its first step
        load_peak = peak_rss_mb()
        reset = _reset_peak_rss()
        times, losses = [], []
        for step in range(warmup + steps):
            t0 = time.perf_counter()
            loss = train_step(s, step)
            if step >= warmup:
                times.append(time.perf_counter() - t0)
                losses.append(loss)
        hwm = _hwm_mb() if reset else None
        return ModeResult(
            mode=mode, trainable=sum(p.numel() for p in s.optimiser.params),
            total=sum(p.numel() for p in s.policy.model.parameters()), step_s=times, losses=losses,
            peak_rss_mb=max(load_peak, peak_rss_mb()), train_peak_mb=hwm,
            optimizer_mb=optimizer_bytes(s.optimiser.opt) / 2**20, threads=torch.get_num_threads(),
            batch_size=cfg.optim.batch_size, train_rows=int(s.train_rows.shape[0]), device=s.device,
            backbone=f"{cfg.model.backbone} ({s.policy.backbone.arch}, hidden {s.policy.backbone.hidden_size})",
            detail=_detail(s), torch=torch.__version__, build_s=build_s)
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


def run_in_subprocess(bench: BenchConfig, mode: str) -> ModeResult:
    """``run_mode`` in a fresh interpreter; it prints its result as the last line of stdout."""
    cmd = [sys.executable, "-m", "aqm_llm.bench.finetune", "--worker", mode, *bench.args()]
    # As `aqm-llm train`: passive OpenMP waiting, so another busy process does not stall each step.
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ConfigError(f"bench finetune: the {mode} run failed (exit status {proc.returncode}; "
                          f"its messages are above)")
    return ModeResult(**json.loads(lines[-1]))


# ---------------------------------------------------------------------------- report


def render(results: list[ModeResult], bench: BenchConfig, info: dict[str, str], command: str) -> str:
    def peak(r: ModeResult) -> str:
        return f"{r.train_peak_mb:,.0f}" if r.train_peak_mb is not None else "-"

    header = ["mode", "trainable params", "total params", "step p50 s", "step mean s", "peak RSS MB",
              "train peak MB", "optimizer MB", "threads"]
    table = [[r.mode, f"{r.trainable:,}", f"{r.total:,}", f"{r.p50:.2f}", f"{r.mean:.2f}",
              f"{r.peak_rss_mb:,.0f}", peak(r), f"{r.optimizer_mb:,.1f}", str(r.threads)]
             for r in results]
    by = {r.mode: r for r in results}
    if "lora" in by and "full" in by:
        lo, fu = by["lora"], by["full"]
        def ratio(a: float | None, b: float | None) -> str:
            return f"{a / b:.1f}x" if a and b else "-"
        table.append(["full / LoRA", ratio(fu.trainable, lo.trainable), "", ratio(fu.p50, lo.p50),
                      ratio(fu.mean, lo.mean), ratio(fu.peak_rss_mb, lo.peak_rss_mb),
                      ratio(fu.train_peak_mb, lo.train_peak_mb), ratio(fu.optimizer_mb, lo.optimizer_mb), ""])
    widths = [max(len(line[i]) for line in [header] + table) for i in range(len(header))]
    def fmt(line: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths))).rstrip()
    first = results[0]
    out = [f"machine: {info['cpu']}; {info['os']}; torch {first.torch}, device {first.device}",
           f"load average (1/5/15 min) before: {info['load']}, after: {info['load_after']}",
           f"command: {command}",
           f"config: {bench.config} (pool {', '.join(info['pools'])}: {first.train_rows:,} training "
           f"rows); backbone {first.backbone}; batch {first.batch_size}; {bench.warmup_steps} warm-up "
           f"+ {bench.steps} timed steps per mode, each mode in a fresh process",
           "", fmt(header), fmt(["-" * w for w in widths])]
    out += [fmt(line) for line in table]
    out += [""] + [f"{r.mode}: {r.detail}; built in {r.build_s:.1f} s; loss over the timed steps "
                   f"{r.losses[0]:.4f} -> {r.losses[-1]:.4f}" for r in results]
    out += ["step: batch building, forward, loss, backward, gradient clipping, AdamW and schedule "
            "step, as `aqm-llm train` runs them.",
            "peak RSS: getrusage of the mode's process (loading the model included); train peak: "
            "the RSS high-water mark reset once the model was built; optimizer: AdamW's state "
            "tensors (two moments per trainable parameter)."]
    return "\n".join(out) + "\n"


def save_section(path: Path, text: str) -> None:
    report.save_section(
        path, text, SECTION_BEGIN, SECTION_END,
        "# Fine-tuning benchmark\n\n"
        "`aqm-llm bench finetune` measures, on the machine it runs on, data-driven LoRA against full\n"
        "fine-tuning of the same backbone, with the training config of the shipped checkpoint\n"
        "(`configs/train-default.yaml`: SmolLM2-135M, batch 16, pool `pools/default`):\n\n"
        "- **LoRA** (how `models/l4s-llm` is trained): the training policy itself, i.e. state encoder,\n"
        "  SmolLM2-135M with LoRA r=8 on q_proj/v_proj, L4S-LM head; the backbone's base weights frozen.\n"
        "- **Full fine-tuning**: the same policy without LoRA, every base weight of the backbone\n"
        "  trainable except the input embedding table, which the policy never uses (it feeds the\n"
        "  backbone embeddings, not token ids).\n\n"
        "Both run the training step of `aqm-llm train` (real batches of the config's experience pool,\n"
        "its loss, AdamW, learning-rate schedule and gradient clipping), each mode in a fresh process:\n"
        "warm-up steps, then timed steps. Reported per mode: trainable and total parameters, step time\n"
        "(p50, mean), peak RSS of the process (`getrusage`, loading the model included), the peak\n"
        "while training (the RSS high-water mark reset once the model is built), the size of AdamW's\n"
        "state and the torch threads; then the ratios full / LoRA. The machine is shared with other\n"
        "work: the load average is printed with the numbers. Regenerate with\n"
        "`aqm-llm bench finetune --save docs/bench-finetune.md` (`--steps N`, `--batch-size N`,\n"
        "`--backbone PATH`, `--config FILE`, `--quick` for a smoke run).\n\n")


# ---------------------------------------------------------------------------- entry point


def parse(argv: list[str]) -> tuple[BenchConfig, Path | None, str | None]:
    p = argparse.ArgumentParser(prog="aqm-llm bench finetune", description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=Path("configs/train-default.yaml"),
                   help="training config (its pool, model, batch size, optimizer)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per mode")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    p.add_argument("--backbone", default=None,
                   help="default: the config's ('smollm2', a local causal-LM path, random:<arch>)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the config's)")
    p.add_argument("--quick", action="store_true", help="few steps (a smoke test)")
    report.add_save_options(p, "docs/bench-finetune.md")
    p.add_argument("--worker", choices=MODES, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.warmup_steps = min(a.steps, 2), min(a.warmup_steps, 1)
    if a.steps < 1 or a.warmup_steps < 0 or (a.batch_size is not None and a.batch_size < 1) \
            or (a.threads is not None and a.threads < 1):
        p.error("need --steps >= 1, --warmup-steps >= 0, --batch-size >= 1, --threads >= 1")
    bench = BenchConfig(config=a.config, steps=a.steps, warmup_steps=a.warmup_steps,
                        batch_size=a.batch_size, backbone=a.backbone, threads=a.threads)
    save = report.save_path(a, "docs/bench-finetune.md")
    return bench, save, a.worker


def main(argv: list[str]) -> int:
    from aqm_llm.bench.machine import machine_info

    bench, save, worker = parse(argv)
    cfg = train_config(bench)
    if worker is not None:
        result = run_mode(cfg, worker, bench.steps, bench.warmup_steps)
        print(json.dumps(asdict(result)), flush=True)
        return 0
    info = machine_info() | {"pools": [str(p) for p in cfg.pools]}
    command = "aqm-llm bench finetune" + ("" if not argv else " " + shlex.join(argv))
    results = []
    for mode in MODES:
        print(f"bench finetune: {mode} ...", file=sys.stderr, flush=True)
        results.append(run_in_subprocess(bench, mode))
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = render(results, bench, info, command)
    return report.publish(text, save, save_section)


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except ConfigError as exc:
        print(f"aqm-llm: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
