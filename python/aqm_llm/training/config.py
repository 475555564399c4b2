"""The training config (``aqm-llm train CONFIG.yaml``): parsing and defaults.

    name: train-small
    pool: pools/collect-small          # or pools: [a, b] (same teacher set)
    output: runs/train-small           # checkpoint/, last/ (resume state), losses.csv, losses.png
    export: null                       # also copy the final checkpoint here (e.g. models/l4s-llm);
                                       # dropped when -o or --steps override the config (--export sets it)
    seed: 1
    device: auto                       # auto (cuda if available) | cpu | cuda
    threads: null                      # torch CPU threads (default: torch's)
    model:
      backbone: smollm2                # smollm2 | mlp (the MLP ablation) | random:<arch> | local path
      lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: null}
      layers: 12                       # keep the first N decoder layers of the backbone (null: all)
      packets: 16                      # packets with tokens K (the layout is TokenLayout.fit(...))
      max_tokens: 24
      packets_per_token: 4             # K packets in ceil(K / 4) tokens
      series_per_token: 2              # 8 series in 4 tokens
      tokens_per_past_epoch: 1         # 1 ([RTG+state+action]) or 3 ([RTG][state][action])
      epoch_sees_packets: true         # false: the epoch token before the packet tokens, so the
                                       # epoch decision comes from the state alone (agent.layout)
      encoder: {conv_channels: 32, conv_kernel: 4}
    return_conditioning: true          # false: behaviour cloning without return conditioning
    families: [scenario]               # what makes a family ("scenario", "setting": scenario + every
                                       # parameter but the acting teacher, or parameter names)
    rank_after_warmup: false           # rank a family's acting teachers (its distillation target) by
                                       # their mean reward per epoch after each run's warm-up (the
                                       # window run metrics and evaluations use) instead of the whole run
    p_prime_band: null                 # decisions: hold the epoch probabilities within DualPI2's own
                                       # x a factor on p' in [1/band, band] (agent.band; null: free;
                                       # coupled:FACTOR or ramp:FACTOR for the other forms)
    epoch_output: probability          # the head's epoch outputs: probability (levels 1e-6..1) or
                                       # factor (on DualPI2's own p_L and p', levels 1/8..8; agent.factor)
    queue_disc: {}                     # l4s-llm queue-disc parameters saved in the checkpoint and
                                       # applied to the runs it serves unless a run sets them
                                       # (llm_l_sojourn_limit, llm_l_agent_drop, llm_agent_forward,
                                       # llm_agent_drop, llm_classic, llm_overload, llm_batch)
    distill_teacher: null              # imitate this teacher in every state (every loss term: its
                                       # shadow actions and probabilities) instead of the acting
                                       # controller and each family's best (dualpi2: the sanity rung)
    reward: null                       # reward weights (default: the pool's)
    target: {quantile: 0.9, eval_epochs: null, family: null, value: null}
    rtg_mode: sum                      # sum (return still to collect) | per_epoch (mean reward per
                                       # epoch still to come, standardised; agent.reward)
    rtg_scale: null                    # default: sum: the largest |episode return| in the pool;
                                       # per_epoch: the standard deviation of the hindsight values
    rtg_norm: standard                 # standard (the two lines above) | robust (median and
                                       # interquartile range of the hindsight values, tokens
                                       # clipped to +-3: outliers no longer set the scale)
    loss: {action: 1.0, probs: 1.0, distill: 0.5, class_weights: [1.0, 1.0, 1.0]}
    optim: {steps: 200, batch_size: 16, lr: 3.0e-4, weight_decay: 0.0, warmup_steps: 20,
            min_lr_ratio: 0.1, grad_clip: 1.0}
    log_every: 10
    checkpoint_every: 100
    validation: {fraction: 0.1, every: 50, batches: 4}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqm_llm.agent.band import INDEPENDENT, band_form, parse_band
from aqm_llm.agent.factor import EPOCH_OUTPUTS, FACTOR, PROBABILITY
from aqm_llm.agent.reward import REWARD_WEIGHTS, RTG_MODES, RTG_NORMS
from aqm_llm.configfile import read_yaml
from aqm_llm.configschema import Fail, as_flag, checked_mapping, failing_with
from aqm_llm.errors import ConfigError


@dataclass(frozen=True)
class ModelSettings:
    backbone: str = "smollm2"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] | None = None
    layers: int | None = None  # None: all decoder layers
    packets: int = 16
    max_tokens: int = 24
    packets_per_token: int = 4
    series_per_token: int = 2
    tokens_per_past_epoch: int = 1
    epoch_sees_packets: bool = True
    conv_channels: int = 32
    conv_kernel: int = 4

    def layout(self) -> Any:
        """The policy's token layout (``agent.layout.TokenLayout``); ValueError if impossible."""
        from aqm_llm.agent.layout import TokenLayout

        return TokenLayout.fit(packets=self.packets, max_tokens=self.max_tokens,
                               packets_per_token=self.packets_per_token,
                               series_per_token=self.series_per_token,
                               tokens_per_past_epoch=self.tokens_per_past_epoch,
                               epoch_sees_packets=self.epoch_sees_packets)

    def mlp_refusal(self) -> str | None:
        """Why these settings cannot train the mlp backbone (None: they can); the one rule for
        the file's ``model.backbone: mlp`` and for ``--mlp``."""
        if not self.epoch_sees_packets:
            return ("model.epoch_sees_packets is false: the mlp backbone pools every token, so the "
                    "epoch decision would see the packets whatever their order; set true")
        return None


