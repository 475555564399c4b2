"""What a Dask task does: run one simulation (or a custom task) and report the outcome.

A task function has the signature ``task(run: SweepRun, output_dir: Path) -> dict`` and returns
the run's metrics (the dict ``aqm_llm.run`` returns) or raises. It must be importable by the
workers (a module-level function). ``execute`` wraps it: timings, error capture, and the
time-series CSV read back so the results database holds it even when the workers are remote.
"""

from __future__ import annotations

import dataclasses
import gzip
import platform
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from aqm_llm.errors import ConfigError, SimulationError
from aqm_llm.sweep.runs import SweepRun, sweep_agent, wall_clock_limit

TaskFn = Callable[[SweepRun, Path], dict[str, Any]]
_ERROR_CHARS = 4000  # keep the tail: that is where the program's last words are


def simulate(run: SweepRun, output_dir: Path) -> dict[str, Any]:
    """The default task: one ``aqm_llm.run`` (its own subprocesses and shared-memory segment)."""
    from aqm_llm.runner import run as run_one

    agent = dataclasses.replace(sweep_agent(run.agent), seed=run.spec.seed) if run.uses_agent() else None
    return run_one(run.spec.scenario, qdisc=run.spec.qdisc, seed=run.spec.seed, params=dict(run.spec.params),
                   output_dir=output_dir, timeseries=run.timeseries, progress=False, agent=agent,
                   timeout_s=wall_clock_limit(run))


@dataclass(frozen=True)
class TaskOutcome:
    """What comes back from a worker for one run."""

    key: str
    status: str  # 'ok' | 'failed'
    error: str | None
    metrics: dict[str, Any] | None
    started: float
    finished: float
    worker: str
    versions: dict[str, Any]
    timeseries_gz: bytes | None


def execute(run: SweepRun, output_dir: str, task: TaskFn = simulate) -> TaskOutcome:
    """Run ``task`` for one run on a worker; never raises for a failed run."""
    started = time.time()
    metrics: dict[str, Any] | None = None
    error: str | None = None
    try:
        metrics = task(run, Path(output_dir))
        if not isinstance(metrics, dict):
            raise TypeError(f"task returned {type(metrics).__name__}, expected the metrics dict")
    except Exception as exc:  # a failed run is data, not a reason to stop the sweep
        metrics, error = None, error_text(exc)
    finished = time.time()
    return TaskOutcome(key=run.key(), status="ok" if error is None else "failed", error=error, metrics=metrics,
                       started=started, finished=finished, worker=_worker_name(), versions=_versions(metrics),
                       timeseries_gz=_timeseries(metrics))


def error_text(exc: BaseException) -> str:
    """The error as stored: our errors carry the program's stderr tail; others get a traceback."""
    if isinstance(exc, SimulationError):
        text = str(exc)
    elif isinstance(exc, ConfigError):
        text = f"rejected by the scenario program: {exc}"
    else:
        text = "".join(traceback.format_exception(exc)).rstrip()
    return text[-_ERROR_CHARS:]


def stop_runs(marker: str, grace_s: float = 3.0) -> int:
    """Stop this worker's simulations and agents whose command line mentions ``marker`` (the run dir).

    Run on every worker when a sweep is interrupted: cancelling a Dask task does not stop the
    processes it started, which would otherwise run on, orphaned, and hold the cores. Matching the
    run dir leaves other clients' processes on a shared cluster alone. SIGTERM first, so an agent
    can remove its shared-memory segment; SIGKILL after ``grace_s``.
    """
    import psutil

    procs = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any(marker in arg for arg in p.cmdline()):
                p.terminate()
                procs.append(p)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    return len(procs)


def _versions(metrics: dict[str, Any] | None) -> dict[str, Any]:
    import aqm_llm

    out: dict[str, Any] = {"aqm_llm": aqm_llm.__version__}
    if metrics and isinstance(metrics.get("versions"), dict):
        out.update(metrics["versions"])
    out["python"] = platform.python_version()
    return out


def _timeseries(metrics: dict[str, Any] | None) -> bytes | None:
    path = ((metrics or {}).get("run") or {}).get("timeseries")
    if not path or not Path(path).is_file():
        return None
    return gzip.compress(Path(path).read_bytes())


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return socket.gethostname()
