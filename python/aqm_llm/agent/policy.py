"""The LLM policy: an :class:`~aqm_llm.agent.interface.Agent` around :class:`AqmModel`.

Per epoch: validate and normalise the request, update the return-to-go with the reward
components it carries (formula and target in ``reward``), build the layout's inputs with the
history of past epochs, one forward pass of the network (``agent.runtime``: ONNX Runtime or
PyTorch), select actions, append this epoch (RTG, pooled state, action summary) to the history.
:class:`PolicyAgent` does this for any network; :class:`LlmPolicy` is the trainable PyTorch
policy (and its checkpoints); :func:`make_llm_policy` serves a checkpoint on either runtime.

Checkpoint directory (``save`` / ``load``)::

    config.json          format, versions, PolicyConfig (layout, encoder, LoRA, reward,
                         backbone spec), trained flag, free-form metadata; written last
    policy.safetensors   encoder.* and head.* weights (and backbone.* for a backbone
                         without LoRA whose weights train, e.g. the MLP)
    adapter/             the peft LoRA adapter (adapter_config.json, adapter_model.safetensors)

Without a trained checkpoint the policy runs on its seeded initial weights and says so
(``trained`` is False; the server prints a warning before READY).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from aqm_llm.channel import Request, Scalar
from aqm_llm.agent import features as F
from aqm_llm.agent.band import COUPLED_FORM, FORMS, INDEPENDENT, RAMP_FORM, band_form, parse_band, within_band
from aqm_llm.agent.checkpoint import (ADAPTER_DIR, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CONFIG_FILE,
                                      DEFAULT_CHECKPOINT, QUEUE_DISC_PARAMS, WEIGHTS_FILE, check_checkpoint,
                                      default_checkpoint, epoch_output_in, queue_disc_of,
                                      resolve_checkpoint)
from aqm_llm.agent.backbone import MLP, SMOLLM2, Backbone, LoraSpec, load_backbone
from aqm_llm.agent.encoder import EncoderConfig
from aqm_llm.agent.factor import EPOCH_OUTPUTS, FACTOR, PROBABILITY, decode_factor_logits, from_factors
from aqm_llm.agent.head import overflow_actions, safe_probabilities, select_packet_actions
from aqm_llm.agent.interface import Agent, Decision, RunInfo
from aqm_llm.agent.layout import DEFAULT_LAYOUT, EpochRecord, History, TokenLayout, build_inputs
from aqm_llm.agent.model import AqmModel
from aqm_llm.agent.reward import ReturnToGo, RewardConfig
from aqm_llm.agent.runtime import ONNX, TORCH, PolicyNetwork, TorchNetwork, check_runtime

#: Decoder layers of SmolLM2 (30 in all) a new policy keeps: the first 12 decide within one
#: 16 ms epoch on 2 CPU cores with the dense layout (docs/bench-inference.md).
DEFAULT_LAYERS = 12


@dataclass(frozen=True)
class PolicyConfig:
    backbone: str = SMOLLM2
    layers: int | None = None  # first N decoder layers of the backbone (None: all)
    layout: TokenLayout = DEFAULT_LAYOUT
    encoder: EncoderConfig = EncoderConfig()
    lora: LoraSpec | None = LoraSpec()
    reward: RewardConfig = RewardConfig()
    sample: bool = False  # draw actions from the head's distribution (seeded) instead of argmax
    init_seed: int = 0  # initial weights of encoder, head, LoRA A (and random backbones)
    # Epoch probabilities held within DualPI2's own x a factor on p' in [1/band, band] (agent.band);
    # None: the network's probabilities as they are.
    p_prime_band: float | None = None
    p_prime_form: str = INDEPENDENT  # agent.band.FORMS: independent, coupled or ramp
    # What the head's epoch outputs are (agent.factor): probabilities, or factors on DualPI2's own.
    epoch_output: str = PROBABILITY
    # Settings of the l4s-llm queue disc this policy is served with (scenario parameters such as
    # llm_l_sojourn_limit): the runner applies them to a run this checkpoint serves unless the
    # run sets them itself (runner.checkpoint_params). The agent never reads them.
    queue_disc: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.p_prime_form not in FORMS:
            raise ValueError(f"p_prime_form must be one of {', '.join(FORMS)}, got {self.p_prime_form!r}")
        if self.epoch_output not in EPOCH_OUTPUTS:
            raise ValueError(f"epoch_output must be one of {', '.join(EPOCH_OUTPUTS)}, got {self.epoch_output!r}")
        if self.epoch_output == FACTOR and self.p_prime_band is not None:
            raise ValueError("p_prime_band applies to the probability output; the factor output is "
                             "bounded by its own grid (agent.factor)")
        unknown = sorted(set(self.queue_disc) - set(QUEUE_DISC_PARAMS))
        if unknown:
            raise ValueError(f"queue_disc: unknown setting '{unknown[0]}': expected one of "
                             f"{', '.join(QUEUE_DISC_PARAMS)}")

    def to_dict(self) -> dict[str, Any]:
        lora = None if self.lora is None else {
            **asdict(self.lora), "target_modules": (list(self.lora.target_modules)
                                                    if self.lora.target_modules else None)}
        return {"backbone": self.backbone, "layers": self.layers, "layout": self.layout.to_dict(),
                "encoder": asdict(self.encoder), "lora": lora, "reward": asdict(self.reward),
                "sample": self.sample, "init_seed": self.init_seed, "p_prime_band": self.p_prime_band,
                "p_prime_form": self.p_prime_form, "epoch_output": self.epoch_output,
                "queue_disc": dict(self.queue_disc)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        lora = d.get("lora")
        if lora is not None:
            targets = lora.get("target_modules")
            lora = LoraSpec(**{**lora, "target_modules": tuple(targets) if targets else None})
        layers = d.get("layers")  # absent in checkpoints from before the option: all layers
        return cls(backbone=str(d["backbone"]), layers=None if layers is None else int(layers),
                   layout=TokenLayout.from_dict(d["layout"]),
                   encoder=EncoderConfig(**d["encoder"]), lora=lora,
                   reward=RewardConfig(**d["reward"]), sample=bool(d["sample"]),
                   init_seed=int(d["init_seed"]),
                   p_prime_band=None if d.get("p_prime_band") is None else float(d["p_prime_band"]),
                   p_prime_form=_band_form_of(d),
                   epoch_output=epoch_output_in(d),
                   queue_disc=queue_disc_of(d))


def _band_form_of(d: dict[str, Any]) -> str:
    """The band form a checkpoint's policy config gives: ``p_prime_form``, or in checkpoints from
    before it the two flags it replaced (p_prime_coupled, p_l_on_ramp); neither: independent."""
    if d.get("p_prime_form") is not None:
        return str(d["p_prime_form"])
    if d.get("p_prime_coupled"):
        return COUPLED_FORM
    return RAMP_FORM if d.get("p_l_on_ramp") else INDEPENDENT


@dataclass
class _RunState:
    """What one run accumulates (reset by ``reset``)."""

    history: History
    rtg: ReturnToGo
    generator: torch.Generator = field(default_factory=torch.Generator)


class PolicyAgent(Agent):
    """The decision logic of the LLM policy around any :class:`PolicyNetwork`."""

    def __init__(self, config: PolicyConfig, network: PolicyNetwork, *, trained: bool = False,
                 metadata: dict[str, Any] | None = None, source: Path | None = None):
        self.config = config
        self.network = network
        self.source = source  # the checkpoint directory it was loaded from
        self.trained = trained
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._run = _RunState(History(config.layout.history), ReturnToGo(config.reward))
        self.reset(RunInfo())

    @property
    def layout(self) -> TokenLayout:
        return self.config.layout

    # ---- Agent

    def reset(self, run_info: RunInfo) -> None:
        self._run.history.clear()
        self._run.rtg.reset()
        self._run.generator.manual_seed(run_info.seed)

    def decide(self, request: Request) -> Decision:
        feats = F.encode_request(request)  # raises InvalidRequest
        run = self._run
        rtg = run.rtg.update(request.rewards)
        out = self.network.infer(build_inputs(feats, run.history, rtg, self.layout))
        n, k = feats.packet_count, min(feats.packet_count, self.layout.packets)
        if self.config.epoch_output == FACTOR:
            probs = from_factors(*decode_factor_logits(out.epoch_logits),
                                 p_prime=float(request.scalars[Scalar.P_PRIME]))
        else:
            probs = safe_probabilities(torch.from_numpy(out.epoch_probs))
        if self.config.p_prime_band is not None:
            probs = within_band(probs, float(request.scalars[Scalar.P_PRIME]), self.config.p_prime_band,
                                form=self.config.p_prime_form,
                                p_l_reference=float(request.scalars[Scalar.P_L]))
        actions = np.empty(n, np.uint8)
        actions[:k] = select_packet_actions(torch.from_numpy(out.packet_logits[:k]), feats.ecn[:k],
                                            sample=self.config.sample, generator=run.generator)
        actions[k:] = overflow_actions(feats.traffic_class[k:], feats.ecn[k:], probs,
                                       run.generator)
        run.history.append(EpochRecord(rtg=rtg, state=F.state_summary(feats),
                                       action=F.action_summary(actions, feats.traffic_class, probs)))
        return Decision(actions, *probs)

    def describe(self) -> dict[str, Any]:
        return {"backbone": self.config.backbone, "layers": self.config.layers,
                "layout": self.layout.describe(), "runtime": self.network.runtime,
                "trained": self.trained, "sample": self.config.sample,
                "epoch_output": self.config.epoch_output,
                "checkpoint": str(self.source) if self.source else None}


class LlmPolicy(PolicyAgent):
    """Encoder + backbone (+ LoRA) + L4S-LM head in PyTorch: trainable, saved as checkpoints."""

    def __init__(self, config: PolicyConfig = PolicyConfig(), *, backbone: Backbone | None = None):
        if backbone is None:
            backbone = load_backbone(config.backbone, lora=config.lora, seed=config.init_seed,
                                     layers=config.layers)
        elif backbone.lora != config.lora:
            raise ValueError(f"backbone LoRA {backbone.lora} differs from the config's {config.lora}")
        elif backbone.layers != config.layers and backbone.arch != MLP:
            raise ValueError(f"backbone keeps {backbone.layers} layers, the config asks for {config.layers}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            self.model = AqmModel(config.layout, backbone, config.encoder)
        self.model.eval()
        super().__init__(config, TorchNetwork(self.model))

    @property
    def backbone(self) -> Backbone:
        return self.model.backbone

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backbone": self.backbone.spec, "arch": self.backbone.arch}

    # ---- checkpoints

    def save(self, directory: str | Path, *, trained: bool | None = None,
             metadata: dict[str, Any] | None = None) -> Path:
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).unlink(missing_ok=True)  # incomplete until config.json is back
        weights = {f"encoder.{k}": v for k, v in self.model.encoder.state_dict().items()}
        weights |= {f"head.{k}": v for k, v in self.model.head.state_dict().items()}
        weights |= {f"backbone.{k}": v for k, v in self.backbone.extra_state_dict().items()}
        save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(out / WEIGHTS_FILE))
        self.backbone.save_adapter(out / ADAPTER_DIR)
        if trained is not None:
            self.trained = trained
        if metadata is not None:
            self.metadata = dict(metadata)
        doc = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
               "feature_version": F.FEATURE_VERSION, "trained": self.trained,
               "hidden_size": self.backbone.hidden_size, "backbone_arch": self.backbone.arch,
               "policy": self.config.to_dict(), "metadata": self.metadata}
        (out / CONFIG_FILE).write_text(json.dumps(doc, indent=1) + "\n")
        return out

    def load_weights(self, directory: str | Path) -> None:
        """Load a checkpoint saved with the same layout and backbone kind into this policy."""
        from safetensors.torch import load_file

        src = Path(directory)
        doc = read_checkpoint_config(src)
        saved = PolicyConfig.from_dict(doc["policy"])
        if saved.layout != self.layout:
            raise ValueError(f"checkpoint layout {saved.layout} differs from {self.layout}")
        if int(doc["hidden_size"]) != self.backbone.hidden_size:
            raise ValueError(f"checkpoint hidden size {doc['hidden_size']} differs from the "
                             f"backbone's {self.backbone.hidden_size}")
        weights = load_file(str(src / WEIGHTS_FILE))
        parts: dict[str, dict[str, torch.Tensor]] = {"encoder": {}, "head": {}, "backbone": {}}
        for key, value in weights.items():
            prefix, _, rest = key.partition(".")
            if prefix not in parts:
                raise ValueError(f"unexpected weight {key} in {src / WEIGHTS_FILE}")
            parts[prefix][rest] = value
        self.model.encoder.load_state_dict(parts["encoder"], strict=True)
        self.model.head.load_state_dict(parts["head"], strict=True)
        self.backbone.load_extra_state_dict(parts["backbone"])
        self.backbone.load_adapter(src / ADAPTER_DIR)
        self.trained = bool(doc["trained"])
        self.metadata = dict(doc.get("metadata") or {})

    @staticmethod
    def load(directory: str | Path, *, backbone: Backbone | None = None,
             backbone_spec: str | None = None, sample: bool | None = None) -> LlmPolicy:
        """A policy as saved (an LlmPolicy whatever the backbone kind, the MLP's included);
        ``backbone_spec`` / ``sample`` override the saved ones, and a loaded ``backbone``
        (with the same LoRA spec) may be passed in to share it."""
        doc = read_checkpoint_config(Path(directory))
        config = PolicyConfig.from_dict(doc["policy"])
        if backbone_spec is not None:
            config = replace(config, backbone=backbone_spec)
        else:
            check_backbone_weights(doc, config.backbone, Path(directory))
        if sample is not None:
            config = replace(config, sample=sample)
        policy = LlmPolicy(config, backbone=backbone)
        policy.load_weights(directory)
        policy.source = Path(directory).resolve()
        return policy


class MlpPolicy(LlmPolicy):
    """The same encoder and head around a small MLP instead of the LLM (ablations)."""

    def __init__(self, config: PolicyConfig | None = None, *, checkpoint: str | None = None,
                 sample: bool | str = False):
        if config is None:
            config = PolicyConfig(backbone=MLP, lora=None, layers=None)
            if checkpoint:
                config = PolicyConfig.from_dict(read_checkpoint_config(Path(checkpoint))["policy"])
            config = replace(config, sample=str(sample).lower() in ("1", "true", "yes"))
        super().__init__(config)
        if checkpoint:
            self.load_weights(checkpoint)
            self.source = Path(checkpoint).resolve()


def read_checkpoint_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a policy checkpoint (no {CONFIG_FILE})")
    doc: dict[str, Any] = json.loads(path.read_text())
    if doc.get("format") != CHECKPOINT_FORMAT or doc.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: format {doc.get('format')} v{doc.get('version')}, expected "
                         f"{CHECKPOINT_FORMAT} v{CHECKPOINT_VERSION}")
    if doc.get("feature_version") != F.FEATURE_VERSION:
        raise ValueError(f"{path}: features v{doc.get('feature_version')}, this code has "
                         f"v{F.FEATURE_VERSION}: retrain or use a matching version")
    return doc


def check_backbone_weights(doc: dict[str, Any], spec: str, directory: Path,
                           installed: str | None = None) -> None:
    """The adapter only fits the base weights it was trained on: refuse other ones (the sha256
    training recorded against the installed backbone's files; ``installed``: that sha256 if the
    caller has it already, else it is computed)."""
    from aqm_llm.agent.backbone import backbone_sha256

    trained_on = ((doc.get("metadata") or {}).get("training") or {}).get("backbone_sha256")
    if not trained_on:
        return
    installed = installed or backbone_sha256(spec)
    if installed is not None and installed != trained_on:
        raise ValueError(f"{directory} was trained on backbone weights sha256 {trained_on[:12]}..., but "
                         f"'{spec}' here has {installed[:12]}...: install the same weights or retrain")


def untrained_config(backbone: str = SMOLLM2, *, sample: bool = False) -> PolicyConfig:
    """The config of a new policy on ``backbone``: SmolLM2 cut to :data:`DEFAULT_LAYERS`,
    any other backbone whole."""
    return PolicyConfig(backbone=backbone, layers=DEFAULT_LAYERS if backbone == SMOLLM2 else None,
                        sample=sample)


def checkpoint_digest(directory: Path) -> str:
    """sha256 over the files of a checkpoint that define the policy (config, weights, adapter;
    not the pool summary, the card or the plots)."""
    import hashlib

    h = hashlib.sha256()
    files = [f for f in sorted(directory.rglob("*")) if f.is_file() and f.suffix in (".json", ".safetensors")
             and f.name != "pool-summary.json"]
    for f in files:
        h.update(str(f.relative_to(directory)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def make_llm_policy(checkpoint: str | None = None, backbone: str | None = None,
                    sample: bool = False, runtime: str = ONNX, threads: int = 2,
                    p_prime_band: str | None = None, target_return: float | None = None) -> PolicyAgent:
    """The server's ``--agent llm``: the given checkpoint; without one, the shipped checkpoint if
    ``backbone`` is the one it was trained on (or not given), else an untrained policy.

    ``runtime`` ``onnx`` (default) serves it from its cached ONNX export (built on first use,
    ``agent.export``) with ``threads`` ONNX Runtime threads; ``torch`` runs the PyTorch model.
    ``p_prime_band``: None keeps the checkpoint's band; a factor, ``coupled:FACTOR``, ``ramp:FACTOR`` or 'off'
    replaces it. ``target_return``: None keeps the checkpoint's; a number asks the policy for that
    return (per epoch under ``rtg_mode: per_epoch``) instead."""
    agent = _make_llm_policy(checkpoint, backbone, sample, runtime, threads)
    if target_return is not None:
        agent.config = replace(agent.config, reward=replace(agent.config.reward, target_return=float(target_return)))
    if p_prime_band is not None:
        agent.config = replace(agent.config, p_prime_band=parse_band(p_prime_band),
                               p_prime_form=band_form(p_prime_band))
    return agent


def _make_llm_policy(checkpoint: str | None, backbone: str | None, sample: bool, runtime: str,
                     threads: int) -> PolicyAgent:
    path = resolve_checkpoint(checkpoint, backbone)
    if path is not None:
        check_checkpoint(path)  # before the backbone loads: a damaged checkpoint fails in one line

    def build() -> LlmPolicy:
        if path is not None:
            return LlmPolicy.load(path, backbone_spec=backbone, sample=sample)
        return LlmPolicy(untrained_config(backbone or SMOLLM2, sample=sample))

    if check_runtime(runtime) == TORCH:
        return build()
    from aqm_llm.agent.backbone import backbone_sha256
    from aqm_llm.agent.export import cached_onnx
    from aqm_llm.agent.runtime import OnnxNetwork

    if path is not None:
        doc = read_checkpoint_config(path)
        config = PolicyConfig.from_dict(doc["policy"])
        if backbone is not None:
            config = replace(config, backbone=backbone)
        sha = backbone_sha256(config.backbone)
        if backbone is None:
            check_backbone_weights(doc, config.backbone, path, installed=sha)
        material: dict[str, Any] = {"checkpoint": checkpoint_digest(path)}
        trained, metadata, label = bool(doc["trained"]), doc.get("metadata"), str(path)
    else:
        config = untrained_config(backbone or SMOLLM2)
        sha = backbone_sha256(config.backbone)
        material = {"untrained": {k: v for k, v in config.to_dict().items() if k != "sample"}}
        trained, metadata, label = False, None, f"an untrained {config.backbone} policy"
    material |= {"backbone": config.backbone, "backbone_sha256": sha}
    network = OnnxNetwork(cached_onnx(material, build, label=label), threads=threads)
    return PolicyAgent(replace(config, sample=sample), network, trained=trained, metadata=metadata,
                       source=None if path is None else path.resolve())
