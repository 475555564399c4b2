"""Run one scenario simulation and return its metrics (the library side of `aqm-llm run`)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from aqm_llm import native
from aqm_llm.agent.runtime import ONNX
from aqm_llm.errors import ConfigError, SimulationError
from aqm_llm.progress import LineClock
from aqm_llm.scenarios import describe, parse_seconds

# Parameters the runner sets itself; a user who passes them gets a clear error.
_RUNNER_OWNED = ("output", "progress")
#: Set by the runner from its own arguments and options: not offered as --set parameters.
RUNNER_SET = (*_RUNNER_OWNED, "qdisc", "seed", "agent_channel", "timeseries")


@dataclass(frozen=True)
class RunSpec:
    """What to simulate: scenario, queue disc, seed and scenario parameters."""

    scenario: str
    qdisc: str
    seed: int = 1
    params: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """A short stable identifier of this configuration (file names, result rows)."""
        blob = json.dumps([self.scenario, self.qdisc, self.seed, sorted((k, str(v)) for k, v in self.params.items())])
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_command(spec: RunSpec, output: Path, timeseries: Path | None = None,
                  progress: bool = False) -> list[str]:
    """Validate the spec and return the scenario program's command line."""
    scenario = describe(spec.scenario)
    for owned in _RUNNER_OWNED:
        if owned in spec.params:
            raise ConfigError(f"parameter '{owned}' is set by the runner; use the CLI's options instead")
    if "qdisc" in spec.params or "seed" in spec.params:
        raise ConfigError("pass qdisc and seed as their own arguments, not as --set")
    values = dict(spec.params)
    values["qdisc"] = spec.qdisc
    values["seed"] = spec.seed
    if timeseries is not None:
        values["timeseries"] = str(timeseries)
    args = scenario.normalise(values, hidden=RUNNER_SET)
    duration = parse_seconds(args.get("duration", scenario.params["duration"].default)) or 0.0
    warmup = parse_seconds(args.get("warmup", scenario.params["warmup"].default)) or 0.0
    if warmup >= duration:
        raise ConfigError(f"bad value '{args.get('warmup', scenario.params['warmup'].default)}' for warmup: "
                          f"must be below duration ({args.get('duration', scenario.params['duration'].default)})")
    cmd = [str(native.scenario_binary(spec.scenario))]
    cmd += [f"--{k}={v}" for k, v in args.items()]
    cmd += [f"--output={output}"]
    if progress:
        cmd.append("--progress=true")
    return cmd


def run_simulation(cmd: list[str], progress: bool = False, label: str = "",
                   timeout: float | None = None, env: Mapping[str, str] | None = None,
                   log_path: Path | None = None) -> None:
    """Run a scenario program; ConfigError on exit 2 (bad input), SimulationError otherwise.
    ``progress``: a bar with simulated time and ETA on a terminal, else a line every few seconds.
    ``log_path``: where the program's stderr (without progress lines) is kept."""
    stderr_lines: list[str] = []
    log = log_path.open("w") if log_path is not None else None
    bar = None
    started = time.monotonic()
    clock = LineClock()
    # A bar only on a terminal: in logs and pipes it would only garble the error lines.
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=100, desc=label or "simulating", unit="%", leave=False,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(env) if env is not None else None)
    # A wall-clock limit: a hung run must not hold a sweep worker forever.
    timed_out = threading.Event()
    watchdog = None
    if timeout is not None:
        watchdog = threading.Timer(timeout, lambda: (timed_out.set(), proc.kill()))
        watchdog.daemon = True
        watchdog.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("@progress "):
                now, total = (float(x) for x in line.split()[1:3])
                if bar is not None:
                    bar.n = round(100 * now / total) if total else 0
                    bar.set_postfix_str(f"sim {now:.1f}/{total:.0f} s", refresh=True)
                elif progress and clock.due():
                    elapsed = time.monotonic() - started
                    eta = elapsed * (total - now) / now if now > 0 else float("nan")
                    print(f"{label or 'simulating'}: sim {now:.1f}/{total:.0f} s, {elapsed:.0f} s elapsed, "
                          f"about {eta:.0f} s to go", file=sys.stderr, flush=True)
                continue
            if log is not None:
                log.write(line)
            stderr_lines.append(line.rstrip("\n"))
            del stderr_lines[:-50]
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    if timed_out.is_set():
        raise SimulationError(f"scenario program exceeded its {timeout:g} s wall-clock limit and was killed")
    if rc == 2:
        msg = stderr_lines[-1] if stderr_lines else "invalid input"
        raise ConfigError(msg.split(": ", 1)[-1] if ": " in msg else msg)
    if rc != 0:
        tail = "\n".join(stderr_lines[-20:])
        raise SimulationError(f"scenario program exited with status {rc}:\n{tail}")


