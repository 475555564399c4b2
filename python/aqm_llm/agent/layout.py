"""The token layout of the LLM agent: fixed here, used unchanged by training (issue 8).

One decision epoch is one sequence of at most ``max_tokens`` (64) embedded tokens, oldest first::

    history, H past epochs (oldest first)      current epoch
    [R][S][A] [R][S][A] ... [R][S][A]          [R][s_0..s_G-1][q_0..q_7][p_0..p_K-1][E]

    R  return-to-go token (scalar, see ``reward``)
    S  pooled state of that epoch (``features.state_summary``)
    A  action summary of that epoch (``features.action_summary``)
    s  one token per scalar group (default 2: (burst allowance), (p', p_L, p_C))
    q  one token per time series (8: L/C sojourn, queue bytes, arrival/departure rate,
       marks, drops, capacity), a Conv1d over its window
    p  one token per head-of-queue packet (K = 16 by default)
    E  the epoch token: its hidden state gives (p_L mark, p_C drop, p_C mark)

The current epoch takes 1 + G + 8 + K + 1 = 28 tokens with the defaults; H is then the most
past epochs that fit: H = (64 - 28) // 3 = 12, 64 tokens in all.

Every slot has a fixed position. Slots without content (history not yet filled at the start
of a run: the *oldest* slots; packet slots past the request's packet count) are marked
absent in ``ModelInputs.mask``; the model masks or drops them (it gives the same result).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterator

import numpy as np
import numpy.typing as npt

from aqm_llm.bridge import Request, Scalar
from aqm_llm.agent import features as F

MAX_TOKENS = 64
DEFAULT_PACKETS = 16
DEFAULT_SCALAR_GROUPS: tuple[tuple[int, ...], ...] = (
    (int(Scalar.BURST_ALLOWANCE),),
    (int(Scalar.P_PRIME), int(Scalar.P_L), int(Scalar.P_C)),
)
HISTORY_TOKENS_PER_EPOCH = 3


class TokenType(IntEnum):
    HIST_RTG = 0
    HIST_STATE = 1
    HIST_ACTION = 2
    RTG = 3
    SCALAR = 4
    SERIES = 5
    PACKET = 6
    EPOCH = 7


@dataclass(frozen=True)
class TokenLayout:
    """Where each token sits. Build with :meth:`fit` (computes H) or give every field."""

    packets: int = DEFAULT_PACKETS
    history: int = 12
    scalar_groups: tuple[tuple[int, ...], ...] = DEFAULT_SCALAR_GROUPS
    series: int = F.N_SERIES
    max_tokens: int = MAX_TOKENS

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
        if self.total > self.max_tokens:
            raise ValueError(f"layout needs {self.total} tokens, more than {self.max_tokens}")

    @classmethod
    def fit(cls, *, packets: int = DEFAULT_PACKETS, max_tokens: int = MAX_TOKENS,
            scalar_groups: tuple[tuple[int, ...], ...] = DEFAULT_SCALAR_GROUPS,
            series: int = F.N_SERIES) -> TokenLayout:
        """The layout with as many past epochs as fit in ``max_tokens``."""
        current = 1 + len(scalar_groups) + series + packets + 1
        if current > max_tokens:
            raise ValueError(f"the current epoch alone needs {current} tokens > {max_tokens}")
        history = (max_tokens - current) // HISTORY_TOKENS_PER_EPOCH
        return cls(packets=packets, history=history, scalar_groups=scalar_groups, series=series,
                   max_tokens=max_tokens)

    # ---- sizes and positions

    @property
    def current_tokens(self) -> int:
        return 1 + len(self.scalar_groups) + self.series + self.packets + 1

    @property
    def history_tokens(self) -> int:
        return HISTORY_TOKENS_PER_EPOCH * self.history

    @property
    def total(self) -> int:
        return self.history_tokens + self.current_tokens

    def history_slots(self, j: int) -> tuple[int, int, int]:
        """(RTG, state, action) positions of history entry j (0 = oldest slot)."""
        if not 0 <= j < self.history:
            raise IndexError(f"history entry {j} not in 0..{self.history - 1}")
        base = HISTORY_TOKENS_PER_EPOCH * j
        return base, base + 1, base + 2

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
        return slice(start, start + self.series)

    @property
    def packet_slice(self) -> slice:
        start = self.series_slice.stop
        return slice(start, start + self.packets)

    @property
    def packet_indices(self) -> npt.NDArray[np.intp]:
        return np.arange(self.packet_slice.start, self.packet_slice.stop)

    @property
    def epoch_index(self) -> int:
        return self.total - 1

    def present_tokens(self, packets: int, past_epochs: int) -> int:
        """Tokens with content for a request with ``packets`` packets after ``past_epochs``
        epochs of the run (what the agent's compact forward pass runs on)."""
        return (self.current_tokens - self.packets + min(packets, self.packets)
                + HISTORY_TOKENS_PER_EPOCH * min(past_epochs, self.history))

    def token_types(self) -> npt.NDArray[np.int64]:
        types = np.empty(self.total, np.int64)
        hist = np.array([TokenType.HIST_RTG, TokenType.HIST_STATE, TokenType.HIST_ACTION])
        types[:self.history_tokens] = np.tile(hist, self.history)
        types[self.rtg_index] = TokenType.RTG
        types[self.scalar_slice] = TokenType.SCALAR
        types[self.series_slice] = TokenType.SERIES
        types[self.packet_slice] = TokenType.PACKET
        types[self.epoch_index] = TokenType.EPOCH
        return types

    def describe(self) -> str:
        return (f"{self.total} tokens: {self.history} past epochs x [RTG][state][action], then "
                f"[RTG] {len(self.scalar_groups)} scalar, {self.series} series, "
                f"{self.packets} packet tokens, [epoch]")

    def to_dict(self) -> dict[str, object]:
        return {"packets": self.packets, "history": self.history, "series": self.series,
                "scalar_groups": [list(g) for g in self.scalar_groups],
                "max_tokens": self.max_tokens}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> TokenLayout:
        groups = tuple(tuple(int(i) for i in g) for g in d["scalar_groups"])  # type: ignore[attr-defined]
        return cls(packets=int(d["packets"]), history=int(d["history"]),  # type: ignore[arg-type]
                   series=int(d["series"]), scalar_groups=groups,  # type: ignore[arg-type]
                   max_tokens=int(d["max_tokens"]))  # type: ignore[arg-type]


DEFAULT_LAYOUT = TokenLayout.fit()


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
    mask = np.ones(layout.total, bool)
    n = min(feats.packet_count, k)
    packets = np.zeros((k, F.PACKET_FEATURES), np.float32)
    packets[:n] = feats.packets[:n]
    mask[layout.packet_slice.start + n:layout.packet_slice.stop] = False
    hist_rtg = np.zeros((h, 1), np.float32)
    hist_state = np.zeros((h, F.STATE_SUMMARY_DIM), np.float32)
    hist_action = np.zeros((h, F.ACTION_SUMMARY_DIM), np.float32)
    records = list(history)[-h:] if h else []
    first = h - len(records)
    for j, rec in enumerate(records, start=first):
        hist_rtg[j, 0], hist_state[j], hist_action[j] = rec.rtg, rec.state, rec.action
    mask[:HISTORY_TOKENS_PER_EPOCH * first] = False
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
