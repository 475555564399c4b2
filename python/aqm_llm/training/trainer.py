"""``aqm-llm train``: data-driven LoRA (NetLLM's DD-LRNA) on an experience pool.

Model: the agent's own :class:`~aqm_llm.agent.policy.LlmPolicy` (state encoder -> backbone
with LoRA -> L4S-LM head) in its token layout; the backbone's base weights stay frozen, the
encoder, the head and the LoRA matrices train (the MLP ablation trains its MLP instead of
LoRA). Objective per batch (docs/training.md)::

    L = w_a * CE_w(packet logits, acting controller's packet actions)
      + w_p * CE_lv(epoch logits, acting controller's (p_L mark, p_C drop, p_C mark))
      + w_d * [ CE_w(packet logits, best teacher's packet actions)
                + w_p * CE_lv(epoch logits, best teacher's probabilities) ]

CE_w: class-weighted cross-entropy averaged over the packet tokens of the batch; CE_lv: the
cross-entropy of each epoch probability's logits over the log-spaced levels (``agent.levels``)
against the two-hot target of the controller's probability, averaged over the batch and the three; inputs conditioned on the hindsight return-to-go
(or on 0 for behaviour cloning); "best teacher": per scenario family, see ``dataset``.

Output directory::

    checkpoint/   the trained policy (LlmPolicy.save format: config.json, policy.safetensors,
                  adapter/) -- ``aqm-llm run ... --qdisc l4s-llm --checkpoint DIR/checkpoint``
    last/         resume state: the policy files + trainer_state.pt (optimizer, scheduler,
                  RNG states, step, data order, loss log, config identity)
    losses.csv, losses.png, train-config.json, pool-summary.json

Deterministic for a seed: initial weights from ``seed`` (PolicyConfig.init_seed), the batch of
step s from a permutation seeded by (seed, s // batches_per_epoch), deterministic torch
algorithms where available; resuming from ``last/`` continues the same sequence.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from aqm_llm.errors import ConfigError
from aqm_llm.progress import LineClock
from aqm_llm.training.config import TrainConfig, load_train_config, to_dict

STATE_FILE = "trainer_state.pt"
BC_RTG_SCALE = 1e30  # behaviour cloning: the online RTG token (RTG / scale) is ~0, as in training
CSV_COLUMNS = ("step", "phase", "loss", "action_ce", "probs_ce", "distill_ce", "distill_probs_ce",
               "action_acc", "lr", "elapsed_s")


@dataclass
class TrainResult:
    output: Path
    checkpoint: Path | None  # None when stopped early (stop_after)
    step: int
    finished: bool
    log: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------ setup


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name}: no CUDA device available")
    return name


def pool_identity(manifests: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for m in manifests:
        for run in m["runs"]:
            h.update(f"{run['run_id']}:{run['record_sha256']};".encode())
        h.update(json.dumps(m.get("reward"), sort_keys=True).encode())
    return h.hexdigest()[:16]


def load_pools(cfg: TrainConfig) -> tuple[Any, list[str], list[dict[str, Any]]]:
    import pyarrow as pa

    from aqm_llm.training.pool import load_pool

    tables, manifests, teachers = [], [], None
    for p in cfg.pools:
        table, manifest = load_pool(p)
        if teachers is None:
            teachers = manifest["teachers"]
        elif manifest["teachers"] != teachers:
            raise ConfigError(f"{p}: teachers {manifest['teachers']} differ from the first pool's {teachers}")
        tables.append(table)
        manifests.append(manifest)
    return pa.concat_tables(tables), list(teachers or []), manifests


def reward_config(cfg: TrainConfig, manifests: list[dict[str, Any]]) -> Any:
    from aqm_llm.agent.reward import RewardConfig

    weights = cfg.reward if cfg.reward is not None else manifests[0]["reward"]
    for m in manifests[1:]:
        if cfg.reward is None and m["reward"] != weights:
            raise ConfigError("the pools were collected with different reward weights: set `reward` in the "
                              "training config")
    return RewardConfig(**weights)


def policy_config(cfg: TrainConfig, reward: Any) -> Any:
    from aqm_llm.agent.backbone import LoraSpec
    from aqm_llm.agent.encoder import EncoderConfig
    from aqm_llm.agent.policy import PolicyConfig

    m = cfg.model
    lora = None if cfg.is_mlp else LoraSpec(r=m.lora_r, alpha=m.lora_alpha, dropout=m.lora_dropout,
                                            target_modules=m.lora_targets)
    return PolicyConfig(backbone=m.backbone, layers=None if cfg.is_mlp else m.layers, layout=m.layout(),
                        encoder=EncoderConfig(conv_channels=m.conv_channels, conv_kernel=m.conv_kernel),
                        lora=lora, reward=reward, sample=False, init_seed=cfg.seed,
                        p_prime_band=cfg.p_prime_band, p_prime_form=cfg.p_prime_form,
                        epoch_output=cfg.epoch_output, queue_disc=dict(cfg.queue_disc))


# ------------------------------------------------------------------------ data order and loss


def batch_rows(train_rows: np.ndarray, step: int, batch: int, seed: int) -> np.ndarray:
    """The rows of step ``step``: consecutive slices of a permutation seeded by
    (seed, data epoch); a data epoch is len(train_rows) // batch steps."""
    n = train_rows.shape[0]
    per_epoch = max(1, n // batch)
    epoch, i = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return train_rows[perm[i * batch:(i + 1) * batch]]


def epoch_targets(probs: np.ndarray, references: np.ndarray, epoch_output: str) -> np.ndarray:
    """(B, 3, levels) soft targets of the epoch head for decisions ``probs`` (B, 3), in the
    output's own terms: the probabilities on their levels, or their factors on DualPI2's
    (``references`` (B, 2): the request's p' and p_L; agent.factor)."""
    from aqm_llm.agent.factor import FACTOR, to_factors
    from aqm_llm.agent.levels import FACTORS, soft_targets

    if epoch_output == FACTOR:
        return FACTORS.soft_targets(to_factors(probs, references[:, 0], references[:, 1]))
    return soft_targets(probs)


def _tensors(data: Any, rows: np.ndarray, rtg: np.ndarray, device: str,
             epoch_output: str) -> tuple[Any, dict[str, Any]]:
    import torch

    from aqm_llm.agent.encoder import TensorInputs
    from aqm_llm.agent.layout import ModelInputs
    from aqm_llm.training.dataset import IGNORE, batch_arrays

    x = TensorInputs.from_numpy(ModelInputs(**batch_arrays(data, rows, rtg)), device=device)
    dist_act = data.dist_act[rows].copy()
    dist_act[~data.dist_valid[rows]] = IGNORE
    refs = data.references[rows]
    tgt = {"act": torch.from_numpy(data.act[rows]).to(device),
           "probs": torch.from_numpy(epoch_targets(data.probs[rows], refs, epoch_output)).to(device),
           "dist_act": torch.from_numpy(dist_act).to(device),
           "dist_probs": torch.from_numpy(epoch_targets(data.dist_probs[rows], refs, epoch_output)).to(device),
           "dist_valid": torch.from_numpy(data.dist_valid[rows]).to(device)}
    return x, tgt


def compute_loss(out: Any, tgt: dict[str, Any], cfg: TrainConfig, class_weights: Any) -> tuple[Any, dict[str, float]]:
    """The training objective (module docstring) and its parts as floats."""
    import torch
    import torch.nn.functional as Fn

    from aqm_llm.training.dataset import IGNORE

    logits = out.packet_logits.reshape(-1, out.packet_logits.shape[-1])
    zero = logits.sum() * 0.0

    def ce(target: Any) -> Any:
        t = target.reshape(-1)
        if not bool((t != IGNORE).any()):
            return zero
        return Fn.cross_entropy(logits, t, weight=class_weights, ignore_index=IGNORE)

    def level_ce(target: Any, rows: Any | None = None) -> Any:
        """Cross-entropy of the epoch logits over the probability levels against soft targets
        (``agent.levels.soft_targets``), mean over batch x 3."""
        z = out.epoch_logits if rows is None else out.epoch_logits[rows]
        if z.shape[0] == 0:
            return zero
        t = target if rows is None else target[rows]
        return -(t * Fn.log_softmax(z, dim=-1)).sum(-1).mean()

    a_ce, p_ce = ce(tgt["act"]), level_ce(tgt["probs"])
    d_ce, d_pce = ce(tgt["dist_act"]), level_ce(tgt["dist_probs"], tgt["dist_valid"])
    w = cfg.loss
    total = w.action * a_ce + w.probs * p_ce + w.distill * (d_ce + w.probs * d_pce)
    with torch.no_grad():
        t = tgt["act"].reshape(-1)
        keep = t != IGNORE
        acc = float((logits.argmax(-1)[keep] == t[keep]).float().mean()) if bool(keep.any()) else float("nan")
    parts = {"loss": float(total.detach()), "action_ce": float(a_ce.detach()), "probs_ce": float(p_ce.detach()),
             "distill_ce": float(d_ce.detach()), "distill_probs_ce": float(d_pce.detach()), "action_acc": acc}
    return total, parts


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio."""
    o = cfg.optim
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    span = max(1, o.steps - o.warmup_steps)
    progress = min(1.0, (step - o.warmup_steps) / span)
    return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class Optimiser:
    """What a training run steps: the trainable parameters, AdamW, the learning-rate schedule and
    the action class weights."""

    params: list[Any]
    opt: Any
    sched: Any
    class_weights: Any


def make_optimiser(model: Any, cfg: TrainConfig, device: str) -> Optimiser:
    import torch

    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    weights = torch.tensor(cfg.loss.class_weights, dtype=torch.float32, device=device)
    return Optimiser(params, opt, sched, weights)


def train_step(model: Any, optimiser: Optimiser, data: Any, rows: np.ndarray, rtg: np.ndarray, device: str,
               cfg: TrainConfig) -> dict[str, float]:
    """One step on ``rows``: forward, loss, backward, gradient clipping, AdamW and schedule step;
    returns the loss and its parts."""
    import torch

    x, tgt = _tensors(data, rows, rtg, device, cfg.epoch_output)
    loss, parts = compute_loss(model(x), tgt, cfg, optimiser.class_weights)
    optimiser.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(optimiser.params, cfg.optim.grad_clip)
    optimiser.opt.step()
    optimiser.sched.step()
    return parts


# ------------------------------------------------------------------------ state


def set_train_modes(model: Any) -> None:
    """Frozen backbone (and everything else) in eval mode (no dropout); only LoRA dropout,
    if any, trains."""
    model.eval()
    for name, module in model.named_modules():
        if name.endswith("lora_dropout") or ".lora_dropout." in name:
            module.train()


def _save_policy(policy: Any, directory: Path, metadata: dict[str, Any], device: str) -> None:
    if device != "cpu":
        policy.model.to("cpu")
    try:
        policy.save(directory, trained=True, metadata=metadata)
    finally:
        if device != "cpu":
            policy.model.to(device)


def _save_state(out: Path, policy: Any, metadata: dict[str, Any], device: str, state: dict[str, Any]) -> None:
    import torch

    last, tmp, old = out / "last", out / "last.tmp", out / "last.old"
    shutil.rmtree(tmp, ignore_errors=True)
    _save_policy(policy, tmp, metadata, device)
    torch.save(state, tmp / STATE_FILE)
    if last.exists():
        shutil.rmtree(old, ignore_errors=True)
        last.rename(old)
    tmp.rename(last)
    shutil.rmtree(old, ignore_errors=True)


def _find_state(out: Path) -> Path | None:
    shutil.rmtree(out / "last.tmp", ignore_errors=True)
    for d in (out / "last", out / "last.old"):  # last.old: killed between the two renames
        if (d / STATE_FILE).is_file():
            return d
    return None


def _write_log(out: Path, log: list[dict[str, Any]]) -> None:
    path = out / "losses.csv"
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for row in log:
            w.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
    tmp.replace(path)


def plot_losses(out: Path, log: list[dict[str, Any]]) -> Path | None:
    if not log:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for phase, style in (("train", "-"), ("val", "o--")):
        rows = [r for r in log if r["phase"] == phase]
        if rows:
            axes[0].plot([r["step"] for r in rows], [r["loss"] for r in rows], style, label=phase)
    axes[0].set(xlabel="step", ylabel="loss", title="total loss")
    axes[0].legend()
    train = [r for r in log if r["phase"] == "train"]
    for key in ("action_ce", "probs_ce", "distill_ce", "distill_probs_ce"):
        axes[1].plot([r["step"] for r in train], [r[key] for r in train], label=key)
    axes[1].set(xlabel="step", title="terms (train)")
    axes[1].set_yscale("log")
    axes[1].legend()
    fig.tight_layout()
    path = out / "losses.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------ train


def train(config: TrainConfig | str | Path, *, resume: bool = True, progress: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Train (or resume) per ``config``; returns where the checkpoint went.

    ``resume``: continue from ``<output>/last`` when it exists (refused if it was written under a
    different config or pool); False starts over. ``stop_after``: stop (with the resume state
    saved) once this many steps are done in total, as an interruption would (tests).
    """
    import torch

    cfg = config if isinstance(config, TrainConfig) else load_train_config(config)
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_threads = torch.get_num_threads()
    device = resolve_device(cfg.device)
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        return _train(cfg, device, resume=resume, progress=progress, stop_after=stop_after)
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


def prepare(cfg: TrainConfig) -> dict[str, Any]:
    """Load the pools and make the pool-level choices (families, best teachers, targets)."""
    from aqm_llm.agent.reward import reward_weights
    from aqm_llm.training import dataset as D

    table, teachers, manifests = load_pools(cfg)
    reward = reward_config(cfg, manifests)
    layout = cfg.model.layout()
    data = D.build_pool_data(table, teachers, layout, reward, family_keys=cfg.families)
    best = D.best_teachers(data, after_warmup=cfg.rank_after_warmup)
    if cfg.distill_teacher is not None:
        best = D.fixed_teacher(data, best, cfg.distill_teacher)
    D.set_distillation_targets(data, best)
    if cfg.distill_teacher is not None:
        D.imitate_distillation_targets(data)
    targets = D.target_returns(data, cfg.target.quantile, cfg.target.eval_epochs)
    family = cfg.target.family or D.ALL_FAMILIES
    if family not in targets:
        raise ConfigError(f"target.family '{family}' is not in the pool; families: "
                          f"{', '.join(sorted(targets))}")
    # per_epoch targets a mean reward per epoch; sum a return over the family's run length.
    rule_target = targets[family]["per_epoch" if cfg.rtg_mode == "per_epoch" else "target_return"]
    target_return = cfg.target.value if cfg.target.value is not None else rule_target
    rtg_offset, default_scale = D.rtg_normalisation(data, cfg.rtg_mode, target_return, cfg.rtg_norm)
    rtg_scale = cfg.rtg_scale or default_scale
    if cfg.return_conditioning:
        ckpt_reward = dataclasses.replace(reward, target_return=float(target_return), rtg_scale=float(rtg_scale),
                                          rtg_mode=cfg.rtg_mode, rtg_offset=rtg_offset, rtg_norm=cfg.rtg_norm)
    else:
        ckpt_reward = dataclasses.replace(reward, target_return=0.0, rtg_scale=BC_RTG_SCALE)
    from aqm_llm.training.picks import picks_against_reference

    picks = picks_against_reference(data, best, manifests)
    per_family_returns = {}
    for fam, eps in D.families(data).items():
        per_family_returns[fam] = [[round(ep.per_epoch, 6), ep.epochs] for ep in eps]
    summary = {
        "pools": [str(p) for p in cfg.pools], "pool_names": [m.get("name") for m in manifests],
        "pool_identity": pool_identity(manifests), "teachers": teachers,
        "episodes": len(data.episodes), "epochs": data.rows,
        "reward": reward_weights(reward),
        "families": cfg.families, "rank_after_warmup": cfg.rank_after_warmup, "best_teachers": best,
        "picks_against_reference": picks, "targets": targets,
        "target_rule": {"quantile": cfg.target.quantile, "eval_epochs": cfg.target.eval_epochs,
                        "family": family, "value": cfg.target.value,
                        "rule": "quantile of per-epoch episode returns (G/N) in the family x eval_epochs "
                                "(default: the family's median episode length)"},
        "target_return": float(target_return) if cfg.return_conditioning else None,
        "rtg_scale": float(rtg_scale) if cfg.return_conditioning else None,
        "rtg_mode": cfg.rtg_mode, "rtg_offset": rtg_offset if cfg.return_conditioning else None,
        "rtg_norm": cfg.rtg_norm,
        "episode_returns": per_family_returns,
    }
    return {"data": data, "reward": reward, "ckpt_reward": ckpt_reward, "rtg_scale": rtg_scale,
            "rtg_offset": rtg_offset,
            "summary": summary, "manifests": manifests}


def _train(cfg: TrainConfig, device: str, *, resume: bool, progress: bool,
           stop_after: int | None) -> TrainResult:
    import torch
    from tqdm import tqdm

    from aqm_llm.agent.backbone import backbone_sha256
    from aqm_llm.agent.policy import LlmPolicy
    from aqm_llm.training import dataset as D

    out = cfg.output
    out.mkdir(parents=True, exist_ok=True)
    prep = prepare(cfg)
    data, summary = prep["data"], prep["summary"]
    identity = {"config": cfg.identity(), "pool": summary["pool_identity"]}
    identity_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    (out / "train-config.json").write_text(json.dumps({"config": to_dict(cfg), "identity": identity_hash},
                                                      indent=1) + "\n")
    (out / "pool-summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    rtg = D.rtg_tokens(data, prep["ckpt_reward"], cfg.return_conditioning)
    train_rows, val_rows = D.split_episodes(data, cfg.validation.fraction, cfg.seed)
    if train_rows.shape[0] == 0:
        raise ConfigError("the pool has no training rows (no epoch with a known action)")
    o = cfg.optim
    val_batches = [val_rows[i:i + o.batch_size] for i in range(0, val_rows.shape[0], o.batch_size)]
    val_batches = val_batches[:cfg.validation.batches]

    policy = LlmPolicy(policy_config(cfg, prep["ckpt_reward"]))
    model = policy.model
    model.to(device)
    optimiser = make_optimiser(model, cfg, device)
    opt, sched, class_weights = optimiser.opt, optimiser.sched, optimiser.class_weights
    n_trainable = sum(p.numel() for p in optimiser.params)
    metadata = {"training": {**{k: v for k, v in summary.items() if k != "episode_returns"},
                             "variant": (("mlp" if cfg.is_mlp else "lora") + ("" if cfg.return_conditioning else "+bc")
                                         + (f"+imitate:{cfg.distill_teacher}" if cfg.distill_teacher else "")),
                             "return_conditioning": cfg.return_conditioning,
                             "config": to_dict(cfg), "identity": identity_hash,
                             "trainable_parameters": n_trainable,
                             "backbone_sha256": backbone_sha256(cfg.model.backbone),
                             "episode_returns": summary["episode_returns"]}}
    order = {"seed": cfg.seed, "train_rows": int(train_rows.shape[0]), "batch_size": o.batch_size,
             "batches_per_epoch": max(1, int(train_rows.shape[0]) // o.batch_size),
             "train_rows_sha": hashlib.sha256(train_rows.tobytes()).hexdigest()[:16]}

    step, log, elapsed0 = 0, [], 0.0
    torch.manual_seed(cfg.seed)
    state_dir = _find_state(out) if resume else None
    if not resume:
        shutil.rmtree(out / "last", ignore_errors=True)
        shutil.rmtree(out / "last.old", ignore_errors=True)
    if state_dir is not None:
        # On the CPU: RNG states must be CPU tensors; the optimizer moves its state to the parameters.
        state = torch.load(state_dir / STATE_FILE, map_location="cpu", weights_only=True)
        if state["identity"] != identity_hash:
            raise ConfigError(f"{state_dir} was written by a different training config or pool: use another "
                              "output directory, or resume: false (--no-resume) to start over")
        if state["data_order"] != order:
            raise ConfigError(f"{state_dir}: the data order differs ({state['data_order']} vs {order})")
        policy.load_weights(state_dir)
        model.to(device)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if device.startswith("cuda") and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        step, log, elapsed0 = int(state["step"]), list(state["log"]), float(state.get("elapsed_s", 0.0))

    def snapshot() -> dict[str, Any]:
        return {"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.startswith("cuda") else None,
                "data_order": order, "identity": identity_hash, "log": log,
                "elapsed_s": elapsed0 + time.monotonic() - t0}

    set_train_modes(model)
    t0 = time.monotonic()
    end = o.steps if stop_after is None else min(o.steps, stop_after)
    acc: dict[str, list[float]] = {}
    # disable=None: a bar on a terminal only (in logs it would only garble the lines); in a log, a
    # plain line with each logged loss, at most every few seconds.
    bar = tqdm(total=o.steps, initial=step, desc=f"train {cfg.name}", unit="step", disable=None if progress else True,
               file=sys.stderr, dynamic_ncols=True)
    lines, clock, first_step = progress and bar.disable, LineClock(), step
    try:
        while step < end:
            rows = batch_rows(train_rows, step, o.batch_size, cfg.seed)
            parts = train_step(model, optimiser, data, rows, rtg, device, cfg)
            step += 1
            for k, v in parts.items():
                acc.setdefault(k, []).append(v)
            bar.update(1)
            if step % cfg.log_every == 0 or step == end:
                row = {"step": step, "phase": "train", **{k: _mean(v) for k, v in acc.items()},
                       "lr": sched.get_last_lr()[0], "elapsed_s": round(elapsed0 + time.monotonic() - t0, 3)}
                log.append(row)
                acc = {}
                bar.set_postfix_str(f"loss {row['loss']:.4f}", refresh=False)
                if lines and clock.due(final=step == end):
                    now = time.monotonic()
                    per_step = (now - t0) / (step - first_step)
                    print(f"train {cfg.name}: step {step}/{o.steps}, loss {row['loss']:.4f}, "
                          f"{(now - t0) / 60:.1f} min elapsed, about {per_step * (o.steps - step) / 60:.0f} min to go",
                          file=sys.stderr, flush=True)
            if val_batches and (step % cfg.validation.every == 0 or step == o.steps):
                log.append(_validate(model, data, val_batches, rtg, device, cfg, class_weights, step,
                                     sched.get_last_lr()[0], elapsed0 + time.monotonic() - t0))
                set_train_modes(model)
            if step % cfg.checkpoint_every == 0 or step == end:
                _write_log(out, log)
                _save_state(out, policy, metadata, device, snapshot())
    finally:
        bar.close()
    _write_log(out, log)
    plot_losses(out, log)
    finished = step >= o.steps
    checkpoint = None
    if finished:
        checkpoint = out / "checkpoint"
        final_meta = {"training": {**metadata["training"], "steps_done": step,
                                   "final": next((r for r in reversed(log) if r["phase"] == "train"), None)}}
        _save_policy(policy, checkpoint, final_meta, device)
        if cfg.export is not None:
            export_checkpoint(checkpoint, cfg.export, extras=[out / "losses.csv", out / "losses.png",
                                                               out / "pool-summary.json"])
    return TrainResult(output=out, checkpoint=checkpoint, step=step, finished=finished, log=log)


def _mean(values: list[float]) -> float:
    """Mean ignoring NaN (accuracy of a batch without targets); NaN if all are."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def export_checkpoint(src: Path, dest: Path, extras: Sequence[Path] = ()) -> None:
    """Copy a checkpoint's files into ``dest`` (other files there, e.g. a model card, stay);
    config.json goes last, so an interrupted copy is not a loadable checkpoint."""
    from aqm_llm.agent.policy import ADAPTER_DIR, CONFIG_FILE

    dest.mkdir(parents=True, exist_ok=True)
    (dest / CONFIG_FILE).unlink(missing_ok=True)
    shutil.rmtree(dest / ADAPTER_DIR, ignore_errors=True)
    for item in sorted(src.iterdir()):
        if item.name == CONFIG_FILE:
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy2(item, dest / item.name)
    for extra in extras:
        if extra.is_file():
            shutil.copy2(extra, dest / extra.name)
    shutil.copy2(src / CONFIG_FILE, dest / CONFIG_FILE)


def _validate(model: Any, data: Any, batches: list[np.ndarray], rtg: np.ndarray, device: str, cfg: TrainConfig,
              class_weights: Any, step: int, lr: float, elapsed: float) -> dict[str, Any]:
    import torch

    model.eval()
    sums: dict[str, list[float]] = {}
    with torch.no_grad():
        for rows in batches:
            x, tgt = _tensors(data, rows, rtg, device, cfg.epoch_output)
            _, parts = compute_loss(model(x), tgt, cfg, class_weights)
            for k, v in parts.items():
                sums.setdefault(k, []).append(v)
    return {"step": step, "phase": "val", **{k: _mean(v) for k, v in sums.items()},
            "lr": lr, "elapsed_s": round(elapsed, 3)}


# ------------------------------------------------------------------------ target return


def checkpoint_episode_returns(doc: dict[str, Any], family: str | None = None) -> list[list[float]]:
    """The [per-epoch return, epochs] of the pool's episodes stored in a checkpoint's config
    (``metadata.training.episode_returns``): ``family``'s, or all (None); KeyError for a family
    the pool did not have."""
    returns = ((doc.get("metadata") or {}).get("training") or {}).get("episode_returns") or {}
    if family is None:
        return [e for v in returns.values() for e in v]
    if family not in returns:
        raise KeyError(", ".join(sorted(returns)))
    return list(returns[family])


def set_target_return(checkpoint: str | Path, *, family: str | None = None, eval_epochs: int | None = None,
                      quantile: float | None = None, value: float | None = None) -> float:
    """Change the target return a trained checkpoint starts from (its config.json), from the
    pool statistics stored at training time: ``quantile`` (default: the training rule's) of the
    per-epoch returns of ``family``'s episodes (default: all) x ``eval_epochs`` (default: that
    family's median episode length); or a fixed ``value``. Returns the new target."""
    from aqm_llm.agent.policy import CONFIG_FILE, read_checkpoint_config

    path = Path(checkpoint)
    doc = read_checkpoint_config(path)
    tr = (doc.get("metadata") or {}).get("training") or {}
    if not tr.get("return_conditioning", True):
        raise ConfigError(f"{path} was trained without return conditioning: it has no target return")
    if value is None:
        try:
            eps = checkpoint_episode_returns(doc, family)
        except KeyError as exc:
            raise ConfigError(f"family '{family}' not in {path}; known: {exc.args[0]}") from None
        if not eps:
            raise ConfigError(f"{path} has no episode statistics")
        q = quantile if quantile is not None else float(tr.get("target_rule", {}).get("quantile", 0.9))
        per_epoch = float(np.quantile([e[0] for e in eps], q))
        epochs = eval_epochs or int(np.median([e[1] for e in eps]))
        # per_epoch conditioning targets a reward per epoch, whatever the run length.
        per_epoch_mode = doc["policy"]["reward"].get("rtg_mode", "sum") == "per_epoch"
        value = per_epoch if per_epoch_mode else per_epoch * epochs
    doc["policy"]["reward"]["target_return"] = float(value)
    doc.setdefault("metadata", {}).setdefault("training", {})["target_override"] = {
        "family": family, "eval_epochs": eval_epochs, "quantile": quantile, "target_return": float(value)}
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path / CONFIG_FILE)
    return float(value)
