"""5G and satellite scenarios driven by measured or modelled capacity."""

from __future__ import annotations

import calendar
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aqm_llm
from aqm_llm import ConfigError, native

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
IRELAND_STATIC = TRACES / "5g-ireland" / "Static" / "B_2020.02.13_13.57.29.csv"
# 35 s of this static trace swing between about 11 and 148 Mb/s (mean ~48), no zero seconds.
IRELAND_OFFSET_S = 655

DATASET_HEADER = ("Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,RSRQ,SNR,CQI,"
                  "RSSI,DL_bitrate,UL_bitrate,State")


def read_timeseries(path: str | Path) -> list[dict[str, float | None]]:
    with open(path) as f:
        return [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]


def goodput_mbps(row: dict) -> float:
    return sum(v for k, v in row.items() if k.startswith("flow") and v is not None) + row["short_flows_mbps"]


def dataset_capacity_mbps(path: Path, floor_mbps: float = 1.0, modes: set[str] | None = None) -> list[float]:
    """Independent reading of a 5G-dataset file: one value per second from its first kept row."""
    acc: dict[int, list[float]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            if modes and row["NetworkMode"] not in modes:
                continue
            if row["DL_bitrate"] in ("", "-"):
                continue
            t = calendar.timegm(time.strptime(row["Timestamp"], "%Y.%m.%d_%H.%M.%S"))
            acc.setdefault(t, []).append(float(row["DL_bitrate"]) / 1e3)
    stamps = sorted(acc)
    out: list[float] = []
    for t in stamps:
        while len(out) < t - stamps[0]:
            out.append(out[-1])  # a gap holds the last value
        out.append(max(floor_mbps, statistics.mean(acc[t])))
    return out


def run_program(scenario: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(native.scenario_binary(scenario)), *args], capture_output=True, text=True,
                          timeout=60)


# --- the trace parser, through the program -------------------------------------------------

TINY_DATASET = """{header}
2020.01.01_23.59.58,0,0,0,B,1,5G,-90,-10,5,10,-80,4000,10,D
2020.01.01_23.59.59,0,0,0,B,1,5G,-90,-10,5,10,-80,6000,10,D
2020.01.01_23.59.59,0,0,0,B,1,5G,-90,-10,5,10,-80,10000,10,D
2020.01.02_00.00.00,0,0,0,B,1,LTE,-90,-10,5,10,-80,50000,10,D
2020.01.02_00.00.01,0,0,0,B,1,5G,-90,-10,5,10,-80,0,0,I
2020.01.02_00.00.02,0,0,0,B,1,5G,-90,-10,5,10,-80,-,-,I
2020.01.02_00.00.04,0,0,0,B,1,5G,-90,-10,5,10,-80,12000,10,D
2020.01.02_00.00.05,0,0,0,B,1,5G,-90,-10,5,10,-80,3000,10,D
"""

TINY_RUN = {"duration": "10s", "warmup": "1s", "timeseries_interval": "1s", "l4s_flows": 1, "classic_flows": 0}


