"""The agent process: READY handshake, requests through the real channel (this test plays
the ns-3 side as the channel's attacher), fallback-worthy agents, SIGTERM, statistics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from aqm_llm import channel as C
from aqm_llm.agent.interface import Agent, Decision
from aqm_llm.agent.synthetic import fill_random_request

TESTS = Path(__file__).resolve().parent


class RaisingAgent(Agent):
    """Raises on odd epochs, answers garbage on epochs divisible by 4 (test helper)."""

    def decide(self, request: C.Request) -> Decision:
        if request.epoch % 2:
            raise RuntimeError("boom")
        if request.epoch % 4 == 0:
            return Decision(np.full(request.packets.shape[0], 7, np.uint8))
        return Decision(np.zeros(request.packets.shape[0], np.uint8), p_l_mark=0.5)


@dataclass
class Server:
    proc: subprocess.Popen[str]
    channel: str
    notices: list[str]
    stats: Path

    def result(self, timeout: float = 20.0) -> tuple[int, dict]:
        rc = self.proc.wait(timeout)
        return rc, json.loads(self.stats.read_text())


def start_server(tmp_path: Path, *args: str, timeout: float = 120.0) -> Server:
    stats = tmp_path / "agent-stats.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "aqm_llm.agent.server", "--stats", str(stats),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    notices: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("READY "):
            return Server(proc, line.split()[1], notices, stats)
        notices.append(line.rstrip())
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"agent server did not get ready: {notices} {err[-2000:]}")


@pytest.fixture(autouse=True)
def no_leaked_segments() -> Iterator[None]:
    before = set(C.list_segments())
    yield
    assert set(C.list_segments()) <= before


def l4s_request(view: np.ndarray, epoch: int) -> None:
    """4 packets: L 0.5 ms ECT(1), L 3 ms ECT(1), C 5 ms Not-ECT, L 2 ms Not-ECT."""
    fill_random_request(view, np.random.default_rng(epoch), packets=4, epoch=epoch)
    pk = view["packets"]
    pk["uid"][:4] = [10 * epoch + i for i in range(4)]
    pk["sojourn_s"][:4] = [0.0005, 0.003, 0.005, 0.002]
    pk["traffic_class"][:4] = [0, 0, 1, 0]
    pk["ecn"][:4] = [1, 1, 0, 0]


def test_stub_agent_serves_requests(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--agent", "aqm_llm.agent.stub:SojournThresholdAgent",
                          "--agent-arg", "threshold_ms=1", "--threads", "1", "--seed", "4")
    assert server.notices == [] and server.channel.startswith("/aqm-llm-")
    with C.AgentChannel.attach(server.channel) as ch:
        assert ch.peer_pid == server.proc.pid
        for epoch in range(5):
            l4s_request(ch.request_view, epoch)
            rep = ch.call(10.0)
            assert rep.status == C.ReplyStatus.OK
            assert rep.actions["uid"].tolist() == [10 * epoch + i for i in range(4)]
            # L above 1 ms: marked; the Not-ECT one: dropped instead; C untouched.
            assert rep.actions["action"].tolist() == [0, 2, 0, 1]
    rc, stats = server.result()
    assert rc == 0 and stats["exit"] == "peer-closed"
    assert stats["decisions"] == 5 and stats["replies"] == {"ok": 5, "fallback": 0, "error": 0}
    assert stats["actions"] == {"forward": 10, "drop": 5, "mark": 5}
    assert stats["latency_ms"]["count"] == 5 and 0 < stats["latency_ms"]["p50"] <= stats["latency_ms"]["p99"]
    assert stats["trained"] is True and stats["agent"].endswith("SojournThresholdAgent")


def test_failing_agent_and_invalid_requests_get_an_error_reply(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--agent", "test_agent_server:RaisingAgent")

    def outcome(ch: C.AgentChannel) -> str:
        # An ERROR reply (the agent failed, or the request was invalid) is what the client
        # side reports as a failed request: the queue disc falls back and says so.
        try:
            return ch.call(10.0).status.name
        except C.InvalidMessage as exc:
            assert "failed on request" in str(exc)
            return "ERROR"

    with C.AgentChannel.attach(server.channel) as ch:
        outcomes = []
        for epoch in range(6):
            l4s_request(ch.request_view, epoch)
            outcomes.append(outcome(ch))
        # An invalid request (sent unvalidated, as a broken queue disc might): ERROR reply too.
        l4s_request(ch.request_view, 6)
        ch.request_view["packets"]["traffic_class"][0] = 5
        ch.post_request(validate=False)
        with pytest.raises(C.InvalidMessage, match="failed on request 7"):
            ch.wait_reply(10.0)
        l4s_request(ch.request_view, 8)
        outcomes.append(outcome(ch))
    assert outcomes == ["ERROR", "ERROR", "OK", "ERROR", "ERROR", "ERROR", "ERROR"]
    rc, stats = server.result()
    assert rc == 0 and stats["agent_errors"] == 6 and stats["invalid_requests"] == 1
    assert stats["replies"] == {"ok": 1, "fallback": 0, "error": 7}
    err = server.proc.stderr.read() if server.proc.stderr else ""
    assert "boom" in err and "action codes must be in 0..2" in err


def test_stalling_agent_and_late_reply(tmp_path: Path) -> None:
    """The queue disc's view of a slow agent: its wait times out (it would fall back), the
    late reply is discarded, the next epoch works."""
    server = start_server(tmp_path, "--agent", "aqm_llm.agent.stub:StallingAgent",
                          "--agent-arg", "sleep_s=0.4")
    with C.AgentChannel.attach(server.channel) as ch:
        l4s_request(ch.request_view, 0)
        with pytest.raises(C.ChannelTimeout):
            ch.call(0.05)
        ch.acquire_request_slot(5.0)  # the late reply came and was dropped
        assert ch.stale_replies == 1
        l4s_request(ch.request_view, 1)
        assert ch.call(5.0).status == C.ReplyStatus.OK
    rc, stats = server.result()
    assert rc == 0 and stats["decisions"] == 2 and stats["latency_ms"]["p50"] >= 400


def test_sigterm_exits_cleanly_and_removes_the_segment(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--agent", "aqm_llm.agent.stub:ForwardAllAgent")
    assert os.path.exists("/dev/shm" + server.channel)
    server.proc.send_signal(signal.SIGTERM)
    rc, stats = server.result()
    assert rc == 0 and stats["exit"] == "signal SIGTERM" and stats["decisions"] == 0
    assert not os.path.exists("/dev/shm" + server.channel)


def test_bad_agent_fails_before_ready(tmp_path: Path) -> None:
    stats = tmp_path / "s.json"
    proc = subprocess.run([sys.executable, "-m", "aqm_llm.agent.server", "--agent",
                           "aqm_llm.agent.stub:SojournThresholdAgent", "--agent-arg",
                           "threshold_ms=abc", "--stats", str(stats)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "READY" not in proc.stdout
    assert "could not convert string to float" in proc.stderr
    assert json.loads(stats.read_text())["exit"] == "error"


def test_llm_agent_with_a_tiny_backbone(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--agent", "llm", "--backbone", "random:llama", "--threads",
                          "1", "--sample", "--seed", "3")
    assert any("untrained" in n for n in server.notices)
    with C.AgentChannel.attach(server.channel) as ch:
        rng = np.random.default_rng(0)
        for epoch in range(4):
            fill_random_request(ch.request_view, rng, packets=20, epoch=epoch)
            rep = ch.call(30.0)
            assert rep.status == C.ReplyStatus.OK and rep.actions.shape == (20,)
            assert rep.actions["uid"].tolist() == ch.request_view["packets"]["uid"][:20].tolist()
    rc, stats = server.result()
    assert rc == 0 and stats["trained"] is False and stats["decisions"] == 4
    assert stats["policy"]["backbone"] == "random:llama" and stats["policy"]["sample"] is True
