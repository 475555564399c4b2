"""Build, scenarios, metrics and the CLI behave as a researcher expects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aqm_llm
from aqm_llm import ConfigError, native
from conftest import REPO, strip_volatile

SHORT = {"duration": "8s", "warmup": "3s"}


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aqm_llm.cli", *args], capture_output=True,
                          text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def dumbbell_l4s(tmp_path_factory) -> dict:
    return aqm_llm.run("dumbbell", qdisc="fq-codel-l4s", seed=1, params=SHORT,
                       output_dir=tmp_path_factory.mktemp("db"), timeseries=True)


# --- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["run", "wifi", "--qdisc", "nosuch"], "nosuch"),
    (["run", "wifi", "--set", "duration=-1"], "-1"),
    (["run", "wifi", "--set", "duration=-1s"], "duration"),
    (["run", "wifi", "--set", "nosuch=3"], "nosuch"),
    (["run", "nosuch"], "nosuch"),
    (["run", "dumbbell", "--set", "warmup=30s", "--set", "duration=10s"], "warmup"),
    (["run", "dumbbell", "--set", "buffer=1B"], "1B"),
])
def test_bad_input_fails_with_one_line_and_status_2(args, needle, tmp_path):
    proc = cli(*args, "-o", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "allowed" in lines[0] or "must" in lines[0] or "expected" in lines[0]
    # nothing was simulated
    assert not list(tmp_path.glob("*.json"))


def test_library_raises_config_error_before_running(tmp_path):
    with pytest.raises(ConfigError, match="bottleneck_rate"):
        aqm_llm.run("dumbbell", params={"bottleneck_rate": "fast"}, output_dir=tmp_path)


def test_wall_clock_limit_kills_a_run_and_leaves_no_partial_file(tmp_path):
    with pytest.raises(aqm_llm.errors.SimulationError, match="wall-clock limit"):
        aqm_llm.run("dumbbell", qdisc="fifo", params={"duration": "60s"}, output_dir=tmp_path, timeout_s=1.0)
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob(".*.json"))


def test_program_itself_rejects_bad_values():
    # The C++ side validates too (for researchers calling the programs directly).
    proc = subprocess.run([str(native.scenario_binary("dumbbell")), "--rtt=abc"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "rtt" in proc.stderr and proc.stderr.count("\n") == 1


# --- physical sanity in the dumbbell ---------------------------------------------------

def test_dumbbell_goodput_never_above_capacity(dumbbell_l4s):
    m = dumbbell_l4s
    cap = m["capacity_mbps"]
    assert cap == pytest.approx(100.0)
    assert m["total_goodput_mbps"] <= cap
    assert m["link_tx_mbps"] <= cap * 1.0001
    for flow in m["flows"]:
        assert 0 < flow["goodput_mbps"] <= cap


def test_dumbbell_utilisation_above_08(dumbbell_l4s):
    assert dumbbell_l4s["utilisation"] > 0.8


def test_dumbbell_fq_codel_l4s_separates_classes(dumbbell_l4s):
    c = dumbbell_l4s["classes"]
    assert c["l4s"]["sojourn_ms"]["p99"] < c["classic"]["sojourn_ms"]["p99"]
    assert c["l4s"]["marks"] > 0  # the L4S step is doing the work
    assert c["l4s"]["goodput_mbps"] > 0.2 * dumbbell_l4s["total_goodput_mbps"]


def test_standing_queue_is_in_the_queue_disc(dumbbell_l4s):
    m = dumbbell_l4s
    # The device queue under the queue disc stays at its configured few packets ...
    assert m["device_queue_peak_packets"] <= m["config"]["device_queue"]
    # ... and the RTT inflation the flows see is explained by the queue disc's sojourn
    # (one packet of serialisation at 100 Mb/s is 0.12 ms; allow 1 ms plus 30%).
    per_flow = []
    for flow in m["flows"]:
        cls = m["classes"][flow["class"]]
        per_flow.append((flow["rtt_ms"]["mean"] - m["base_rtt_ms"], cls["sojourn_ms"]["mean"]))
    for inflation, sojourn in per_flow:
        assert inflation >= 0
        assert abs(inflation - sojourn) <= 1.0 + 0.3 * sojourn, per_flow


def test_fifo_queue_builds_in_the_queue_disc_not_the_device(tmp_path):
    m = aqm_llm.run("dumbbell", qdisc="fifo", seed=1, params={**SHORT, "buffer": "200p", "l4s_flows": 0},
                    output_dir=tmp_path)
    soj = m["classes"]["classic"]["sojourn_ms"]["mean"]
    # A filled 200-packet FIFO at 100 Mb/s holds up to 24 ms: a visible standing queue.
    assert soj > 5
    assert m["rtt_inflation_ms"] == pytest.approx(soj, abs=1.0 + 0.3 * soj)


def test_no_loss_for_ecn_flows_under_marking_aqm_with_large_buffer(tmp_path):
    m = aqm_llm.run("dumbbell", qdisc="fq-codel", seed=1,
                    params={**SHORT, "classic_ecn": True, "buffer": "10000p"}, output_dir=tmp_path)
    assert m["drops"] == 0
    assert m["marks"] > 0
    assert all(f["ecn"] for f in m["flows"])


# --- reproducibility -------------------------------------------------------------------

def test_same_seed_same_metrics_different_seed_different(tmp_path):
    params = {"duration": "4s", "warmup": "1s", "short_flows_per_s": 5}
    a = aqm_llm.run("dumbbell", qdisc="pie-l4s", seed=7, params=params, output_dir=tmp_path / "a")
    b = aqm_llm.run("dumbbell", qdisc="pie-l4s", seed=7, params=params, output_dir=tmp_path / "b")
    c = aqm_llm.run("dumbbell", qdisc="pie-l4s", seed=8, params=params, output_dir=tmp_path / "c")
    assert strip_volatile(a) == strip_volatile(b)
    assert strip_volatile(a)["flows"] != strip_volatile(c)["flows"]


# --- outputs ---------------------------------------------------------------------------

def test_metrics_json_has_the_documented_fields(dumbbell_l4s):
    m = dumbbell_l4s
    for key in ("flows", "classes", "short_flows", "loss_rate", "mark_rate", "utilisation",
                "jain_fairness", "rtt_ms", "config", "versions", "window_s"):
        assert key in m
    for cls in ("l4s", "classic"):
        for stat in ("mean", "p50", "p95", "p99"):
            assert m["classes"][cls]["sojourn_ms"][stat] is not None
    assert m["versions"]["ns3"] == "3.44"
    assert Path(m["run"]["metrics_path"]).exists()
    ts = Path(m["run"]["timeseries"]).read_text().splitlines()
    assert ts[0].startswith("t_s,l4s_sojourn_ms,classic_sojourn_ms")
    assert len(ts) >= 70  # 8 s at 100 ms


def test_short_flows_and_udp_are_measured(tmp_path):
    m = aqm_llm.run("dumbbell", qdisc="fq-codel", seed=2,
                    params={"duration": "6s", "warmup": "1s", "short_flows_per_s": 10,
                            "short_flow_mean_size": 50000, "udp_rate": "5Mbps", "udp_onoff": True},
                    output_dir=tmp_path)
    assert m["short_flows"]["completed"] >= 20
    assert m["short_flows"]["fct_s"]["p50"] > 0.02  # at least one base RTT
    udp = [f for f in m["flows"] if f["kind"] == "udp"]
    assert len(udp) == 1 and 0 < udp[0]["goodput_mbps"] <= 5.0


def test_wifi_runs_and_qdisc_sees_the_backlog(tmp_path):
    m = aqm_llm.run("wifi", qdisc="fifo", seed=1, params={"duration": "5s", "warmup": "2s"},
                    output_dir=tmp_path)
    assert m["qdisc_type"] == "ns3::FifoQueueDisc"
    assert len(m["stations"]) == 2
    assert 0.3 < m["utilisation"] <= 1.0
    # The AP's FIFO queue disc, not the 64-packet MAC queue, holds most of the delay.
    assert m["sojourn_ms"]["mean"] > 0.5 * m["rtt_inflation_ms"]
    assert m["device_queue_peak_packets"] <= m["config"]["mac_queue"] + 1


# --- building against the module -------------------------------------------------------

@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_example_program_builds_against_installed_module(tmp_path):
    prefix_flag = cli("build-flags", "--cmake").stdout.strip()
    assert prefix_flag.startswith("-DCMAKE_PREFIX_PATH=")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["cmake", "-S", str(REPO / "examples" / "custom-program"), "-B", str(tmp_path),
                    prefix_flag], check=True, capture_output=True, env=env)
    subprocess.run(["cmake", "--build", str(tmp_path)], check=True, capture_output=True, env=env)
    out = subprocess.run([str(tmp_path / "my-bottleneck"), "--qdisc=fq-codel-l4s"], capture_output=True,
                         text=True, check=True)
    assert "ns3::FqCoDelQueueDisc" in out.stdout
    assert int(out.stdout.split("received_bytes ")[1].split()[0]) > 1_000_000