def test_dataset_trace_is_parsed_as_documented(tmp_path):
    trace = tmp_path / "tiny.csv"
    trace.write_text(TINY_DATASET.format(header=DATASET_HEADER))
    m = aqm_llm.run("fiveg", seed=1, output_dir=tmp_path, timeseries=True,
                    params={**TINY_RUN, "trace": str(trace), "modes": "5G", "trace_floor": "2Mbps",
                            "trace_offset": "2s"})
    # Per second from the first row (which crosses midnight and a date):
    #   t0: 4, t1: avg(6, 10) = 8, t2: LTE row removed -> holds 8, t3: 0 -> floor 2,
    #   t4: no rate ('-') -> holds 2, t5: gap -> holds 2, t6: 12, t7: 3; 8 s long.
    # Offset 2 s: 8 2 2 2 12 3, then it repeats (the run outlasts it).
    expected = [8, 2, 2, 2, 12, 3, 8, 2, 2]
    rows = read_timeseries(m["run"]["timeseries"])
    got = [r["capacity_mbps"] for r in rows]
    assert got == pytest.approx(expected[:len(got)], abs=1e-6)
    assert len(got) >= 9
    info = m["capacity"]["trace"]
    assert m["capacity"]["source"] == "trace" and info["format"] == "5g-dataset"
    assert (info["rows"], info["rows_used"], info["duplicate_rows_averaged"], info["rows_other_mode"],
            info["rows_missing_rate"], info["samples_floored"], info["gap_seconds_held"]) == (8, 6, 1, 1, 1, 1, 3)
    assert info["length_s"] == 6 and m["capacity"]["looped"] is True
    assert info["modes_present"] == ["5G", "LTE"]
    assert m["capacity"]["min_mbps"] == 2 and m["capacity"]["max_mbps"] == 12
    # Utilisation is measured against this time-varying capacity (integral over the window).
    window = ([8, 2, 2, 2, 12, 3] * 2)[1:10]  # seconds 1..9 of the run: the window [1 s, 10 s]
    assert m["capacity_mbps"] == pytest.approx(statistics.mean(window), rel=1e-6)
    assert 0.5 < m["utilisation"] <= 1.0


PLAIN_TRACE = "0,5\n0.5,10\n0.5,20\n1.5,4\n3,9\n"


@pytest.mark.parametrize("header", ["", "# a user's own trace\ntime_s,mbps\n"])
def test_plain_trace_with_or_without_header(tmp_path, header):
    trace = tmp_path / "plain.csv"
    trace.write_text(header + PLAIN_TRACE)
    m = aqm_llm.run("fiveg", seed=1, output_dir=tmp_path, timeseries=True,
                    params={**TINY_RUN, "trace": str(trace)})
    # Steps: [0,0.5) 5, [0.5,1.5) 15 (duplicate averaged), [1.5,3) 4, [3,4) 9 (last sample lasts
    # the median spacing, 1 s); it repeats every 4 s. Per-second means:
    expected = [10, 9.5, 4, 9] * 3
    got = [r["capacity_mbps"] for r in read_timeseries(m["run"]["timeseries"])]
    assert len(got) >= 9
    assert got == pytest.approx(expected[:len(got)], abs=1e-6)
    assert m["capacity"]["trace"]["format"] == "time_s,mbps"
    assert m["capacity"]["trace"]["duplicate_rows_averaged"] == 1


def test_generator_is_seeded_and_independent_of_the_queue_disc(tmp_path):
    params = {"duration": "6s", "warmup": "1s", "profile": "mmwave", "timeseries_interval": "500ms",
              "los_rate": "60Mbps", "nlos_rate": "5Mbps", "los_dwell": "2s", "nlos_dwell": "1s"}
    a = aqm_llm.run("fiveg", qdisc="fq-codel-l4s", seed=4, params=params, output_dir=tmp_path / "a",
                    timeseries=True)
    b = aqm_llm.run("fiveg", qdisc="red", seed=4, params=params, output_dir=tmp_path / "b", timeseries=True)
    c = aqm_llm.run("fiveg", qdisc="fq-codel-l4s", seed=5, params=params, output_dir=tmp_path / "c",
                    timeseries=True)
    cap = {k: [r["capacity_mbps"] for r in read_timeseries(m["run"]["timeseries"])] for k, m in
           {"a": a, "b": b, "c": c}.items()}
    assert cap["a"] == cap["b"]  # same seed: same capacity whatever the queue disc
    assert cap["a"] != cap["c"]
    assert a["capacity"]["source"] == "model" and a["capacity"]["model"]["interval_s"] == 0.1
    assert a["capacity"]["changes"] > 20
    assert 5 * 0.3 < a["capacity"]["min_mbps"] and a["capacity"]["max_mbps"] < 60 * 3


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("scenario, args, needle", [
    ("fiveg", ["--trace=/nonexistent/trace.csv"], "trace"),
    ("satellite", ["--trace=/nonexistent/trace.csv"], "trace"),
    ("fiveg", ["--trace={dataset}", "--modes=6G"], "modes"),
    ("fiveg", ["--trace={plain}", "--modes=5G"], "modes"),
    ("fiveg", ["--modes=5G"], "modes"),
    ("fiveg", ["--trace={dataset}", "--trace_offset=100s"], "trace_offset"),
    ("fiveg", ["--trace={garbage}"], "header"),
    ("fiveg", ["--profile=6g"], "profile"),
    ("fiveg", ["--ran_delay=30ms"], "ran_delay"),
    ("satellite", ["--orbit=meo"], "orbit"),
    ("satellite", ["--leo_rtt_min=80ms"], "leo_rtt_min"),
])
def test_bad_input_fails_before_simulating(tmp_path, scenario, args, needle):
    (tmp_path / "d.csv").write_text(TINY_DATASET.format(header=DATASET_HEADER))
    (tmp_path / "p.csv").write_text(PLAIN_TRACE)
    (tmp_path / "g.csv").write_text("when,how_fast\n1,2\n")
    out = tmp_path / "m.json"
    args = [a.format(dataset=tmp_path / "d.csv", plain=tmp_path / "p.csv", garbage=tmp_path / "g.csv")
            for a in args]
    proc = run_program(scenario, *args, f"--output={out}", "--progress=true")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr
    assert any(w in proc.stderr for w in ("must", "expected", "allowed"))
    assert "@progress" not in proc.stderr and not out.exists()


