"""DualPI2's PI2 controller against an independent transcription of RFC 9332 Appendix A.

The reference below is written from the RFC's pseudocode (Appendix A, the PI2 update run every
Tupdate), not from the C++ code:

    curq = cq.time()                                    # Classic queue delay
    p' = p' + alpha * (curq - target) + beta * (curq - prevq)
    p' = min(max(p', 0), 1)                             # a probability
    p_CL = k * p'  (used as min(k p', 1))               # coupled L4S probability
    p_C  = p'^2                                         # Classic probability
    prevq = curq

The C++ side is `aqm-llm-dualpi2-trace` (ns3_module/tools/dualpi2-trace.cc): it runs
ns3::DualPi2Controller on the delays given on stdin and prints p', p_C, p_CL per update.
Delays are given in whole nanoseconds (the resolution of ns3::Time), so both sides see the
same numbers.
"""

from __future__ import annotations

import math
import random
import subprocess

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aqm_llm import native  # noqa: E402

TOOL = native.tool_binary("dualpi2-trace")

# RFC 9332 Appendix A: target 15 ms, RTT_max 100 ms.
TARGET = 0.015
RTT_MAX = 0.100
TUPDATE = min(TARGET, RTT_MAX / 3)
ALPHA = 0.1 * TUPDATE / RTT_MAX**2
BETA = 0.3 / RTT_MAX
K = 2.0

TOL = 1e-12


def rfc9332_pi2(delays, *, target=TARGET, alpha=ALPHA, beta=BETA, k=K, use_max=False,
                max_prob=1.0):
    """RFC 9332 Appendix A's dualpi2_update, once per delay sample.

    ``delays``: Classic queue delays in seconds, or (classic, L) pairs; ``use_max`` takes
    max(classic, L) as the delay (Linux sch_dualpi2's variant).
    """
    p = 0.0      # p'
    prevq = 0.0
    out = []
    for d in delays:
        cq, lq = d if isinstance(d, tuple) else (d, 0.0)
        curq = max(cq, lq) if use_max else cq
        p = p + alpha * (curq - target) + beta * (curq - prevq)
        p = min(max(p, 0.0), max_prob)
        p_cl = min(k * p, 1.0)
        p_c = p * p
        prevq = curq
        out.append((p, p_c, p_cl))
    return out


def ns(x: float) -> float:
    """A delay rounded to whole nanoseconds (ns3::Time's resolution)."""
    return round(x * 1e9) / 1e9


def cpp_pi2(delays, *args: str):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} missing: run `make build`")
    lines = []
    for d in delays:
        lines.append(f"{d[0]!r} {d[1]!r}" if isinstance(d, tuple) else repr(d))
    proc = subprocess.run([str(TOOL), *args], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=60, check=True)
    return [tuple(float(v) for v in line.split()) for line in proc.stdout.splitlines()]


def assert_same(cpp, ref):
    assert len(cpp) == len(ref)
    for i, (c, r) in enumerate(zip(cpp, ref)):
        for name, a, b in zip(("p'", "p_C", "p_CL"), c, r):
            assert math.isclose(a, b, rel_tol=0, abs_tol=TOL), f"update {i}: {name} {a} != {b}"


def ramp_up_down():
    up = [ns(0.002 * i) for i in range(120)]          # 0 .. 238 ms: p' climbs to 1
    return up + up[::-1] + [0.0] * 400                # back down, then p' drains to 0


def random_walk(seed: int, n: int = 400):
    rng = random.Random(seed)
    q, out = 0.015, []
    for _ in range(n):
        q = min(max(q + rng.gauss(0, 0.004), 0.0), 0.25)
        out.append(ns(q))
    return out


SEQUENCES = {
    "empty-queue": [0.0] * 20,
    "at-target": [TARGET] * 50,
    "ramp-both-clamps": ramp_up_down(),
    "spike": [0.0, 0.5, 0.5, 0.0, 0.0, 0.001, 0.3, 0.0],
    "square-wave": ([0.005] * 10 + [0.060] * 10) * 8,
    "random-walk-1": random_walk(1),
    "random-walk-2": random_walk(2),
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_rfc_gains_match_reference(name):
    delays = SEQUENCES[name]
    ref = rfc9332_pi2(delays)
    assert_same(cpp_pi2(delays), ref)


def test_sequences_hit_both_clamps():
    ps = [p for p, _, _ in rfc9332_pi2(SEQUENCES["ramp-both-clamps"])]
    assert max(ps) == 1.0 and ps[-1] == 0.0
    assert 0.0 < ps[10] < 1.0                         # and the unclamped region in between
    spike = [p for p, _, _ in rfc9332_pi2(SEQUENCES["spike"])]
    assert spike[1] == 1.0 and spike[3] == 0.0


def test_default_gains_are_rfc_appendix_a():
    # The tool's defaults (= DualPi2Controller::Params) are the derived RFC values.
    assert math.isclose(ALPHA, 0.15) and math.isclose(BETA, 3.0) and TUPDATE == TARGET
    delays = [0.02, 0.03]
    assert_same(cpp_pi2(delays), [(0.06075, 0.06075**2, 0.1215), (0.093, 0.093**2, 0.186)])


def test_linux_gains_and_other_coupling():
    delays = SEQUENCES["random-walk-1"]
    ref = rfc9332_pi2(delays, alpha=0.16, beta=3.2, k=4.0, target=0.020)
    assert_same(cpp_pi2(delays, "--alpha=0.16", "--beta=3.2", "--k=4", "--target=0.02"), ref)


def test_max_delay_source():
    rng = random.Random(7)
    delays = [(ns(rng.uniform(0, 0.05)), ns(rng.uniform(0, 0.05))) for _ in range(200)]
    assert_same(cpp_pi2(delays, "--delay=max"), rfc9332_pi2(delays, use_max=True))
    # The default (Classic) source ignores the L delay.
    assert_same(cpp_pi2(delays), rfc9332_pi2([c for c, _ in delays]))


def test_capped_base_probability():
    delays = SEQUENCES["ramp-both-clamps"]
    ref = rfc9332_pi2(delays, max_prob=0.5)
    assert max(p for p, _, _ in ref) == 0.5
    assert_same(cpp_pi2(delays, "--maxProb=0.5"), ref)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400_000_000), min_size=1, max_size=300))
def test_random_sequences(delays_ns):
    delays = [d / 1e9 for d in delays_ns]
    assert_same(cpp_pi2(delays), rfc9332_pi2(delays))