@dataclass(frozen=True)
class TargetSettings:
    """How the target return (the RTG the policy starts from at evaluation) is chosen."""

    quantile: float = 0.9  # of the per-epoch episode returns of the family
    eval_epochs: int | None = None  # episode length assumed at evaluation (default: median in pool)
    family: str | None = None  # family whose target goes into config.json (None: all episodes)
    value: float | None = None  # a fixed target_return instead of the rule


@dataclass(frozen=True)
class LossSettings:
    action: float = 1.0  # per-packet cross-entropy toward the acting controller's actions
    probs: float = 1.0  # cross-entropy of the epoch probabilities over the log-spaced levels
    distill: float = 0.5  # weight of the distillation term (best teacher's action and probs)
    class_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # forward, drop, mark


@dataclass(frozen=True)
class OptimSettings:
    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio
    grad_clip: float = 1.0
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class ValidationSettings:
    fraction: float = 0.1  # episodes held out
    every: int = 50
    batches: int = 4


@dataclass(frozen=True)
class TrainConfig:
    name: str
    pools: tuple[Path, ...]
    output: Path
    seed: int = 1
    device: str = "auto"
    threads: int | None = None
    model: ModelSettings = ModelSettings()
    return_conditioning: bool = True
    families: tuple[str, ...] = ("scenario",)
    rank_after_warmup: bool = False
    distill_teacher: str | None = None
    p_prime_band: float | None = None  # saved in the checkpoint: agent.band at decision time
    p_prime_form: str = INDEPENDENT    # the band's form (agent.band.FORMS), saved with it
    epoch_output: str = PROBABILITY    # agent.factor.EPOCH_OUTPUTS: what the epoch head predicts
    # l4s-llm queue-disc parameters saved in the checkpoint and applied to the runs it serves
    # (agent.checkpoint.QUEUE_DISC_PARAMS; runner.checkpoint_params)
    queue_disc: dict[str, str] = field(default_factory=dict)
    reward: dict[str, float] | None = None
    target: TargetSettings = TargetSettings()
    rtg_scale: float | None = None
    rtg_mode: str = "sum"
    rtg_norm: str = "standard"
    loss: LossSettings = LossSettings()
    optim: OptimSettings = OptimSettings()
    log_every: int = 10
    checkpoint_every: int = 100
    validation: ValidationSettings = ValidationSettings()
    export: Path | None = None
    source: str = "train"
    doc: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_mlp(self) -> bool:
        return self.model.backbone == "mlp"

    def with_overrides(self, *, output: str | Path | None = None, steps: int | None = None,
                       mlp: bool = False, bc: bool = False, device: str | None = None,
                       pools: list[str] | None = None, export: str | Path | None = None) -> TrainConfig:
        cfg = self
        if (output is not None or steps is not None) and export is None:
            # A redirected or shortened run must not overwrite the shipped checkpoint.
            cfg = dataclasses.replace(cfg, export=None)
        if export is not None:
            cfg = dataclasses.replace(cfg, export=Path(export))
        if pools:
            cfg = dataclasses.replace(cfg, pools=tuple(Path(p) for p in pools))
        if output is not None:
            cfg = dataclasses.replace(cfg, output=Path(output))
        if steps is not None:
            if steps < 1:
                raise ConfigError(f"bad value '{steps}' for --steps: must be >= 1")
            cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, steps=steps))
        if mlp:
            refusal = cfg.model.mlp_refusal()
            if refusal:
                raise ConfigError(f"--mlp: {refusal}")
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backbone="mlp"))
        if bc:
            cfg = dataclasses.replace(cfg, return_conditioning=False)
        if device is not None:
            cfg = dataclasses.replace(cfg, device=_device(device, lambda m: ConfigError(m)))
        return cfg

    def identity(self) -> dict[str, Any]:
        """What defines the training run (resume refuses a state written under another)."""
        d = to_dict(self)
        # The band and the queue-disc settings act at decision time only: the same training
        # serves any of them.
        for volatile in ("output", "export", "threads", "device", "log_every", "checkpoint_every", "source",
                         "name", "p_prime_band", "p_prime_form", "queue_disc"):
            d.pop(volatile, None)
        if not d.get("rank_after_warmup"):
            d.pop("rank_after_warmup", None)  # the default: identities from before the option stay
        if d.get("rtg_norm") == "standard":
            d.pop("rtg_norm", None)  # likewise
        if d.get("epoch_output") == PROBABILITY:
            d.pop("epoch_output", None)  # likewise
        if d["model"].get("epoch_sees_packets"):
            d["model"].pop("epoch_sees_packets")  # likewise
        return d


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d.pop("doc", None)
    d["pools"] = [str(p) for p in cfg.pools]
    d["output"] = str(cfg.output)
    d["export"] = str(cfg.export) if cfg.export is not None else None
    return _jsonable(d)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


