"""Random but valid requests, for tests and the inference benchmark (no channel needed).

Values are drawn in plausible ranges for a 100 Mb/s L4S bottleneck: sojourns up to 20 ms,
rates up to 200 Mb/s, a mix of L and C packets with their ECN codepoints.
"""

from __future__ import annotations

import numpy as np

from aqm_llm.agent.band import DUALPI2_COUPLING
from aqm_llm.channel import (MAX_PACKETS, REQUEST_DTYPE, WINDOW, Request, Reward, Scalar, Series,
                            TrafficClass)

N_SERIES = len(Series)
N_SCALARS = len(Scalar)
N_REWARDS = len(Reward)


def fill_random_request(record: np.ndarray, rng: np.random.Generator, *, packets: int | None = None,
                        epoch: int = 0, window: int = WINDOW) -> None:
    """Write a random valid request into a 0-d REQUEST_DTYPE record (e.g. a channel's
    ``request_view``)."""
    n = int(rng.integers(0, MAX_PACKETS + 1)) if packets is None else packets
    record["header"]["epoch"] = epoch
    record["header"]["sim_time_ns"] = epoch * 16_000_000
    record["series_count"], record["window_len"] = N_SERIES, window
    record["scalar_count"], record["packet_count"], record["reward_count"] = N_SCALARS, n, N_REWARDS
    series = np.zeros(record["series"].shape)
    w = slice(0, window)  # points in use, oldest first
    series[Series.L_SOJOURN][w] = rng.uniform(0, 5e-3, window)
    series[Series.C_SOJOURN][w] = rng.uniform(0, 20e-3, window)
    series[Series.QUEUE_BYTES][w] = rng.uniform(0, 300e3, window)
    series[Series.ARRIVAL_RATE][w] = rng.uniform(0, 200e6, window)
    series[Series.DEPARTURE_RATE][w] = rng.uniform(0, 100e6, window)
    series[Series.MARKS][w] = rng.integers(0, 50, window)
    series[Series.DROPS][w] = rng.integers(0, 5, window)
    series[Series.CAPACITY][w] = 100e6
    record["series"] = series
    scalars = np.zeros(record["scalars"].shape)
    p_prime = rng.uniform(0, 0.3)
    scalars[:N_SCALARS] = [rng.uniform(0, 15e-3), p_prime, min(DUALPI2_COUPLING * p_prime, 1.0), p_prime ** 2]
    record["scalars"] = scalars
    pk = np.zeros(record["packets"].shape, record["packets"].dtype)
    cls = rng.integers(0, 2, n)
    pk["uid"][:n] = rng.integers(1, 2**40) + np.arange(n)
    pk["sojourn_s"][:n] = rng.uniform(0, 20e-3, n)
    pk["size_bytes"][:n] = rng.choice([64, 576, 1500], n)
    pk["flow_hash"][:n] = rng.integers(0, 6, n)
    pk["traffic_class"][:n] = cls
    # L: ECT(1) or CE; C: Not-ECT or ECT(0) (sometimes CE).
    pk["ecn"][:n] = np.where(cls == TrafficClass.L, rng.choice([1, 3], n), rng.choice([0, 2, 3], n))
    record["packets"] = pk
    rewards = np.zeros(record["rewards"].shape)
    rewards[:N_REWARDS] = [rng.uniform(0.5, 1.0), rng.uniform(0, 2e-3), rng.uniform(0, 15e-3),
                           rng.uniform(0, 0.01)]
    record["rewards"] = rewards


def as_request(record: np.ndarray) -> Request:
    """A :class:`Request` over a 0-d REQUEST_DTYPE record, sliced by its counts (as the
    channel does)."""
    h = record["header"]
    ns, w = int(record["series_count"]), int(record["window_len"])
    return Request(seq=int(h["seq"]), epoch=int(h["epoch"]), sim_time_ns=int(h["sim_time_ns"]),
                   flags=int(h["flags"]), series=record["series"][:ns, :w],
                   scalars=record["scalars"][:int(record["scalar_count"])],
                   packets=record["packets"][:int(record["packet_count"])],
                   rewards=record["rewards"][:int(record["reward_count"])], raw=record)


def random_request(rng: np.random.Generator, *, packets: int | None = None, epoch: int = 0,
                   window: int = WINDOW) -> Request:
    """A fresh random valid request (its own memory)."""
    record = np.zeros((), REQUEST_DTYPE)
    fill_random_request(record, rng, packets=packets, epoch=epoch, window=window)
    return as_request(record)
