"""Same seed, same metrics across refactorings: a few short runs whose counts and sojourns are
pinned to the values the code gave before the queue discs, the channel and the dumbbell were
restructured (dual-queue base class, one DualPI2 rule, the LLM disc's parts, the shared leaf
topology). A change that moves an event, a draw or a decision shows here as a changed count."""

from __future__ import annotations

import json
import subprocess

import pytest

import aqm_llm
from aqm_llm.native import scenario_binary
from aqm_llm.runner import AgentSpec

SHORT = ["--duration=3s", "--warmup=1s", "--seed=3"]

# name -> (queue disc, extra program arguments, pinned metrics)
PINNED = {
    "dualpi2": ("dualpi2", [], {
        "utilisation": 0.9998496,
        "l4s": (4551, 4549, {}, {"L4S coupled mark": 150}, 0.355328, 0.1698770965),
        "classic": (12319, 12250, {"Unforced classic drop": 20}, {}, 44.578528, 9.071904959),
    }),
    "pie": ("pie", [], {
        "utilisation": 1.0000284,
        "l4s": (15333, 15465, {}, {"Unforced mark": 30}, 22.887488, 6.718532687),
        "classic": (1335, 1314, {"Unforced drop": 4}, {}, 13.455408, 6.968746545),
    }),
    "fq-codel-l4s": ("fq-codel-l4s", [], {
        "utilisation": 0.9978828,
        "l4s": (6664, 6662, {}, {"(Marked by child queue disc) CE threshold exceeded mark": 484},
                1.308928, 0.2762910814),
        "classic": (10051, 10084, {"(Dropped by child queue disc) Target exceeded drop": 3}, {},
                    10.368128, 3.221682685),
    }),
    "l4s-llm teacher codel-like": ("l4s-llm", ["--llm_mode=teacher", "--teacher=codel-like"], {
        "utilisation": 0.99999008,
        "l4s": (9648, 9649, {}, {}, 0.355328, 0.1724817146),
        "classic": (6967, 7149, {"Teacher drop": 5, "Teacher epoch drop": 13}, {}, 86.4739904,
                    33.76563131),
    }),
}
STUB_AGENT = {
    "utilisation": 0.55309864,
    "l4s": (4319, 4322, {}, {"Agent epoch mark": 219}, 0.389216, 0.06491786765),
    "classic": (4821, 5016, {"Agent epoch drop": 57}, {}, 75.201008, 14.81211357),
}


def _observed(metrics: dict) -> dict:
    out: dict = {"utilisation": metrics["utilisation"]}
    for cls in ("l4s", "classic"):
        c = metrics["classes"][cls]
        out[cls] = (c["enqueued"], c["dequeued"], c["drop_reasons"], c["mark_reasons"],
                    c["sojourn_ms"]["p99"], c["sojourn_ms"]["mean"])
    return out


@pytest.mark.parametrize("name", list(PINNED))
def test_native_runs_give_the_pinned_metrics(tmp_path, name):
    qdisc, extra, pinned = PINNED[name]
    out = tmp_path / "m.json"
    subprocess.run([str(scenario_binary("dumbbell")), f"--qdisc={qdisc}", *SHORT, *extra,
                    f"--output={out}"], check=True, capture_output=True)
    assert _observed(json.loads(out.read_text())) == pinned


def test_a_stub_agent_run_gives_the_pinned_metrics(tmp_path):
    agent = AgentSpec(agent="aqm_llm.agent.stub:DualPi2ProbabilityAgent", threads=1)
    m = aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=3,
                    params={"duration": "3s", "warmup": "1s", "llm_batch": 0},
                    output_dir=tmp_path, agent=agent)
    assert m["fallbacks"] == 0
    assert _observed(m) == STUB_AGENT
