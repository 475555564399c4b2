"""The token layout of the LLM agent: shared by the agent online and by training.

One decision epoch is one sequence of at most ``max_tokens`` embedded tokens, oldest first::

    history, H past epochs (oldest first)      current epoch
    [h_0] [h_1] ... [h_H-1]                    [R][s_0..s_G-1][q_0..q_Q-1][p_0..p_P-1][E]

    h  one past epoch: ``tokens_per_past_epoch`` tokens, either 3 ([R][S][A]: return-to-go,
       pooled state ``features.state_summary``, action summary ``features.action_summary``)
       or 1 (the three concatenated into one token)
    R  return-to-go token (scalar, see ``reward``)
    s  one token per scalar group (default 2: (burst allowance), (p', p_L, p_C))
    q  the 8 time series (L/C sojourn, queue bytes, arrival/departure rate, marks, drops,
       capacity), a Conv1d per series over its window, ``series_per_token`` series a token
    p  the K head-of-queue packets (K = 16), ``packets_per_token`` packets a token
    E  the epoch token: its hidden state gives (p_L mark, p_C drop, p_C mark)

With ``epoch_sees_packets`` false the epoch token comes before the packet tokens,
``[R][s..][q..][E][p..]``: the backbone's attention is causal, so the epoch decision is then
computed from the state alone (the same whatever the head-of-queue packets), while each packet
token still sees the state and the epoch token. Why: the shipped checkpoint's epoch probability
rose with the packet tokens where capacity collapses (configs/evaluate-no-batch-probe.yaml).

The default (:data:`DEFAULT_LAYOUT`) is the dense one the agent decides within one 16 ms epoch
with: 1 token per past epoch, 2 series and 4 packets a token, so the current epoch takes
1 + 2 + 4 + 4 + 1 = 12 tokens and H = 12 past epochs fill 24 tokens. The first checkpoint's
layout (one token per item, ``TokenLayout.fit(max_tokens=64)``: 28 + 12 x 3 = 64 tokens) still
loads: every field has the default of that layout, so a saved layout without the new fields
reads as it was (docs/bench-inference.md says why the default changed).

Every slot has a fixed position. Slots without content (history not yet filled at the start
of a run: the *oldest* slots; packet tokens all of whose packets are past the request's
packet count) are marked absent in ``ModelInputs.mask``; the model masks or drops them (it
gives the same result).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterator

import numpy as np
import numpy.typing as npt

from aqm_llm.channel import Request, Scalar
from aqm_llm.agent import features as F

MAX_TOKENS = 64
DEFAULT_PACKETS = 16
DEFAULT_SCALAR_GROUPS: tuple[tuple[int, ...], ...] = (
    (int(Scalar.BURST_ALLOWANCE),),
    (int(Scalar.P_PRIME), int(Scalar.P_L), int(Scalar.P_C)),
)
WIDE_TOKENS_PER_PAST_EPOCH = 3  # [R][S][A]
PAST_EPOCH_TOKENS = (1, WIDE_TOKENS_PER_PAST_EPOCH)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class TokenType(IntEnum):
    HIST_RTG = 0
    HIST_STATE = 1  # also the one token of a past epoch when it has one token
    HIST_ACTION = 2
    RTG = 3
    SCALAR = 4
    SERIES = 5
    PACKET = 6
    EPOCH = 7


@dataclass(frozen=True)
class TokenLayout:
    """Where each token sits. Build with :meth:`fit` (computes H) or give every field.

    The field defaults are the first checkpoint's one-token-per-item layout (old saved
    layouts lack the grouping fields); :data:`DEFAULT_LAYOUT` is the dense default."""

    packets: int = DEFAULT_PACKETS
    history: int = 12
    scalar_groups: tuple[tuple[int, ...], ...] = DEFAULT_SCALAR_GROUPS
    series: int = F.N_SERIES
    max_tokens: int = MAX_TOKENS
    packets_per_token: int = 1
    series_per_token: int = 1
    tokens_per_past_epoch: int = WIDE_TOKENS_PER_PAST_EPOCH
    epoch_sees_packets: bool = True  # False: [E] before the packet tokens (see the module doc)

    def __post_init__(self) -> None:
        if not 1 <= self.packets <= 32:
            raise ValueError(f"packets = {self.packets} not in 1..32")
        if self.history < 0:
            raise ValueError(f"history = {self.history} is negative")
        if not 1 <= self.series <= F.N_SERIES:
            raise ValueError(f"series = {self.series} not in 1..{F.N_SERIES}")
        for group in self.scalar_groups:
            if not group or any(not 0 <= i < F.N_SCALARS for i in group):
                raise ValueError(f"scalar group {group}: indices must be in 0..{F.N_SCALARS - 1}")
        if not 1 <= self.packets_per_token <= self.packets:
            raise ValueError(f"packets_per_token = {self.packets_per_token} not in 1..{self.packets}")
        if not 1 <= self.series_per_token <= self.series:
            raise ValueError(f"series_per_token = {self.series_per_token} not in 1..{self.series}")
        if self.tokens_per_past_epoch not in PAST_EPOCH_TOKENS:
            raise ValueError(f"tokens_per_past_epoch = {self.tokens_per_past_epoch}: allowed "
                             f"{', '.join(map(str, PAST_EPOCH_TOKENS))}")
        if self.total > self.max_tokens:
            raise ValueError(f"layout needs {self.total} tokens, more than {self.max_tokens}")

    @classmethod
    def fit(cls, *, packets: int = DEFAULT_PACKETS, max_tokens: int = MAX_TOKENS,
            scalar_groups: tuple[tuple[int, ...], ...] = DEFAULT_SCALAR_GROUPS,
            series: int = F.N_SERIES, packets_per_token: int = 1, series_per_token: int = 1,
            tokens_per_past_epoch: int = WIDE_TOKENS_PER_PAST_EPOCH,
            epoch_sees_packets: bool = True) -> TokenLayout:
        """The layout with as many past epochs as fit in ``max_tokens``."""
        grouping = {"packets_per_token": packets_per_token, "series_per_token": series_per_token,
                    "tokens_per_past_epoch": tokens_per_past_epoch,
                    "epoch_sees_packets": epoch_sees_packets}
        probe = cls(packets=packets, history=0, scalar_groups=scalar_groups, series=series,
                    max_tokens=10**6, **grouping)  # validates the grouping
        current = probe.current_tokens
        if current > max_tokens:
            raise ValueError(f"the current epoch alone needs {current} tokens > {max_tokens}")
        history = (max_tokens - current) // tokens_per_past_epoch
        return cls(packets=packets, history=history, scalar_groups=scalar_groups, series=series,
                   max_tokens=max_tokens, **grouping)

    # ---- sizes and positions

    @property
    def packet_tokens(self) -> int:
        return _ceil_div(self.packets, self.packets_per_token)

    @property
    def series_tokens(self) -> int:
        return _ceil_div(self.series, self.series_per_token)

    @property
    def current_tokens(self) -> int:
        return 1 + len(self.scalar_groups) + self.series_tokens + self.packet_tokens + 1

    @property
    def history_tokens(self) -> int:
        return self.tokens_per_past_epoch * self.history

    @property
    def total(self) -> int:
        return self.history_tokens + self.current_tokens

    def history_slice(self, j: int) -> slice:
        """The tokens of history entry j (0 = oldest slot)."""
        if not 0 <= j < self.history:
            raise IndexError(f"history entry {j} not in 0..{self.history - 1}")
        base = self.tokens_per_past_epoch * j
        return slice(base, base + self.tokens_per_past_epoch)

    def history_slots(self, j: int) -> tuple[int, int, int]:
        """(RTG, state, action) positions of history entry j in a 3-token-per-epoch layout."""
        if self.tokens_per_past_epoch != WIDE_TOKENS_PER_PAST_EPOCH:
            raise ValueError("history_slots: this layout has one token per past epoch")
        sl = self.history_slice(j)
        return sl.start, sl.start + 1, sl.start + 2

    @property
    def rtg_index(self) -> int:
        return self.history_tokens

    @property
    def scalar_slice(self) -> slice:
        start = self.rtg_index + 1
        return slice(start, start + len(self.scalar_groups))

    @property
    def series_slice(self) -> slice:
        start = self.scalar_slice.stop
        return slice(start, start + self.series_tokens)

    @property
    def packet_slice(self) -> slice:
        """The packet tokens (``packets_per_token`` packets each)."""
        start = self.series_slice.stop + (0 if self.epoch_sees_packets else 1)
        return slice(start, start + self.packet_tokens)

    @property
    def packet_indices(self) -> npt.NDArray[np.intp]:
        return np.arange(self.packet_slice.start, self.packet_slice.stop)

    @property
    def epoch_index(self) -> int:
        return self.total - 1 if self.epoch_sees_packets else self.series_slice.stop

    def presence_mask(self, packet_counts: npt.ArrayLike,
                      past_epochs: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """(B, total) True where a slot has content, for B epochs with ``packet_counts``
        packets after ``past_epochs`` epochs of their run (the newest history slots fill
        first). The one rule the agent online and training batches both use."""
        counts = np.minimum(np.asarray(packet_counts, np.int64), self.packets)
        past = np.minimum(np.asarray(past_epochs, np.int64), self.history)
        mask = np.ones((counts.shape[0], self.total), bool)
        first_packet = np.arange(self.packet_tokens) * self.packets_per_token
        mask[:, self.packet_slice] = first_packet[None, :] < counts[:, None]
        entry = np.repeat(np.arange(self.history), self.tokens_per_past_epoch)
        mask[:, :self.history_tokens] = entry[None, :] >= (self.history - past)[:, None]
        return mask

    def present_tokens(self, packets: int, past_epochs: int) -> int:
        """Tokens with content for a request with ``packets`` packets after ``past_epochs``
        epochs of the run (what the agent's compact forward pass runs on)."""
        return int(self.presence_mask([packets], [past_epochs]).sum())

    def token_types(self) -> npt.NDArray[np.int64]:
        types = np.empty(self.total, np.int64)
        if self.tokens_per_past_epoch == WIDE_TOKENS_PER_PAST_EPOCH:
            hist = np.array([TokenType.HIST_RTG, TokenType.HIST_STATE, TokenType.HIST_ACTION])
        else:
            hist = np.array([TokenType.HIST_STATE])
        types[:self.history_tokens] = np.tile(hist, self.history)
        types[self.rtg_index] = TokenType.RTG
        types[self.scalar_slice] = TokenType.SCALAR
        types[self.series_slice] = TokenType.SERIES
        types[self.packet_slice] = TokenType.PACKET
        types[self.epoch_index] = TokenType.EPOCH
        return types

    def describe(self) -> str:
        past = ("[RTG][state][action]" if self.tokens_per_past_epoch == WIDE_TOKENS_PER_PAST_EPOCH
                else "1 token [RTG+state+action]")
        def per(n: int, what: str) -> str:
            return f" ({n} {what} a token)" if n > 1 else ""
        packets = (f"{self.packet_tokens} packet tokens"
                   f"{per(self.packets_per_token, 'packets')}")
        current = f"{packets}, [epoch]" if self.epoch_sees_packets else f"[epoch], {packets}"
        return (f"{self.total} tokens: {self.history} past epochs x {past}, then "
                f"[RTG] {len(self.scalar_groups)} scalar, {self.series_tokens} series"
                f"{per(self.series_per_token, 'series')}, {current}")

    def to_dict(self) -> dict[str, object]:
        return {"packets": self.packets, "history": self.history, "series": self.series,
                "scalar_groups": [list(g) for g in self.scalar_groups],
                "max_tokens": self.max_tokens, "packets_per_token": self.packets_per_token,
                "series_per_token": self.series_per_token,
                "tokens_per_past_epoch": self.tokens_per_past_epoch,
                "epoch_sees_packets": self.epoch_sees_packets}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> TokenLayout:
        groups = tuple(tuple(int(i) for i in g) for g in d["scalar_groups"])  # type: ignore[attr-defined]
        grouping: dict[str, object] = {
            name: int(d[name]) for name in  # type: ignore[call-overload]
            ("packets_per_token", "series_per_token", "tokens_per_past_epoch") if name in d}
        if "epoch_sees_packets" in d:
            if not isinstance(d["epoch_sees_packets"], bool):
                raise ValueError(f"epoch_sees_packets = {d['epoch_sees_packets']!r}: expected true or false")
            grouping["epoch_sees_packets"] = d["epoch_sees_packets"]
        return cls(packets=int(d["packets"]), history=int(d["history"]),  # type: ignore[arg-type]
                   series=int(d["series"]), scalar_groups=groups,  # type: ignore[arg-type]
                   max_tokens=int(d["max_tokens"]), **grouping)  # type: ignore[arg-type]


#: The first checkpoint's layout: one token per item, 64 tokens (30-layer backbone, ~200 ms).
WIDE_LAYOUT = TokenLayout.fit(max_tokens=64)
#: The dense default: 24 tokens (12 past epochs of 1 token, 4 series and 4 packet tokens).
DEFAULT_LAYOUT = TokenLayout.fit(max_tokens=24, packets_per_token=4, series_per_token=2,
                                 tokens_per_past_epoch=1)


# ---------------------------------------------------------------------------- history


@dataclass(frozen=True)
class EpochRecord:
    """What the agent keeps of one past epoch."""

    rtg: float  # the RTG token value the epoch was conditioned on
    state: F.F32  # (STATE_SUMMARY_DIM,)
    action: F.F32  # (ACTION_SUMMARY_DIM,)


@dataclass
class History:
    """The last ``capacity`` epochs of one run, oldest first."""

    capacity: int
    _records: deque[EpochRecord] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._records = deque(maxlen=self.capacity)

    def append(self, record: EpochRecord) -> None:
        if self.capacity:
            self._records.append(record)

    def clear(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self._records)


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ModelInputs:
    """Numpy model inputs of one epoch (or of a batch: every array gets a leading axis)."""

    rtg: F.F32  # (1,)
    scalars: F.F32  # (N_SCALARS, 2)
    series: F.F32  # (series, 2, WINDOW)
    packets: F.F32  # (K, PACKET_FEATURES); rows past the packet count are zero
    hist_rtg: F.F32  # (H, 1)
    hist_state: F.F32  # (H, STATE_SUMMARY_DIM)
    hist_action: F.F32  # (H, ACTION_SUMMARY_DIM)
    mask: npt.NDArray[np.bool_]  # (total,) True where a slot has content


def build_inputs(feats: F.RequestFeatures, history: History, rtg: float,
                 layout: TokenLayout) -> ModelInputs:
    """Model inputs for the current epoch from its features and the agent's history.

    Only the first K packets get tokens; history entries fill the newest slots first."""
    k, h = layout.packets, layout.history
    n = min(feats.packet_count, k)
    packets = np.zeros((k, F.PACKET_FEATURES), np.float32)
    packets[:n] = feats.packets[:n]
    hist_rtg = np.zeros((h, 1), np.float32)
    hist_state = np.zeros((h, F.STATE_SUMMARY_DIM), np.float32)
    hist_action = np.zeros((h, F.ACTION_SUMMARY_DIM), np.float32)
    records = list(history)[-h:] if h else []
    first = h - len(records)
    for j, rec in enumerate(records, start=first):
        hist_rtg[j, 0], hist_state[j], hist_action[j] = rec.rtg, rec.state, rec.action
    mask = layout.presence_mask([n], [len(records)])[0]
    return ModelInputs(rtg=np.array([rtg], np.float32), scalars=feats.scalars,
                       series=feats.series[:layout.series], packets=packets, hist_rtg=hist_rtg,
                       hist_state=hist_state, hist_action=hist_action, mask=mask)


def build_inputs_from_request(request: Request, history: History, rtg: float,
                              layout: TokenLayout) -> tuple[ModelInputs, F.RequestFeatures]:
    """:func:`build_inputs` from the request's numpy views (validates and normalises first)."""
    feats = F.encode_request(request)
    return build_inputs(feats, history, rtg, layout), feats


def stack_inputs(items: list[ModelInputs]) -> ModelInputs:
    """A batch (leading axis) of per-epoch inputs, for training."""
    return ModelInputs(**{name: np.stack([getattr(it, name) for it in items])
                          for name in ModelInputs.__dataclass_fields__})
