"""The L4S-LM head: hidden states -> a valid action, in one pass (no text, no parsing).

At each packet token a Linear gives 3 logits (forward, drop, mark) for each of the token's
packets (``layout.packets_per_token``); at the epoch token a Linear gives, for each of (p_L mark,
p_C drop, p_C mark), logits over the log-spaced probability levels of ``agent.levels`` (an exact
zero, then 1e-6 .. 1), decoded into the probabilities for packets not in the batch -- or, with
the factor output (``agent.factor``), over factors on DualPI2's p' (the same 26-level shape).
Selection turns these into action codes: argmax, or a draw from the softmax with a
``torch.Generator`` seeded per run. Whatever the numbers (even NaN), the result is a valid
action: codes in {0, 1, 2}, probabilities in [0, 1]; a mark on a Not-ECT packet becomes a
drop (RFC 3168 semantics; the queue disc enforces it too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from aqm_llm.channel import Action, TrafficClass
from aqm_llm.agent.interface import mark_to_drop_if_not_ect
from aqm_llm.agent.layout import TokenLayout
from aqm_llm.agent.levels import N_LEVELS, decode_logits

N_ACTIONS = len(Action)
N_EPOCH_PROBS = 3  # p_L mark, p_C drop, p_C mark
# Initial biases: an untrained head mostly forwards (softmax(0, -3, -3): forward 91 %) and puts
# 86 % of each epoch probability's mass on the zero level (e^5 against 25 x e^0): it asks for no
# drops or marks beyond its batch, a benign start for runs and training.
INIT_PACKET_BIAS = (0.0, -3.0, -3.0)
INIT_ZERO_LEVEL_BIAS = 5.0


@dataclass(frozen=True)
class HeadOutput:
    packet_logits: Tensor  # (B, K, 3)
    epoch_logits: Tensor  # (B, 3, N_LEVELS): logits over the probability levels

    @property
    def epoch_probs(self) -> Tensor:
        """(B, 3) probabilities decoded from the levels (``agent.levels.decode``)."""
        return torch.from_numpy(decode_logits(self.epoch_logits.detach().double().cpu().numpy()))


class L4sLmHead(nn.Module):
    def __init__(self, layout: TokenLayout, hidden_size: int):
        super().__init__()
        self.per_token = layout.packets_per_token
        self.packets = layout.packets
        self.packet = nn.Linear(hidden_size, N_ACTIONS * self.per_token)
        self.epoch = nn.Linear(hidden_size, N_EPOCH_PROBS * N_LEVELS)
        for linear in (self.packet, self.epoch):
            nn.init.normal_(linear.weight, std=0.02)
        with torch.no_grad():
            self.packet.bias.copy_(torch.tensor(INIT_PACKET_BIAS).repeat(self.per_token))
            self.epoch.bias.zero_()
            self.epoch.bias.view(N_EPOCH_PROBS, N_LEVELS)[:, 0] = INIT_ZERO_LEVEL_BIAS
        self.register_buffer("_packet_index", torch.from_numpy(layout.packet_indices),
                             persistent=False)
        self.epoch_index = layout.epoch_index

    def forward(self, hidden: Tensor) -> HeadOutput:
        """``hidden``: (B, T, d) backbone outputs in layout order."""
        logits = self.packet(hidden[:, self._packet_index])  # (B, packet tokens, per * 3)
        b = logits.shape[0]
        logits = logits.reshape(b, -1, N_ACTIONS)[:, :self.packets]  # (B, K, 3), packet order
        epoch = self.epoch(hidden[:, self.epoch_index]).reshape(b, N_EPOCH_PROBS, N_LEVELS)
        return HeadOutput(packet_logits=logits, epoch_logits=epoch)


def safe_probabilities(probs: Tensor) -> tuple[float, float, float]:
    """(p_L mark, p_C drop, p_C mark) of one epoch, NaN -> 0, clamped to [0, 1]."""
    p = torch.nan_to_num(probs.detach().double(), nan=0.0).clamp(0.0, 1.0).tolist()
    return float(p[0]), float(p[1]), float(p[2])


def select_packet_actions(logits: Tensor, ecn: npt.NDArray[np.uint8], *, sample: bool,
                          generator: torch.Generator | None = None) -> npt.NDArray[np.uint8]:
    """Codes for the n packets with tokens: ``logits`` (n, 3)."""
    if logits.shape[0] == 0:
        return np.zeros(0, np.uint8)
    logits = torch.nan_to_num(logits.detach().float(), nan=0.0, posinf=1e4, neginf=-1e4)
    if sample:
        probs = torch.softmax(logits, dim=-1)
        codes = torch.multinomial(probs, 1, generator=generator)[:, 0]
    else:
        codes = torch.argmax(logits, dim=-1)
    actions = codes.numpy().astype(np.uint8)
    return mark_to_drop_if_not_ect(actions, ecn)


def overflow_actions(traffic_class: npt.NDArray[np.uint8], ecn: npt.NDArray[np.uint8],
                     probs: tuple[float, float, float],
                     generator: torch.Generator | None = None) -> npt.NDArray[np.uint8]:
    """Codes for request packets past the K with tokens: what the queue disc does with packets
    not in the batch, drawn from the epoch probabilities (reproducible with the run's
    generator): L marked with p_L; C dropped with p_C drop and otherwise marked with p_C mark
    (one draw, as the queue disc's epoch rule), a mark on a Not-ECT packet being a drop."""
    n = traffic_class.shape[0]
    actions = np.zeros(n, np.uint8)
    if n == 0:
        return actions
    u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
    p_l_mark, p_c_drop, p_c_mark = probs
    is_l = traffic_class == TrafficClass.L
    actions[is_l & (u < p_l_mark)] = Action.MARK
    actions[~is_l & (u < p_c_drop + p_c_mark)] = Action.MARK
    actions[~is_l & (u < p_c_drop)] = Action.DROP
    return mark_to_drop_if_not_ect(actions, ecn)