@dataclass(frozen=True)
class AgentSpec:
    """The agent process that serves an l4s-llm run (started and stopped by the runner)."""

    agent: str = "llm"             # "llm" (encoder + backbone + head) or "module:Class"
    checkpoint: str | None = None  # trained policy directory; None: the shipped default, if any
    backbone: str | None = None    # "smollm2" (default) or a local transformers model path
    threads: int = 2               # torch / ONNX Runtime threads of the agent process
    seed: int = 1
    agent_args: Mapping[str, str] = field(default_factory=dict)  # keyword arguments of a module:Class agent
    # A checkpoint's first use builds its ONNX export (~20 s); later starts take ~2 s.
    startup_timeout_s: float = 300.0
    runtime: str = ONNX            # llm: "onnx" (the fast path) or "torch" (the reference)
    p_prime_band: str | None = None  # llm: None: the checkpoint's band (agent.band); a factor or "off"
    target_return: float | None = None  # llm: None: the checkpoint's target return (agent.reward)
    sample: bool = False           # llm: draw packet actions from the head's distribution (seeded
                                   # by the run's seed) instead of taking its argmax

    def check(self) -> None:
        """ConfigError (one line) for an agent that cannot start, found before anything slow runs:
        a module:Class whose module cannot be found, a missing or damaged checkpoint."""
        import importlib.util

        from aqm_llm.agent.checkpoint import check_checkpoint

        if self.agent != "llm":
            module, sep, cls = self.agent.partition(":")
            if not (sep and module and cls):
                raise ConfigError(f"bad agent '{self.agent}': expected 'llm' or module:Class")
            try:
                found = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                found = None
            if found is None:
                raise ConfigError(f"bad agent '{self.agent}': no module named '{module}'")
            if self.sample:  # a module agent decides its own actions
                raise ConfigError(f"sample applies to the llm agent, not '{self.agent}'")
        if self.checkpoint:
            check_checkpoint(self.checkpoint)
        if self.p_prime_band is not None:
            from aqm_llm.agent.band import parse_band
            from aqm_llm.agent.checkpoint import epoch_output_of
            from aqm_llm.agent.factor import FACTOR

            try:
                band = parse_band(str(self.p_prime_band))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            if band is not None and self.agent == "llm" and epoch_output_of(self.checkpoint, self.backbone) == FACTOR:
                raise ConfigError(f"p' band '{self.p_prime_band}': the checkpoint has the factor output, which "
                                  "is bounded by its own grid (agent.factor); allowed: off")
        if self.target_return is not None:
            try:
                value = float(self.target_return)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise ConfigError(f"bad target return '{self.target_return}': expected a finite number")

    def description(self) -> dict[str, Any]:
        """The agent as run metrics and results rows record it: who decides, on what resources,
        and what the policy was told besides its checkpoint (None: its own)."""
        return {"agent": self.agent, "checkpoint": self.checkpoint, "backbone": self.backbone,
                "threads": self.threads, "runtime": self.runtime, "p_prime_band": self.p_prime_band,
                "target_return": self.target_return, "sample": self.sample}

    def policy_options(self) -> dict[str, Any]:
        """The options given that change which policy decides (empty: the default agent)."""
        options = {"agent": self.agent if self.agent != "llm" else None, "checkpoint": self.checkpoint,
                   "backbone": self.backbone, "p_prime_band": self.p_prime_band,
                   "target_return": self.target_return, "sample": self.sample or None,
                   "agent_args": dict(self.agent_args) or None}
        return {k: v for k, v in options.items() if v is not None}

    def command(self, stats_path: Path | None) -> list[str]:
        cmd = [sys.executable, "-m", "aqm_llm.agent.server", "--agent", self.agent,
               "--threads", str(self.threads), "--seed", str(self.seed)]
        if self.agent == "llm":
            cmd += ["--runtime", self.runtime]
            if self.p_prime_band is not None:
                cmd += ["--p-prime-band", str(self.p_prime_band)]
            if self.target_return is not None:
                cmd += ["--target-return", repr(float(self.target_return))]
            if self.sample:
                cmd.append("--sample")
        if self.checkpoint:
            cmd += ["--checkpoint", self.checkpoint]
        if self.backbone:
            cmd += ["--backbone", self.backbone]
        for key, value in self.agent_args.items():
            cmd += ["--agent-arg", f"{key}={value}"]
        if stats_path is not None:
            cmd += ["--stats", str(stats_path)]
        return cmd


