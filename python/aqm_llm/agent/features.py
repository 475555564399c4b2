"""Normalisation of request fields into model inputs (numpy only, no torch).

Raw counters, bit rates and seconds never reach the model: every field goes through one
documented scale, so values sit roughly in [0, 10] in ordinary operation. Every normalised
value is finally clipped to [-CLIP, CLIP] so that one absurd input cannot blow up a token.

=====================  =================  ================================================
field                  unit in request    model input
=====================  =================  ================================================
L / C sojourn series   s                  ms / 10                (x * 100)
queue bytes series     bytes              log1p(bytes / 1500)    (full-size packets, log)
arrival, departure,    bit/s              Mb/s / 100             (x * 1e-8)
capacity series
marks, drops series    packets/interval   log1p(count)
burst allowance        s                  ms / 10
p', p_L, p_C           probability        (log10(max(p, 1e-7)) + 7) / 7  (``levels.log_feature``)
packet sojourn         s                  ms / 10
packet size            bytes              bytes / 1500
packet class           L / C              1 for L, 0 for C
packet ECN             0..3               one-hot (Not-ECT, ECT(1), ECT(0), CE)
packet flow            flow hash          share of the batch in the same flow; rank of the
                                          flow's first appearance / 32 (the hash itself is
                                          an identifier, never a feature)
=====================  =================  ================================================

Series rows past the eight defined ones (``channel.Series``) and scalars past the four
defined ones are ignored. A series shorter than the window is right-aligned (newest point
last) with a presence mask, and so is a missing scalar (mask 0).

Bump :data:`FEATURE_VERSION` on any change here: checkpoints record it and refuse to load
with another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from aqm_llm.channel import MAX_PACKETS, MAX_REWARDS, MAX_SCALARS, MAX_SERIES, WINDOW, Request
from aqm_llm.channel import Action, Scalar, Series, TrafficClass
from aqm_llm.agent.levels import log_feature

# 2: probabilities (scalars and the action summary) on a log scale.
FEATURE_VERSION = 2
CLIP = 100.0

N_SERIES = len(Series)  # 8 defined rows
N_SCALARS = len(Scalar)  # 4 defined scalars
N_ECN = 4
# sojourn, size, is_L, ecn one-hot (4), flow share, flow rank, present
PACKET_FEATURES = 10
# per series (mean, last) + scalars + packet batch stats (log1p count, L fraction,
# mean L sojourn, mean C sojourn, ECN-capable fraction)
STATE_SUMMARY_DIM = 2 * N_SERIES + N_SCALARS + 5
# per class (L, C) the fractions forwarded / dropped / marked, then the 3 epoch probabilities
ACTION_SUMMARY_DIM = 2 * 3 + 3

F32 = npt.NDArray[np.float32]


class InvalidRequest(ValueError):
    """A request the agent refuses (NaN, infinity, impossible values); answer with ERROR."""


@dataclass(frozen=True)
class Scale:
    """``linear``: x * factor; ``log1p``: log1p(max(x, 0) * factor); ``logprob``: a probability
    on a log scale (``levels.log_feature``; factor unused)."""

    kind: Literal["linear", "log1p", "logprob"]
    factor: float

    def apply(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self.kind == "linear":
            return x * self.factor
        if self.kind == "logprob":
            return log_feature(x)
        return np.log1p(np.maximum(x, 0.0) * self.factor)


SOJOURN = Scale("linear", 100.0)  # s -> ms / 10
RATE = Scale("linear", 1e-8)  # bit/s -> Mb/s / 100
COUNT = Scale("log1p", 1.0)
PROBABILITY = Scale("logprob", 1.0)

SERIES_SCALES: dict[Series, Scale] = {
    Series.L_SOJOURN: SOJOURN,
    Series.C_SOJOURN: SOJOURN,
    Series.QUEUE_BYTES: Scale("log1p", 1.0 / 1500.0),
    Series.ARRIVAL_RATE: RATE,
    Series.DEPARTURE_RATE: RATE,
    Series.MARKS: COUNT,
    Series.DROPS: COUNT,
    Series.CAPACITY: RATE,
}
SCALAR_SCALES: dict[Scalar, Scale] = {
    Scalar.BURST_ALLOWANCE: SOJOURN,
    Scalar.P_PRIME: PROBABILITY,
    Scalar.P_L: PROBABILITY,
    Scalar.P_C: PROBABILITY,
}
PACKET_SIZE_FACTOR = 1.0 / 1500.0


@dataclass(frozen=True)
class RequestFeatures:
    """One request, normalised. Copies: valid after the reply is sent."""

    series: F32  # (N_SERIES, 2, WINDOW): normalised values, presence mask
    scalars: F32  # (N_SCALARS, 2): normalised value, presence mask
    packets: F32  # (packet_count, PACKET_FEATURES), all packets of the request
    traffic_class: npt.NDArray[np.uint8]  # (packet_count,)
    ecn: npt.NDArray[np.uint8]  # (packet_count,)

    @property
    def packet_count(self) -> int:
        return int(self.packets.shape[0])


def check_request(request: Request) -> None:
    """Raise :class:`InvalidRequest` naming the field unless the request is usable.

    The channel validates too; this also covers requests built in Python (tests, replay)."""
    series, scalars, packets, rewards = (request.series, request.scalars, request.packets,
                                         request.rewards)
    if series.ndim != 2 or series.shape[0] > MAX_SERIES or series.shape[1] > WINDOW:
        raise InvalidRequest(f"series has shape {series.shape}, capacity ({MAX_SERIES}, {WINDOW})")
    if scalars.ndim != 1 or scalars.shape[0] > MAX_SCALARS:
        raise InvalidRequest(f"scalars has shape {scalars.shape}, capacity ({MAX_SCALARS},)")
    if packets.ndim != 1 or packets.shape[0] > MAX_PACKETS:
        raise InvalidRequest(f"packets has shape {packets.shape}, capacity ({MAX_PACKETS},)")
    if rewards.ndim != 1 or rewards.shape[0] > MAX_REWARDS:
        raise InvalidRequest(f"rewards has shape {rewards.shape}, capacity ({MAX_REWARDS},)")
    for name, values in (("series", series), ("scalars", scalars), ("rewards", rewards),
                         ("packets.sojourn_s", packets["sojourn_s"])):
        bad = ~np.isfinite(values)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InvalidRequest(f"{name}{list(where)} is {values[where]} (not finite)")
    if (series[:N_SERIES] < 0).any():
        raise InvalidRequest("series has a negative value")
    if (packets["sojourn_s"] < 0).any():
        raise InvalidRequest("packets.sojourn_s has a negative value")
    if (packets["size_bytes"] < 0).any():
        raise InvalidRequest("packets.size_bytes has a negative value")
    if (packets["traffic_class"] > TrafficClass.C).any():
        raise InvalidRequest("packets.traffic_class outside {0 (L), 1 (C)}")
    if (packets["ecn"] >= N_ECN).any():
        raise InvalidRequest("packets.ecn outside 0..3")


def encode_request(request: Request) -> RequestFeatures:
    """Validate and normalise one request (copies everything it keeps)."""
    check_request(request)
    return RequestFeatures(series=_series(request.series), scalars=_scalars(request.scalars),
                           packets=packet_features(request.packets),
                           traffic_class=np.array(request.packets["traffic_class"], np.uint8),
                           ecn=np.array(request.packets["ecn"], np.uint8))


def _series(raw: npt.NDArray[np.float64]) -> F32:
    out = np.zeros((N_SERIES, 2, WINDOW), np.float32)
    rows, length = min(raw.shape[0], N_SERIES), raw.shape[1]
    for row in range(rows):
        # Right-align: the newest point always sits in the last column.
        out[row, 0, WINDOW - length:] = SERIES_SCALES[Series(row)].apply(raw[row])
        out[row, 1, WINDOW - length:] = 1.0
    np.clip(out, -CLIP, CLIP, out=out)
    return out


def _scalars(raw: npt.NDArray[np.float64]) -> F32:
    out = np.zeros((N_SCALARS, 2), np.float32)
    for i in range(min(raw.shape[0], N_SCALARS)):
        out[i, 0] = SCALAR_SCALES[Scalar(i)].apply(raw[i:i + 1])[0]
        out[i, 1] = 1.0
    np.clip(out, -CLIP, CLIP, out=out)
    return out


def packet_features(packets: np.ndarray) -> F32:
    """(n, PACKET_FEATURES) for the request's packet descriptors (channel.PACKET_DTYPE)."""
    n = packets.shape[0]
    out = np.zeros((n, PACKET_FEATURES), np.float32)
    if n == 0:
        return out
    out[:, 0] = SOJOURN.apply(packets["sojourn_s"])
    out[:, 1] = packets["size_bytes"] * PACKET_SIZE_FACTOR
    out[:, 2] = packets["traffic_class"] == TrafficClass.L
    out[np.arange(n), 3 + packets["ecn"].astype(np.intp)] = 1.0
    # Flows by first appearance: rank 0 is the flow of the head-of-queue packet.
    _, first, inverse, counts = np.unique(packets["flow_hash"], return_index=True,
                                          return_inverse=True, return_counts=True)
    rank_of_unique = np.argsort(np.argsort(first))
    out[:, 7] = counts[inverse] / n
    out[:, 8] = rank_of_unique[inverse] / MAX_PACKETS
    out[:, 9] = 1.0
    np.clip(out, -CLIP, CLIP, out=out)
    return out


