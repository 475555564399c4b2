"""The state encoder: request features -> one embedded token per layout slot.

Each input kind has its own feature encoder, projected to the backbone's hidden size d:
scalar groups a Linear each, time series a Conv1d over the window (per-series filters; the
filtered series of one token concatenated, then a Linear), packet descriptors a Linear over
the concatenated descriptors of one token, history tokens (pooled state, action summary) and
return-to-go a Linear each (or, one token per past epoch, one Linear over the three), the
epoch token a learned vector. Learned
token-type and position (slot) embeddings are added, then a LayerNorm keeps the tokens at a
scale the backbone's layers expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from aqm_llm.agent import features as F
from aqm_llm.agent.layout import ModelInputs, TokenLayout, TokenType
from aqm_llm.channel import WINDOW


@dataclass(frozen=True)
class EncoderConfig:
    conv_channels: int = 32  # filters per series
    conv_kernel: int = 4


@dataclass(frozen=True)
class TensorInputs:
    """:class:`ModelInputs` as float tensors with a batch axis (B, ...)."""

    rtg: Tensor  # (B, 1)
    scalars: Tensor  # (B, N_SCALARS, 2)
    series: Tensor  # (B, series, 2, WINDOW)
    packets: Tensor  # (B, K, PACKET_FEATURES)
    hist_rtg: Tensor  # (B, H, 1)
    hist_state: Tensor  # (B, H, STATE_SUMMARY_DIM)
    hist_action: Tensor  # (B, H, ACTION_SUMMARY_DIM)
    mask: Tensor  # (B, T) bool

    @classmethod
    def from_numpy(cls, inputs: ModelInputs, device: torch.device | str = "cpu") -> TensorInputs:
        batched = inputs.mask.ndim == 2
        out = {}
        for name in ModelInputs.__dataclass_fields__:
            arr = np.asarray(getattr(inputs, name))
            t = torch.from_numpy(arr if batched else arr[None])
            out[name] = t.to(device=device, dtype=torch.bool if name == "mask" else torch.float32)
        return cls(**out)

    @property
    def batch_size(self) -> int:
        return int(self.mask.shape[0])


class StateEncoder(nn.Module):
    def __init__(self, layout: TokenLayout, hidden_size: int, cfg: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.layout = layout
        d, c, k = hidden_size, cfg.conv_channels, cfg.conv_kernel
        self.rtg = nn.Linear(1, d)
        self.scalar_groups = nn.ModuleList(nn.Linear(2 * len(g), d) for g in layout.scalar_groups)
        self.register_buffer("_scalar_index", torch.tensor(
            [i for g in layout.scalar_groups for i in g], dtype=torch.long), persistent=False)
        s = layout.series
        # groups=s: each series has its own filters over (value, presence) channels.
        self.series_conv = nn.Conv1d(2 * s, c * s, kernel_size=k, groups=s)
        self.series_proj = nn.Linear(layout.series_per_token * c * (WINDOW - k + 1), d)
        self.packet = nn.Linear(layout.packets_per_token * F.PACKET_FEATURES, d)
        if layout.tokens_per_past_epoch == 1:
            self.hist_epoch = nn.Linear(1 + F.STATE_SUMMARY_DIM + F.ACTION_SUMMARY_DIM, d)
        else:
            self.hist_state = nn.Linear(F.STATE_SUMMARY_DIM, d)
            self.hist_action = nn.Linear(F.ACTION_SUMMARY_DIM, d)
        self.epoch_token = nn.Parameter(torch.zeros(d))
        self.type_embedding = nn.Embedding(len(TokenType), d)
        self.position_embedding = nn.Embedding(layout.total, d)
        self.norm = nn.LayerNorm(d)
        self.register_buffer("_types", torch.from_numpy(layout.token_types()), persistent=False)
        self.register_buffer("_positions", torch.arange(layout.total), persistent=False)
        nn.init.normal_(self.epoch_token, std=0.02)
        nn.init.normal_(self.type_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def forward(self, x: TensorInputs) -> Tensor:
        """(B, T, d) token embeddings in layout order."""
        b, lay = x.batch_size, self.layout
        parts: list[Tensor] = []
        if lay.history and lay.tokens_per_past_epoch == 1:
            parts.append(self.hist_epoch(torch.cat([x.hist_rtg, x.hist_state, x.hist_action], dim=-1)))
        elif lay.history:
            hist = torch.stack([self.rtg(x.hist_rtg), self.hist_state(x.hist_state),
                                self.hist_action(x.hist_action)], dim=2)  # (B, H, 3, d)
            parts.append(hist.flatten(1, 2))
        parts.append(self.rtg(x.rtg)[:, None])
        scalars = x.scalars[:, self._scalar_index]  # (B, sum(group sizes), 2)
        start = 0
        for group, proj in zip(lay.scalar_groups, self.scalar_groups):
            chunk = scalars[:, start:start + len(group)]
            parts.append(proj(chunk.flatten(1))[:, None])
            start += len(group)
        conv = torch.relu(self.series_conv(x.series.flatten(1, 2)))  # (B, s*c, W-k+1)
        parts.append(self.series_proj(grouped(conv.view(b, lay.series, -1), lay.series_per_token)))
        packets = self.packet(grouped(x.packets, lay.packets_per_token))
        epoch = self.epoch_token.expand(b, 1, -1)
        parts.extend([packets, epoch] if lay.epoch_sees_packets else [epoch, packets])
        tokens = torch.cat(parts, dim=1)
        tokens = tokens + self.type_embedding(self._types) + self.position_embedding(self._positions)
        return self.norm(tokens)


def grouped(items: Tensor, per: int) -> Tensor:
    """(B, n, f) -> (B, ceil(n / per), per * f): ``per`` consecutive items concatenated into
    one token's features, the last token zero-padded."""
    b, n, f = items.shape
    tokens = -(-n // per)
    if per * tokens != n:
        items = torch.cat([items, items.new_zeros(b, per * tokens - n, f)], dim=1)
    return items.reshape(b, tokens, per * f)
