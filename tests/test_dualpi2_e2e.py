"""End to end: DualPI2 in the dumbbell and behind a Wi-Fi AP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from statistics import mean

import pytest

import aqm_llm

# The setting: 100 Mb/s, 20 ms base RTT, one DCTCP (ECT(1)) and one Cubic flow,
# 30 s, statistics over t in [5, 30] s, mean of 3 seeds.
DUMBBELL = {"bottleneck_rate": "100Mbps", "rtt": "20ms", "l4s_flows": 1, "classic_flows": 1,
            "duration": "30s", "warmup": "5s"}


@pytest.fixture(scope="module")
def dumbbell_runs(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("dualpi2")
    with ThreadPoolExecutor(max_workers=2) as pool:  # one simulation per core
        return list(pool.map(lambda s: aqm_llm.run("dumbbell", qdisc="dualpi2", seed=s, params=DUMBBELL,
                                                   output_dir=out), (1, 2, 3)))


def _mean(runs: list[dict], *path: str) -> float:
    def get(m: dict) -> float:
        for p in path:
            m = m[p]
        return float(m)
    return mean(get(m) for m in runs)


def test_l4s_queue_delay_is_low(dumbbell_runs):
    assert _mean(dumbbell_runs, "classes", "l4s", "sojourn_ms", "mean") < 2.0
    assert _mean(dumbbell_runs, "classes", "l4s", "sojourn_ms", "p99") < 5.0


def test_classic_queue_delay_near_target(dumbbell_runs):
    assert 5.0 < _mean(dumbbell_runs, "classes", "classic", "sojourn_ms", "mean") < 25.0


def test_coupling_balances_the_two_flows(dumbbell_runs):
    ratio = _mean(dumbbell_runs, "classes", "l4s", "goodput_mbps") / _mean(
        dumbbell_runs, "classes", "classic", "goodput_mbps")
    assert 0.5 <= ratio <= 2.0


def test_utilisation_above_09(dumbbell_runs):
    assert _mean(dumbbell_runs, "utilisation") > 0.9


def test_l4s_packets_are_marked_not_dropped(dumbbell_runs):
    for m in dumbbell_runs:
        assert m["classes"]["l4s"]["drops"] == 0
        assert m["classes"]["l4s"]["marks"] > 0
        assert m["qdisc_type"] == "ns3::DualPi2QueueDisc"


def test_wifi_option_keeps_dctcp_alive(tmp_path):
    params = {"l4s_flows": 1, "classic_flows": 1, "duration": "15s", "warmup": "5s"}
    on = aqm_llm.run("wifi", qdisc="dualpi2", seed=1, params={**params, "exclude_blocked_time": True},
                     output_dir=tmp_path)
    total = on["classes"]["l4s"]["goodput_mbps"] + on["classes"]["classic"]["goodput_mbps"]
    assert on["classes"]["l4s"]["goodput_mbps"] >= 0.25 * total


def test_qdisc_stream_gives_other_draws(tmp_path):
    """qdisc_stream: the same stream index gives the same run, another index other drops and
    marks; -1 is ns-3's automatic assignment, the default's run."""
    params = {"bottleneck_rate": "20Mbps", "rtt": "20ms", "duration": "3s", "warmup": "1s"}

    def signals(name: str, **extra: int) -> tuple:
        m = aqm_llm.run("dumbbell", qdisc="dualpi2", seed=1, params={**params, **extra},
                        output_dir=tmp_path / name)
        return (m["drops"], m["marks"], m["classes"]["l4s"]["sojourn_ms"]["p99"],
                m["classes"]["classic"]["sojourn_ms"]["p99"])

    default, automatic = signals("default"), signals("auto", qdisc_stream=-1)
    first, again, other = (signals("s7", qdisc_stream=7), signals("s7b", qdisc_stream=7),
                           signals("s8", qdisc_stream=8))
    assert default == automatic
    assert first == again
    assert first != other
    assert default[1] > 0 and other[1] > 0  # both runs marked: the draws were exercised