def state_summary(features: RequestFeatures) -> F32:
    """The pooled state of one epoch (a history token): pooled over time and packets."""
    values, mask = features.series[:, 0], features.series[:, 1]
    present = mask.sum(axis=1)
    mean = np.where(present > 0, (values * mask).sum(axis=1) / np.maximum(present, 1), 0.0)
    last = values[:, -1] * mask[:, -1]  # right-aligned: the newest point is last
    pk = features.packets
    n = pk.shape[0]
    is_l = pk[:, 2] > 0.5 if n else np.zeros(0, bool)
    stats = np.array([
        np.log1p(n),
        is_l.mean() if n else 0.0,
        pk[is_l, 0].mean() if is_l.any() else 0.0,
        pk[~is_l, 0].mean() if (~is_l).any() else 0.0,
        1.0 - pk[:, 3].mean() if n else 0.0,  # ECN-capable = not Not-ECT
    ])
    out = np.concatenate([mean, last, features.scalars[:, 0], stats]).astype(np.float32)
    assert out.shape == (STATE_SUMMARY_DIM,)
    return out


def action_summary(actions: npt.NDArray[np.uint8], traffic_class: npt.NDArray[np.uint8],
                   probabilities: tuple[float, float, float]) -> F32:
    """The action summary of one epoch (a history token): per class, the fractions of its
    packets forwarded / dropped / marked; then (p_L mark, p_C drop, p_C mark) on the log scale."""
    out = np.zeros(ACTION_SUMMARY_DIM, np.float32)
    for c, cls in enumerate((TrafficClass.L, TrafficClass.C)):
        acts = actions[traffic_class == cls]
        if acts.size:
            out[3 * c:3 * c + 3] = np.bincount(acts, minlength=len(Action))[:3] / acts.size
    out[6:9] = PROBABILITY.apply(np.asarray(probabilities, np.float64))
    return out