class AgentProcess:
    """Runs the agent server for one simulation; the user never manages two processes.

    The server creates the shared-memory channel and prints ``READY <channel-name>``; the
    runner hands the name to the scenario program. On exit the agent is terminated (SIGTERM,
    which also removes its segment) and killed if it does not go.
    """

    def __init__(self, spec: AgentSpec, stats_path: Path | None = None) -> None:
        self.spec = spec
        self.stats_path = stats_path
        self.proc: subprocess.Popen[str] | None = None
        self.channel = ""
        self.start_s = 0.0  # process start to READY: interpreter, imports, loading the agent
        self.stderr_tail: list[str] = []

    def __enter__(self) -> "AgentProcess":
        started = time.monotonic()
        self.proc = subprocess.Popen(self.spec.command(self.stats_path), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + self.spec.startup_timeout_s
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                self.channel = line.split()[1]
                self.start_s = time.monotonic() - started
                break
            # Anything else the agent prints on stdout before READY (e.g. "policy is untrained").
            print(f"agent: {line.rstrip()}", file=sys.stderr)
        if not self.channel:
            self.__exit__(None, None, None)
            raise SimulationError("agent did not start: " + "\n".join(self.stderr_tail[-20:]))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.stderr_tail = self.proc.stderr.read().splitlines()[-50:]


def default_output_dir() -> Path:
    return Path(os.environ.get("AQM_LLM_RESULTS", "results")) / "runs"


def needs_agent(qdisc: str, params: Mapping[str, Any]) -> bool:
    """An l4s-llm run needs an agent process unless its queue disc runs a teacher alone."""
    mode = str(params.get("llm_mode", "agent"))
    teacher_acts = mode == "teacher" or (mode == "record" and str(params.get("record_actor", "auto")) == "teacher")
    return qdisc == "l4s-llm" and not teacher_acts and not params.get("agent_channel")


def checkpoint_params(qdisc: str, params: Mapping[str, Any], agent: AgentSpec | None) -> dict[str, str]:
    """The queue-disc parameters the served checkpoint carries (the settings it was evaluated
    with, e.g. llm_l_sojourn_limit) that the run does not set itself: a run's own value wins."""
    if not needs_agent(qdisc, params):
        return {}
    spec = agent if agent is not None else AgentSpec()
    if spec.agent != "llm":
        return {}
    from aqm_llm.agent.checkpoint import queue_disc_settings

    return {k: v for k, v in queue_disc_settings(spec.checkpoint, spec.backbone).items() if k not in params}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _remove_stale_files(out_dir: Path, stem: str) -> None:
    """Remove the partial metrics and agent statistics a killed run of this spec left behind
    (their names carry the pid of the runner that wrote them; a live one's are kept)."""
    for path in [*out_dir.glob(f".{stem}.*.partial.json"), *out_dir.glob(f".{stem}.*.agent.json")]:
        pid = path.name[len(stem) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            path.unlink(missing_ok=True)


def run(scenario: str, qdisc: str = "fq-codel-l4s", seed: int = 1,
        params: Mapping[str, Any] | None = None, *, output_dir: str | Path | None = None,
        timeseries: bool = False, progress: bool = False,
        agent: AgentSpec | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """Run one simulation and return its metrics (also written as JSON under output_dir).

    >>> m = run("dumbbell", qdisc="fq-codel-l4s", seed=1, params={"duration": "10s", "warmup": "2s"})
    >>> m["classes"]["l4s"]["sojourn_ms"]["p99"]
    """
    if timeout_s is not None and not timeout_s > 0:  # NaN fails too
        raise ConfigError(f"bad value '{timeout_s:g}' for timeout: must be a number of seconds > 0")
    spec = RunSpec(scenario=scenario, qdisc=qdisc, seed=seed, params=dict(params or {}))
    out_dir = Path(output_dir) if output_dir is not None else default_output_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{scenario}-{qdisc}-s{seed}-{spec.key()}"
    options = agent.policy_options() if agent is not None and needs_agent(qdisc, spec.params) else {}
    if options:
        # Another checkpoint, band or target return is another policy: its own files, so that
        # comparing two of them in one directory does not overwrite the first.
        stem += "-" + hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    output = out_dir / f"{stem}.json"
    ts_path = out_dir / f"{stem}.timeseries.csv" if timeseries else None
    _remove_stale_files(out_dir, stem)
    partial = out_dir / f".{stem}.{os.getpid()}.partial.json"
    use_agent = needs_agent(qdisc, spec.params)
    # The agent samples with the run's seed: same seed, same decisions.
    agent_spec = replace(agent, seed=seed) if agent is not None else AgentSpec(seed=seed)
    from_checkpoint = checkpoint_params(qdisc, spec.params, agent_spec)
    effective_params = {**from_checkpoint, **spec.params}  # what the scenario program is given
    # validate first (the checkpoint's settings too), before an agent process starts
    build_command(RunSpec(scenario, qdisc, seed, effective_params), output=partial, timeseries=ts_path,
                  progress=progress)
    if use_agent:
        agent_spec.check()
    stats_path = out_dir / f".{stem}.{os.getpid()}.agent.json"
    log_path = out_dir / f"{stem}.log"  # the program's stderr, kept beside the metrics
    started = time.time()
    agent_stats: dict[str, Any] | None = None
    agent_start_s = 0.0
    try:
        with (AgentProcess(agent_spec, stats_path) if use_agent else nullcontext()) as agent_proc:
            run_params = dict(effective_params)
            if agent_proc is not None:
                run_params["agent_channel"] = agent_proc.channel
                agent_start_s = agent_proc.start_s
            cmd = build_command(RunSpec(scenario, qdisc, seed, run_params), output=partial,
                                timeseries=ts_path, progress=progress)
            run_simulation(cmd, progress=progress, label=f"{scenario}/{qdisc}/seed {seed}",
                           timeout=timeout_s, log_path=log_path)
        metrics = json.loads(partial.read_text())
        if use_agent and stats_path.exists():
            agent_stats = json.loads(stats_path.read_text())
    finally:
        partial.unlink(missing_ok=True)
        stats_path.unlink(missing_ok=True)
    if agent_stats is not None:
        metrics["agent"] = {**agent_stats, "start_s": round(agent_start_s, 3),
                            "spec": agent_spec.description()}
    metrics["run"] = {
        "key": spec.key(), "qdisc": qdisc, "seed": seed,
        "params": {k: str(v) for k, v in effective_params.items()},
        # the queue-disc settings among params that came from the checkpoint, not the run
        "checkpoint_params": from_checkpoint,
        "started_unix": started, "wall_s": time.time() - started,
        "command": [c for c in cmd if not c.startswith(("--output=", "--progress=", "--agent_channel="))],
        "timeseries": str(ts_path) if ts_path else None, "metrics_path": str(output),
        "log_path": str(log_path),
    }
    # Write atomically: a killed run leaves no half-written metrics file.
    tmp = output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=1))
    tmp.replace(output)
    return metrics
