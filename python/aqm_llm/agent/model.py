"""The network: state encoder -> backbone -> L4S-LM head, one forward pass per epoch.

Training calls it on batches (absent slots masked); the agent on one epoch, where absent
slots are dropped from the sequence instead (fewer tokens, same result: present tokens
keep their slot positions and never see absent ones either way).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aqm_llm.agent.backbone import Backbone
from aqm_llm.agent.encoder import EncoderConfig, StateEncoder, TensorInputs
from aqm_llm.agent.head import HeadOutput, L4sLmHead
from aqm_llm.agent.layout import TokenLayout


class AqmModel(nn.Module):
    def __init__(self, layout: TokenLayout, backbone: Backbone,
                 encoder: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.layout = layout
        self.encoder = StateEncoder(layout, backbone.hidden_size, encoder)
        self.backbone = backbone
        self.head = L4sLmHead(layout, backbone.hidden_size)

    def forward(self, x: TensorInputs, *, compact: bool = False) -> HeadOutput:
        """``compact`` (batch of one only): run the backbone on present tokens only."""
        tokens = self.encoder(x)
        b, t, _ = tokens.shape
        positions = torch.arange(t, device=tokens.device)
        if compact:
            if b != 1:
                raise ValueError("compact=True needs a batch of one")
            keep = x.mask[0].nonzero()[:, 0]
            # An explicit all-ones mask: without one, transformers reads the gaps in the
            # position ids as boundaries of packed sequences and splits the attention.
            ones = torch.ones(1, keep.shape[0], dtype=torch.long, device=tokens.device)
            hidden_kept = self.backbone(tokens[:, keep], attention_mask=ones,
                                        position_ids=positions[keep][None])
            hidden = tokens.new_zeros(tokens.shape[:2] + hidden_kept.shape[-1:])
            hidden[:, keep] = hidden_kept
        else:
            hidden = self.backbone(tokens, attention_mask=x.mask.long(),
                                   position_ids=positions.expand(b, t))
        return self.head(hidden)

    def trainable_parameters(self) -> list[tuple[str, Tensor]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]
