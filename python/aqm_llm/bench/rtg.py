"""``aqm-llm bench rtg``: does a checkpoint's return conditioning condition?

Records the requests of one seeded run (the queue disc's record mode, dualpi2 acting), then replays
them through the checkpoint's policy (the agent's ONNX fast path, argmax decisions, in lockstep, the
policy's own history) once per target return: the per-epoch return quantiles of the checkpoint's
own pool (stored in its metadata at training time), and its configured target. Printed per
target: the RTG token the policy sees, the mean |log10| ratio of its L4S and classic epoch
probabilities to those at the configured target (0.3 = a factor of 2) and the share of packet
actions that differ. A policy whose numbers stay near 0 across the pool's range decides the same
whatever it is asked for.

    aqm-llm bench rtg                                   # the shipped checkpoint, 5G midband, 8 s
    aqm-llm bench rtg --checkpoint models/l4s-llm-rtg --scenario wifi --set rtg=10ms
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from aqm_llm.bench import report

DOCUMENT = "docs/bench-rtg.md"
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
PROBABILITY_FLOOR = 1e-7  # the log ratio of two zeros is 0, of a zero and p is log10(p / 1e-7)


def markers(checkpoint: Path) -> tuple[str, str]:
    """The section of the document that holds one checkpoint's figures (one per checkpoint)."""
    return f"<!-- bench-rtg:begin {checkpoint.name} -->", f"<!-- bench-rtg:end {checkpoint.name} -->"


@dataclass(frozen=True)
class Row:
    label: str
    target: float
    token: float
    dlog_l: float
    dlog_c: float
    actions_changed: float


def pool_quantiles(checkpoint_config: dict[str, Any]) -> dict[float, float]:
    """The quantiles of the per-epoch episode returns stored in a checkpoint's metadata."""
    from aqm_llm.training.trainer import checkpoint_episode_returns

    values = [e[0] for e in checkpoint_episode_returns(checkpoint_config)]
    if not values:
        return {}
    return {q: float(np.quantile(values, q)) for q in QUANTILES}


def record_requests(scenario: str, params: dict[str, str], seed: int) -> list[Any]:
    """The requests of one run with dualpi2 acting (as the queue disc sent them)."""
    import aqm_llm
    from aqm_llm.agent.synthetic import as_request
    from aqm_llm.training.records import read_records

    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "run.rec"
        aqm_llm.run(scenario, qdisc="l4s-llm", seed=seed, output_dir=tmp,
                    params={**params, "llm_mode": "record", "record_actor": "teacher", "teacher": "dualpi2",
                            "record_path": str(rec)})
        _, records = read_records(rec)
        return [as_request(records["request"][i]) for i in range(len(records))]


def replay(agent: Any, requests: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """((epochs, 2) p_L and classic signal, concatenated packet actions) of a lockstep replay."""
    from aqm_llm.agent.interface import RunInfo

    agent.reset(RunInfo(seed=7))
    out = [agent.decide(r) for r in requests]
    probs = np.array([[d.p_l_mark, d.p_c_drop + d.p_c_mark] for d in out], np.float64)
    return probs, np.concatenate([d.actions for d in out])


def measure(policy: Any, requests: list[Any], targets: dict[str, float]) -> list[Row]:
    """One row per target, against the policy's configured target."""
    from aqm_llm.agent.policy import PolicyAgent
    from aqm_llm.agent.reward import ReturnToGo

    reward = policy.config.reward

    def at(target: float) -> tuple[np.ndarray, np.ndarray]:
        return replay(PolicyAgent(replace(policy.config, reward=replace(reward, target_return=target)),
                                  policy.network), requests)

    def log_p(p: np.ndarray) -> np.ndarray:
        return np.log10(np.maximum(p, PROBABILITY_FLOOR))

    ref_probs, ref_actions = at(reward.target_return)
    rows = []
    for label, target in targets.items():
        probs, actions = at(target)
        dlog = np.abs(log_p(probs) - log_p(ref_probs)).mean(0)
        token = ReturnToGo(replace(reward, target_return=target)).token()
        rows.append(Row(label, target, token, float(dlog[0]), float(dlog[1]),
                        float((actions != ref_actions).mean()) if actions.size else 0.0))
    return rows


def render(rows: list[Row], info: dict[str, str], command: str, reward: Any, epochs: int) -> str:
    lines = [f"machine: {info['cpu']}; {info['os']}", f"command: {command}",
             f"checkpoint: {info['checkpoint']}; rtg_mode {reward.rtg_mode}, rtg_norm "
             f"{getattr(reward, 'rtg_norm', 'standard')}, offset {reward.rtg_offset:.3f}, scale "
             f"{reward.rtg_scale:.3f}; configured target {reward.target_return:.3f}",
             f"requests: {info['run']}, {epochs} epochs replayed with the policy's own history", "",
             f"{'target':<24}{'return':>9}{'token':>9}{'|dlog10 p_L|':>14}{'|dlog10 p_C|':>14}"
             f"{'actions changed':>17}"]
    for r in rows:
        lines.append(f"{r.label:<24}{r.target:>9.3f}{r.token:>9.3f}{r.dlog_l:>14.3f}{r.dlog_c:>14.3f}"
                     f"{100 * r.actions_changed:>16.1f}%")
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="aqm-llm bench rtg", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="policy directory (default: the shipped one)")
    p.add_argument("--scenario", default="fiveg")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="scenario parameter (default: profile=midband for fiveg)")
    p.add_argument("--duration", default="8s")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    report.add_save_options(p, DOCUMENT)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    from aqm_llm.agent.policy import make_llm_policy, read_checkpoint_config, resolve_checkpoint
    from aqm_llm.bench.machine import machine_info
    from aqm_llm.errors import ConfigError
    from aqm_llm.scenarios import parse_sets

    args = parse(argv)
    params = parse_sets(args.set) if args.set else {"profile": "midband"} if args.scenario == "fiveg" else {}
    params |= {"duration": args.duration, "warmup": "0s"}
    path = resolve_checkpoint(args.checkpoint, None)
    if path is None:
        raise ConfigError("no checkpoint: give --checkpoint DIR (no shipped policy in this build)")
    try:
        quantiles = pool_quantiles(read_checkpoint_config(path))
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    if not quantiles:
        raise ConfigError(f"{path}: no pool returns in its metadata (untrained, or trained without "
                          "return conditioning)")
    requests = record_requests(args.scenario, params, args.seed)
    policy = make_llm_policy(str(path), threads=args.threads)
    targets = {f"pool q{q:g}" if q < 1 else "pool best episode": v for q, v in quantiles.items()}
    targets["configured"] = policy.config.reward.target_return
    rows = measure(policy, requests, targets)
    shown = os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    info = machine_info() | {"checkpoint": shown,
                             "run": f"{args.scenario} {shlex.join(f'{k}={v}' for k, v in params.items())} "
                                    f"seed {args.seed}"}
    command = "aqm-llm bench rtg" + ("" if not argv else " " + shlex.join(argv))
    text = render(rows, info, command, policy.config.reward, len(requests))
    begin, end = markers(path.resolve())
    return report.publish(text, report.save_path(args, DOCUMENT),
                          lambda p, t: report.save_section(p, t, begin, end, "# Return conditioning: "
                                                           "does the target return change decisions?\n\n"
                                                           "`aqm-llm bench rtg` (python/aqm_llm/bench/rtg.py).\n\n"))