# ------------------------------------------------------------------------ parsing


def _num(v: Any, where: str, fail: Fail, *, lo: float | None = None, hi: float | None = None,
         integer: bool = False) -> Any:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if integer:
        ok = ok and float(v).is_integer()
    if not ok or (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f" in [{lo}, {hi}]" if hi is not None else (f" >= {lo}" if lo is not None else "")
        raise fail(f"{where}: expected {'an integer' if integer else 'a number'}{rng}, got {v!r}")
    return int(v) if integer else float(v)


def _band(v: Any, fail: Fail) -> tuple[float | None, str]:
    """p_prime_band: a factor >= 1, ``coupled:FACTOR``, ``ramp:FACTOR``, null or 'off'."""
    if v is None:
        return None, INDEPENDENT
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _num(v, "p_prime_band", fail, lo=1), INDEPENDENT
    try:
        return parse_band(str(v)), band_form(str(v))
    except ValueError as exc:
        raise fail(f"p_prime_band: {exc}") from None


def _queue_disc(v: Any, fail: Fail) -> dict[str, str]:
    """queue_disc: l4s-llm queue-disc parameters the checkpoint carries (their values are checked
    by the scenario program when a run uses them)."""
    from aqm_llm.agent.checkpoint import QUEUE_DISC_PARAMS

    settings = checked_mapping(v, "queue_disc", QUEUE_DISC_PARAMS, fail)
    for key, value in settings.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise fail(f"queue_disc.{key}: expected a parameter value such as 20ms, got {value!r}")
    return {k: str(val) for k, val in settings.items()}


def _device(v: Any, fail: Fail) -> str:
    if v not in ("auto", "cpu", "cuda") and not (isinstance(v, str) and v.startswith("cuda:")):
        raise fail(f"device: expected auto, cpu or cuda, got {v!r}")
    return str(v)


_TOP = ("name", "description", "pool", "pools", "output", "export", "seed", "device", "threads", "model",
        "return_conditioning", "families", "rank_after_warmup", "distill_teacher", "p_prime_band", "epoch_output", "queue_disc", "reward", "target", "rtg_mode", "rtg_scale", "rtg_norm", "loss", "optim",
        "log_every", "checkpoint_every", "validation")


def parse_train_config(doc: Any, *, source: str = "train", default_name: str = "train") -> TrainConfig:
    fail = failing_with(source)
    top = checked_mapping(doc, "config", _TOP, fail)
    name = str(top.get("name", default_name))
    if "pool" in top and "pools" in top:
        raise fail("give pool or pools, not both")
    pools = top.get("pools", [top["pool"]] if "pool" in top else None)
    if not isinstance(pools, list) or not pools or not all(isinstance(p, str) and p for p in pools):
        raise fail("pool: expected the experience pool directory (or pools: a list of them)")
    output = top.get("output", f"runs/{name}")
    if not isinstance(output, str) or not output:
        raise fail("output: expected a directory")
    export = top.get("export")
    if export is not None and (not isinstance(export, str) or not export):
        raise fail("export: expected a directory or null")

    m = checked_mapping(top.get("model"), "model", ("backbone", "layers", "lora", "packets", "max_tokens",
                                            "packets_per_token", "series_per_token",
                                            "tokens_per_past_epoch", "epoch_sees_packets",
                                            "encoder"), fail)
    lora = checked_mapping(m.get("lora"), "model.lora", ("r", "alpha", "dropout", "target_modules"), fail)
    enc = checked_mapping(m.get("encoder"), "model.encoder", ("conv_channels", "conv_kernel"), fail)
    targets = lora.get("target_modules")
    if targets is not None and (not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)):
        raise fail("model.lora.target_modules: expected a list of module names or null")
    backbone = m.get("backbone", "smollm2")
    if not isinstance(backbone, str) or not backbone:
        raise fail("model.backbone: expected smollm2, mlp, random:<arch> or a local model path")
    model = ModelSettings(
        backbone=backbone,
        lora_r=_num(lora.get("r", 8), "model.lora.r", fail, lo=1, integer=True),
        lora_alpha=_num(lora.get("alpha", 16), "model.lora.alpha", fail, lo=1, integer=True),
        lora_dropout=_num(lora.get("dropout", 0.0), "model.lora.dropout", fail, lo=0, hi=0.9),
        lora_targets=tuple(targets) if targets else None,
        layers=(None if m.get("layers") is None
                else _num(m["layers"], "model.layers", fail, lo=1, integer=True)),
        packets=_num(m.get("packets", 16), "model.packets", fail, lo=1, hi=32, integer=True),
        max_tokens=_num(m.get("max_tokens", 24), "model.max_tokens", fail, lo=8, integer=True),
        packets_per_token=_num(m.get("packets_per_token", 4), "model.packets_per_token", fail, lo=1,
                               hi=32, integer=True),
        series_per_token=_num(m.get("series_per_token", 2), "model.series_per_token", fail, lo=1,
                              hi=8, integer=True),
        tokens_per_past_epoch=_num(m.get("tokens_per_past_epoch", 1), "model.tokens_per_past_epoch",
                                   fail, lo=1, hi=3, integer=True),
        epoch_sees_packets=as_flag(m.get("epoch_sees_packets", True), "model.epoch_sees_packets", fail),
        conv_channels=_num(enc.get("conv_channels", 32), "model.encoder.conv_channels", fail, lo=1, integer=True),
        conv_kernel=_num(enc.get("conv_kernel", 4), "model.encoder.conv_kernel", fail, lo=1, hi=16, integer=True))

    try:
        model.layout()  # the token layout must exist (e.g. fit the current epoch in max_tokens)
    except ValueError as exc:
        raise fail(f"model: {exc}") from None
    if model.layers is not None and backbone == "mlp":
        raise fail("model.layers: the mlp backbone has no layers to keep; set null")
    refusal = model.mlp_refusal() if backbone == "mlp" else None
    if refusal:
        raise fail(refusal)

    cond = as_flag(top.get("return_conditioning", True), "return_conditioning", fail)
    fams = top.get("families", ["scenario"])
    if not isinstance(fams, list) or not fams or not all(isinstance(f, str) and f for f in fams):
        raise fail("families: expected a list such as [scenario] or [scenario, bottleneck_rate]")
    rank_after_warmup = as_flag(top.get("rank_after_warmup", False), "rank_after_warmup", fail)
    band, form = _band(top.get("p_prime_band"), fail)
    epoch_output = top.get("epoch_output", PROBABILITY)
    if epoch_output not in EPOCH_OUTPUTS:
        raise fail(f"epoch_output: bad value '{epoch_output}'; allowed: {', '.join(EPOCH_OUTPUTS)}")
    if epoch_output == FACTOR and band is not None:
        raise fail("p_prime_band: applies to the probability output; epoch_output factor is bounded by its own grid")
    if epoch_output == FACTOR and top.get("distill_teacher") != "dualpi2":
        raise fail("epoch_output: factor trains only with distill_teacher: dualpi2 for now (another teacher's "
                   "p_L has no factor on DualPI2's that the decisions apply; agent.factor)")
    queue_disc = _queue_disc(top.get("queue_disc"), fail)
    distill_teacher = top.get("distill_teacher")
    if distill_teacher is not None and (not isinstance(distill_teacher, str) or not distill_teacher):
        raise fail("distill_teacher: expected a teacher name such as dualpi2, or null")
    reward = top.get("reward")
    if reward is not None:
        reward = checked_mapping(reward, "reward", REWARD_WEIGHTS, fail)
        reward = {k: _num(v, f"reward.{k}", fail, lo=0) for k, v in reward.items()}
    t = checked_mapping(top.get("target"), "target", ("quantile", "eval_epochs", "family", "value"), fail)
    target = TargetSettings(
        quantile=_num(t.get("quantile", 0.9), "target.quantile", fail, lo=0, hi=1),
        eval_epochs=(_num(t["eval_epochs"], "target.eval_epochs", fail, lo=1, integer=True)
                     if t.get("eval_epochs") is not None else None),
        family=str(t["family"]) if t.get("family") is not None else None,
        value=_num(t["value"], "target.value", fail) if t.get("value") is not None else None)
    rtg_scale = top.get("rtg_scale")
    if rtg_scale is not None:
        rtg_scale = _num(rtg_scale, "rtg_scale", fail, lo=1e-9)
    rtg_mode = top.get("rtg_mode", "sum")
    if rtg_mode not in RTG_MODES:
        raise fail(f"rtg_mode: bad value '{rtg_mode}'; allowed: {', '.join(RTG_MODES)}")
    rtg_norm = top.get("rtg_norm", "standard")
    if rtg_norm not in RTG_NORMS:
        raise fail(f"rtg_norm: bad value '{rtg_norm}'; allowed: {', '.join(RTG_NORMS)}")
    lo = checked_mapping(top.get("loss"), "loss", ("action", "probs", "distill", "class_weights"), fail)
    cw = lo.get("class_weights", [1.0, 1.0, 1.0])
    if not isinstance(cw, list) or len(cw) != 3:
        raise fail("loss.class_weights: expected three numbers (forward, drop, mark)")
    loss = LossSettings(action=_num(lo.get("action", 1.0), "loss.action", fail, lo=0),
                        probs=_num(lo.get("probs", 1.0), "loss.probs", fail, lo=0),
                        distill=_num(lo.get("distill", 0.5), "loss.distill", fail, lo=0),
                        class_weights=tuple(_num(w, "loss.class_weights", fail, lo=1e-6) for w in cw))  # type: ignore[arg-type]
    o = checked_mapping(top.get("optim"), "optim", ("steps", "batch_size", "lr", "weight_decay", "warmup_steps",
                                               "min_lr_ratio", "grad_clip", "betas"), fail)
    betas = o.get("betas", [0.9, 0.999])
    if not isinstance(betas, list) or len(betas) != 2:
        raise fail("optim.betas: expected two numbers")
    optim = OptimSettings(
        steps=_num(o.get("steps", 200), "optim.steps", fail, lo=1, integer=True),
        batch_size=_num(o.get("batch_size", 16), "optim.batch_size", fail, lo=1, integer=True),
        lr=_num(o.get("lr", 3e-4), "optim.lr", fail, lo=0),
        weight_decay=_num(o.get("weight_decay", 0.0), "optim.weight_decay", fail, lo=0),
        warmup_steps=_num(o.get("warmup_steps", 20), "optim.warmup_steps", fail, lo=0, integer=True),
        min_lr_ratio=_num(o.get("min_lr_ratio", 0.1), "optim.min_lr_ratio", fail, lo=0, hi=1),
        grad_clip=_num(o.get("grad_clip", 1.0), "optim.grad_clip", fail, lo=0),
        betas=(_num(betas[0], "optim.betas", fail, lo=0, hi=1), _num(betas[1], "optim.betas", fail, lo=0, hi=1)))
    v = checked_mapping(top.get("validation"), "validation", ("fraction", "every", "batches"), fail)
    validation = ValidationSettings(
        fraction=_num(v.get("fraction", 0.1), "validation.fraction", fail, lo=0, hi=0.9),
        every=_num(v.get("every", 50), "validation.every", fail, lo=1, integer=True),
        batches=_num(v.get("batches", 4), "validation.batches", fail, lo=1, integer=True))
    threads = top.get("threads")
    if threads is not None:
        threads = _num(threads, "threads", fail, lo=1, integer=True)
    return TrainConfig(
        name=name, pools=tuple(Path(p) for p in pools), output=Path(output),
        seed=_num(top.get("seed", 1), "seed", fail, lo=0, integer=True),
        device=_device(top.get("device", "auto"), fail), threads=threads, model=model,
        return_conditioning=cond, families=tuple(fams), rank_after_warmup=rank_after_warmup,
        distill_teacher=distill_teacher, p_prime_band=band, p_prime_form=form, epoch_output=epoch_output,
        queue_disc=queue_disc,
        reward=reward, target=target,
        rtg_scale=rtg_scale, rtg_mode=rtg_mode, rtg_norm=rtg_norm, loss=loss, optim=optim,
        log_every=_num(top.get("log_every", 10), "log_every", fail, lo=1, integer=True),
        checkpoint_every=_num(top.get("checkpoint_every", 100), "checkpoint_every", fail, lo=1, integer=True),
        validation=validation, export=Path(export) if export else None, source=source, doc=dict(top))


def load_train_config(path: str | Path) -> TrainConfig:
    p = Path(path)
    return parse_train_config(read_yaml(p, "training config"), source=str(p), default_name=p.stem)