def test_bad_trace_is_a_config_error_in_the_library_and_cli(tmp_path):
    with pytest.raises(ConfigError, match="trace"):
        aqm_llm.run("fiveg", params={"trace": str(tmp_path / "missing.csv")}, output_dir=tmp_path)
    proc = subprocess.run([sys.executable, "-m", "aqm_llm.cli", "run", "satellite", "--set", "modes=6G",
                           "--set", f"trace={tmp_path / 'missing.csv'}", "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("aqm-llm:")]
    assert len(errors) == 1 and "modes" in errors[0] and proc.stderr.rstrip().endswith(errors[0])
    assert not list(tmp_path.glob("*.json"))


# --- 5G on a measured trace ---------------------------------------------------------------

@pytest.mark.skipif(not IRELAND_STATIC.exists(),
                    reason=f"measured 5G traces not found at {TRACES} (they live beside the clone, in ../shared)")
def test_fiveg_goodput_follows_a_measured_static_trace(tmp_path):
    # Every flow ECN-capable: no loss recovery that would hand a second's goodput to the next.
    m = aqm_llm.run("fiveg", qdisc="fq-codel-l4s", seed=1, output_dir=tmp_path, timeseries=True,
                    params={"trace": str(IRELAND_STATIC), "modes": "5G", "trace_offset": f"{IRELAND_OFFSET_S}s",
                            "duration": "30s", "warmup": "5s", "timeseries_interval": "1s",
                            "classic_ecn": True})
    trace = dataset_capacity_mbps(IRELAND_STATIC, modes={"5G"})[IRELAND_OFFSET_S:]
    rows = read_timeseries(m["run"]["timeseries"])
    assert len(rows) >= 29
    # Row at t covers (t-1, t]: trace second t-1 after the offset. The program's capacity agrees.
    cap = [trace[int(r["t_s"]) - 1] for r in rows]
    assert [r["capacity_mbps"] for r in rows] == pytest.approx(cap, rel=1e-6)
    good = [goodput_mbps(r) for r in rows]
    for t, (g, c) in enumerate(zip(good, cap), start=1):
        assert g <= 1.05 * c, f"second {t}: goodput {g:.1f} Mb/s above capacity {c:.1f} Mb/s"
    steady = [i for i, r in enumerate(rows) if r["t_s"] > 5]
    r = statistics.correlation([good[i] for i in steady], [cap[i] for i in steady])
    assert r >= 0.7, f"Pearson r {r:.2f}"
    assert m["capacity"]["min_mbps"] > 5 and m["capacity"]["max_mbps"] > 100  # a non-trivial stretch
    assert 0 < m["utilisation"] <= 1.0
    assert m["device_queue_peak_packets"] <= m["config"]["device_queue"] + 1
    # The RTT column is there and never below the base RTT.
    assert all(r["rtt_ms"] >= r["base_rtt_ms"] - 0.5 for r in rows if r["rtt_ms"] is not None)


# --- satellite ----------------------------------------------------------------------------

def test_leo_reconfigurations_show_in_the_rtt_series(tmp_path):
    m = aqm_llm.run("satellite", qdisc="fq-codel-l4s", seed=1, output_dir=tmp_path, timeseries=True,
                    params={"orbit": "leo", "duration": "40s", "warmup": "5s", "timeseries_interval": "500ms"})
    reconf = m["reconfigurations"]
    assert [r["t_s"] for r in reconf] == [0, 15, 30]
    assert all(25 <= r["base_rtt_ms"] <= 60 and 40 <= r["rate_mbps"] <= 160 for r in reconf)
    rows = read_timeseries(m["run"]["timeseries"])

    def median_rtt(t0: float, t1: float) -> float:
        return statistics.median(r["rtt_ms"] for r in rows if t0 < r["t_s"] <= t1 and r["rtt_ms"] is not None)

    jumps = 0
    for prev, cur in zip(reconf, reconf[1:]):
        t = cur["t_s"]
        base_jump = cur["base_rtt_ms"] - prev["base_rtt_ms"]
        seen_jump = median_rtt(t + 1, t + 5) - median_rtt(t - 4, t)
        if abs(base_jump) >= 3:
            jumps += 1
            assert seen_jump == pytest.approx(base_jump, abs=max(2.0, 0.2 * abs(base_jump))), (t, base_jump,
                                                                                                 seen_jump)
        if cur["outage_s"] > 0:
            # an outage holds the queue: the RTT peaks right after it
            peak = max(r["rtt_ms"] for r in rows if t < r["t_s"] <= t + 1.5 and r["rtt_ms"] is not None)
            assert peak > cur["base_rtt_ms"] + 0.5 * 1e3 * cur["outage_s"]
    assert jumps >= 1
    # The base RTT column follows the schedule; the measured RTT never undercuts it.
    for r in rows:
        if r["rtt_ms"] is not None and r["t_s"] % 15 > 1:
            assert r["rtt_ms"] >= r["base_rtt_ms"] - 0.5
    # Past slow start the flows use the varying link (outages and handover gaps included).
    assert m["utilisation"] > 0.8
    assert m["link_tx_mbps"] <= m["capacity_mbps"] * 1.0001
    assert m["total_goodput_mbps"] <= m["capacity_mbps"]


def test_geo_long_rtt_run(tmp_path):
    m = aqm_llm.run("satellite", qdisc="fq-codel-l4s", seed=1, output_dir=tmp_path, timeseries=True,
                    params={"orbit": "geo", "duration": "40s", "warmup": "10s", "timeseries_interval": "1s"})
    assert m["capacity"]["source"] == "geo" and m["capacity"]["mean_mbps"] == 50
    assert m["base_rtt_ms"] == pytest.approx(600)
    assert m["rtt_ms"]["p50"] >= 600 and m["rtt_ms"]["p50"] < 700
    assert m["path"]["tcp_buffer_bytes"] >= 50e6 / 8 * 0.6  # at least the BDP
    rows = read_timeseries(m["run"]["timeseries"])
    assert all(r["base_rtt_ms"] == pytest.approx(600) for r in rows)
    # Slow start is over: both classes got congestion signals (CE marks or drops) ...
    for cls in ("l4s", "classic"):
        assert sum(r[f"{cls}_marks"] + r[f"{cls}_drops"] for r in rows) > 0
    # ... and the goodput has stopped doubling every RTT (last 10 s vs the 10 s before).
    late = statistics.mean(goodput_mbps(r) for r in rows if r["t_s"] > 29)
    before = statistics.mean(goodput_mbps(r) for r in rows if 19 < r["t_s"] <= 29)
    assert 0 < late < 1.5 * before
    assert m["total_goodput_mbps"] <= m["capacity_mbps"]
    # (No utilisation check: TCP over a 600 ms RTT without a PEP is not expected to fill it.)
    json.dumps(m)
