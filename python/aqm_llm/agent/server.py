"""The agent process of an l4s-llm run.

    python -m aqm_llm.agent.server --agent llm|module:Class [--checkpoint DIR] [--backbone SPEC]
        [--runtime onnx|torch] [--threads N] [--seed S] [--sample] [--agent-arg KEY=VALUE ...]
        [--stats PATH] [--idle-timeout SECONDS]

Readiness protocol (what ``aqm_llm.runner.AgentProcess`` relies on): the server loads the
agent (the LLM from its cached ONNX export: about 2 s; the first use of a checkpoint builds
that export, ~20 s; ``--runtime torch``: ~15 s), creates the shared-memory channel (this process is the
creator; the name is unique, ``/aqm-llm-<pid>-<hex>``) and prints exactly one line
``READY <channel-name>`` on stdout. Lines before it are notices (e.g. ``WARNING: policy is
untrained ...``); nothing is printed on stdout after it. The runner then starts the
scenario with ``--agent_channel=<channel-name>``.

Loop: wait for a request, ``agent.decide``, post the reply, until the peer closes (exit 0),
dies (exit 1), no request comes for ``--idle-timeout`` s (exit 1) or SIGTERM/SIGINT (exit 0).
The segment is removed in every case. An invalid request is answered with status ERROR; an
agent that raises or returns an invalid decision gets status FALLBACK (the queue disc's
DualPI2 decides that epoch) and the loop goes on. Tracebacks and notices after READY go to
stderr, at most ``MAX_LOG_LINES`` of them (the runner reads stderr only at the end).

``--stats PATH`` writes at exit: decisions, reply statuses, action counts, and the per-epoch
decision latency (request received -> reply posted) p50/p99/mean/max in ms.

Threads: ``torch.set_num_threads(--threads)``; OMP_WAIT_POLICY defaults to PASSIVE here (set
before torch loads): with libgomp's default (spinning) workers, a 2-thread agent sharing 2
cores with another busy process took 9 s instead of 0.23 s per decision
(docs/bench-inference.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Sequence

import numpy as np

from aqm_llm.errors import ConfigError

MAX_LOG_LINES = 40
EXIT_OK = 0
EXIT_FAILED = 1


@dataclass(frozen=True)
class ServerConfig:
    agent: str = "llm"
    checkpoint: str | None = None
    backbone: str | None = None
    runtime: str = "onnx"  # agent.runtime.ONNX (not imported here: torch must load after OMP settings)
    threads: int = 2
    seed: int = 1
    sample: bool = False
    p_prime_band: str | None = None  # llm: None keeps the checkpoint's; a factor or "off"
    target_return: float | None = None  # llm: None keeps the checkpoint's
    agent_args: dict[str, str] = field(default_factory=dict)
    stats: Path | None = None
    idle_timeout_s: float = 3600.0


def parse_args(argv: Sequence[str] | None = None) -> ServerConfig:
    from aqm_llm.agent.runtime import ONNX, RUNTIMES

    p = argparse.ArgumentParser(prog="python -m aqm_llm.agent.server",
                                description="Serve AQM decisions to an l4s-llm queue disc.")
    p.add_argument("--agent", default="llm",
                   help="'llm' (encoder + backbone + L4S-LM head) or module:Class "
                        "(see aqm_llm.agent.interface)")
    p.add_argument("--checkpoint", default=None, help="policy checkpoint directory")
    p.add_argument("--backbone", default=None,
                   help="'smollm2' (default), a local transformers model path, 'mlp', 'random:<arch>'")
    p.add_argument("--runtime", choices=RUNTIMES, default=ONNX,
                   help="llm: where the network runs: 'onnx' (ONNX Runtime, the cached export of "
                        "the checkpoint; default) or 'torch' (eager PyTorch, the reference)")
    p.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime threads (default 2)")
    p.add_argument("--seed", type=int, default=1, help="run seed (action sampling)")
    p.add_argument("--sample", action="store_true",
                   help="llm: sample actions (seeded) instead of argmax")
    p.add_argument("--p-prime-band", default=None, metavar="FACTOR|coupled:FACTOR|ramp:FACTOR|off",
                   help="llm: hold the epoch probabilities within DualPI2's x this factor on p' "
                        "(default: the checkpoint's; 'off': the network's as they are)")
    p.add_argument("--target-return", type=float, default=None,
                   help="llm: the return the policy is asked for (default: the checkpoint's)")
    p.add_argument("--agent-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for a module:Class agent (repeatable)")
    p.add_argument("--stats", type=Path, default=None, help="write decision statistics JSON here")
    p.add_argument("--idle-timeout", type=float, default=3600.0,
                   help="give up when no request comes for this long, s (default 3600)")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error(f"--threads must be >= 1, got {a.threads}")
    if a.idle_timeout <= 0:
        p.error(f"--idle-timeout must be > 0, got {a.idle_timeout}")
    kwargs: dict[str, str] = {}
    for item in a.agent_arg:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            p.error(f"--agent-arg '{item}': expected KEY=VALUE")
        kwargs[key] = value
    return ServerConfig(agent=a.agent, checkpoint=a.checkpoint, backbone=a.backbone,
                        runtime=a.runtime, threads=a.threads, seed=a.seed, sample=a.sample,
                        p_prime_band=a.p_prime_band, target_return=a.target_return, agent_args=kwargs,
                        stats=a.stats, idle_timeout_s=a.idle_timeout)


# ---------------------------------------------------------------------------- pieces


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived (a BaseException, so that no ``except Exception`` in the
    agent or a library swallows it)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


@dataclass
class Log:
    """Bounded stderr notices (an unread pipe must never fill up and block the agent)."""

    lines: int = 0

    def __call__(self, message: str) -> None:
        if self.lines >= MAX_LOG_LINES:
            return
        for line in message.rstrip("\n").splitlines():
            self.lines += 1
            if self.lines == MAX_LOG_LINES:
                print("agent-server: further messages suppressed", file=sys.stderr, flush=True)
                return
            print(f"agent-server: {line}", file=sys.stderr, flush=True)


@dataclass
class Stats:
    latencies_ns: list[int] = field(default_factory=list)
    replies: dict[str, int] = field(default_factory=lambda: {"ok": 0, "fallback": 0, "error": 0})
    actions: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))
    agent_errors: int = 0
    invalid_requests: int = 0

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ns, np.float64) / 1e6
        latency: dict[str, Any] = {"count": int(lat.size)}
        if lat.size:
            latency |= {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                        "mean": float(lat.mean()), "max": float(lat.max())}
        return {"decisions": int(lat.size), "replies": dict(self.replies),
                "actions": dict(zip(("forward", "drop", "mark"), map(int, self.actions))),
                "agent_errors": self.agent_errors, "invalid_requests": self.invalid_requests,
                "latency_ms": latency}


def build_agent(cfg: ServerConfig) -> Any:
    if cfg.agent == "llm":
        import torch

        from aqm_llm.agent.policy import make_llm_policy

        torch.set_num_threads(cfg.threads)
        return make_llm_policy(cfg.checkpoint, cfg.backbone, cfg.sample, runtime=cfg.runtime,
                               threads=cfg.threads, p_prime_band=cfg.p_prime_band,
                               target_return=cfg.target_return)
    from aqm_llm.agent.interface import load_agent

    kwargs: dict[str, Any] = dict(cfg.agent_args)
    if cfg.checkpoint:
        kwargs.setdefault("checkpoint", cfg.checkpoint)
    if cfg.backbone:
        kwargs.setdefault("backbone", cfg.backbone)
    agent = load_agent(cfg.agent, **kwargs)
    if "torch" in sys.modules:  # only torch-based agents pay for importing it
        sys.modules["torch"].set_num_threads(cfg.threads)
    return agent


def serve(channel: Any, agent: Any, cfg: ServerConfig, stats: Stats, log: Log) -> str:
    """Answer requests until the peer goes; returns why the loop ended."""
    from aqm_llm.channel import ChannelTimeout, InvalidMessage, PeerGone

    clock = time.perf_counter_ns
    while True:
        try:
            request = channel.wait_request(cfg.idle_timeout_s)
            start = clock()
            _answer(channel, agent, request, stats, log)
            stats.latencies_ns.append(clock() - start)
        except PeerGone as gone:
            return "peer-closed" if gone.closed_cleanly else "peer-died"
        except ChannelTimeout:
            log(f"no request for {cfg.idle_timeout_s:g} s: giving up")
            return "idle-timeout"
        except InvalidMessage as exc:  # the channel's own validation of the request
            stats.invalid_requests += 1
            log(f"invalid request: {exc}")
            channel.reject()
            stats.replies["error"] += 1


def _answer(channel: Any, agent: Any, request: Any, stats: Stats, log: Log) -> None:
    """Decide and reply to one request (ERROR if the request is invalid or the agent fails)."""
    from aqm_llm.channel import InvalidMessage, ReplyStatus
    from aqm_llm.agent.features import InvalidRequest

    try:
        decision = agent.decide(request)
        problem = decision.problem(request)
    except InvalidRequest as exc:
        stats.invalid_requests += 1
        log(f"epoch {request.epoch}: invalid request: {exc}")
        channel.reject()
        stats.replies["error"] += 1
        return
    except Exception:  # noqa: BLE001 - an agent bug costs one fallback epoch, not the run
        decision, problem = None, "agent raised:\n" + traceback.format_exc()
    if decision is not None and problem is None:
        try:
            channel.send_reply(decision.actions, p_l_mark=decision.p_l_mark,
                               p_c_drop=decision.p_c_drop, p_c_mark=decision.p_c_mark,
                               status=decision.status)
        except InvalidMessage as exc:  # nothing was sent: fall back below
            problem = str(exc)
        else:
            stats.replies["ok" if decision.status == ReplyStatus.OK else "fallback"] += 1
            stats.actions += np.bincount(decision.actions, minlength=3)[:3]
            return
    # An agent failure is an ERROR reply, not a FALLBACK request: the queue disc counts the epoch
    # as a fallback, marks the run not reproducible and says so.
    stats.agent_errors += 1
    log(f"epoch {request.epoch}: {problem}")
    channel.reject()
    stats.replies["error"] += 1


def write_stats(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported
    # Our handlers first: the channel chains to them after unlinking its segment names.
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGINT, _raise_terminated)
    log, stats = Log(), Stats()
    reason, agent, channel = "error", None, None
    info: dict[str, Any] = {"agent": cfg.agent, "threads": cfg.threads, "seed": cfg.seed,
                            "omp_wait_policy": os.environ["OMP_WAIT_POLICY"]}
    try:
        t0 = time.monotonic()
        agent = build_agent(cfg)
        info["load_s"] = round(time.monotonic() - t0, 3)
        info["trained"] = bool(getattr(agent, "trained", True))
        if hasattr(agent, "describe"):
            info["policy"] = agent.describe()
        if not info["trained"]:
            print("WARNING: policy is untrained (no checkpoint given or shipped): its actions "
                  "come from randomly initialised encoder/head weights", flush=True)
        from aqm_llm.channel import AgentChannel
        from aqm_llm.agent.interface import RunInfo

        channel = AgentChannel.create()
        agent.reset(RunInfo(seed=cfg.seed, channel=channel.name, extra=cfg.agent_args))
        print(f"READY {channel.name}", flush=True)
        reason = serve(channel, agent, cfg, stats, log)
    except Terminated as sig:
        reason = f"signal {sig}"
    except ConfigError as exc:  # bad input (a missing or damaged checkpoint): one line
        log(f"error: {exc}")
        reason = "error"
    except Exception:  # noqa: BLE001 - report, clean up, exit non-zero
        log(traceback.format_exc())
        reason = "error"
    finally:
        # Further signals must not interrupt the cleanup below.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if channel is not None:
            channel.close()
        if agent is not None:
            try:
                agent.close()
            except Exception:  # noqa: BLE001
                log(traceback.format_exc())
        if cfg.stats is not None:
            write_stats(cfg.stats, {**info, **stats.summary(), "exit": reason})
    return EXIT_OK if reason in ("peer-closed", "signal SIGTERM", "signal SIGINT") else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
