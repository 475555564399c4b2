"""run_sweep: validate every run, skip the ones already in the database, run the rest on Dask.

Resumable by construction: the database has a unique key per run identity and the driver commits
each row in its own transaction the moment its run ends, so a sweep killed at any point (kill -9
included) loses only the runs in flight, and the next invocation runs exactly those still missing.
Failed runs are recorded as 'failed' and retried by the next invocation; 'ok' rows never re-run.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from aqm_llm.errors import ConfigError
from aqm_llm.progress import LineClock
from aqm_llm.resultsdb import ResultsDB, RunRecord, reusable_keys
from aqm_llm.runner import RunSpec
from aqm_llm.sweep.cluster import RESOURCE, ClusterConfig, open_client
from aqm_llm.sweep.runs import SweepRun, canonical, sweep_agent
from aqm_llm.sweep.spec import SweepSpec
from aqm_llm.sweep.tasks import TaskFn, TaskOutcome, error_text, execute, simulate, stop_runs

if TYPE_CHECKING:
    from distributed import Client, Future


@dataclass
class SweepSummary:
    """What one invocation did."""

    db_path: Path
    total: int = 0      # distinct runs in the sweep
    skipped: int = 0    # already 'ok' in the database
    reused: int = 0     # copied from another database (reuse_from) before running
    ok: int = 0         # succeeded now
    failed: int = 0     # failed now (recorded, retried next time)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (run label, last line of its error)


def plan(sweep: SweepSpec | Sequence[SweepRun | RunSpec]) -> list[SweepRun]:
    """Every run of the sweep, validated (ConfigError names the first bad one), duplicates dropped."""
    if isinstance(sweep, SweepSpec):
        sweep.check_scoping()
        try:
            return plan(sweep.runs())
        except ConfigError as exc:
            raise ConfigError(f"{sweep.source}: {exc}") from None
    unique: dict[str, SweepRun] = {}
    for run in sweep:
        c = canonical(run)
        unique.setdefault(c.key(), c)
    if not unique:
        raise ConfigError("the sweep has no runs")
    return list(unique.values())


def run_sweep(sweep: SweepSpec | Sequence[SweepRun | RunSpec], db_path: str | Path = "results.db", *,
              cluster: ClusterConfig | None = None, task: TaskFn = simulate, run_dir: str | Path | None = None,
              name: str | None = None, progress: bool = True,
              reuse_from: Sequence[str | Path] = ()) -> SweepSummary:
    """Run every run of ``sweep`` that the database at ``db_path`` does not hold as 'ok'.

    ``sweep`` is a SweepSpec (from ``load_spec``) or a list of RunSpec/SweepRun. ``task`` replaces
    the default simulation (see aqm_llm.sweep.tasks). Metrics JSON and time-series files go to
    ``run_dir`` (default: ``<db stem>-runs/`` next to the database); the database keeps copies.
    Nothing runs and nothing is written if any run is invalid (ConfigError).
    ``reuse_from``: other results databases whose 'ok' rows for this sweep's run keys are copied in
    first (``ResultsDB.copy_from``), so runs another sweep or evaluation already made are not made again.
    """
    cluster = cluster or ClusterConfig()
    cluster.check()
    runs = plan(sweep)
    label = name or (sweep.name if isinstance(sweep, SweepSpec) else "api")
    db_path = Path(db_path)
    out_dir = Path(run_dir) if run_dir is not None else db_path.parent / f"{db_path.stem}-runs"
    out_dir = out_dir.resolve()
    summary = SweepSummary(db_path=db_path, total=len(runs))
    keys = [r.key() for r in runs]
    for source in reuse_from:  # a bad source fails before the database is created or locked
        reusable_keys(source, keys, db_path)
    with exclusive_use(db_path), ResultsDB(db_path) as db:
        summary.skipped = len(db.done_keys(keys))
        for source in reuse_from:
            summary.reused += db.copy_from(source, keys)
        done = db.done_keys(keys)
        pending = [r for r in runs if r.key() not in done]
        if not pending:
            return summary
        out_dir.mkdir(parents=True, exist_ok=True)
        max_need = max(r.cores() for r in pending)
        with open_client(cluster, max_need, len(pending)) as client:
            _run_all(client, pending, db, out_dir, task, label, summary, progress)
    return summary


@contextmanager
def exclusive_use(db_path: Path) -> Iterator[None]:
    """Hold ``<db>.lock`` while a sweep runs: a second sweep (or collection, or evaluation) on the
    same database is refused in one line instead of running every combination again. The lock is
    the kernel's (flock), so a sweep killed with -9 leaves nothing that blocks the next one."""
    import fcntl

    lock_path = db_path.with_name(db_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ConfigError(f"{db_path} is in use by another sweep ({holder}); wait for it to finish "
                              "(it records every run once) or give another database") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()


def _run_all(client: "Client", pending: list[SweepRun], db: ResultsDB, out_dir: Path, task: TaskFn, label: str,
             summary: SweepSummary, progress: bool) -> None:
    from distributed import as_completed
    from tqdm import tqdm

    by_future: dict[Future, SweepRun] = {}
    for run in pending:
        fut = client.submit(execute, run, str(out_dir), task, pure=False, resources={RESOURCE: run.cores()},
                            key=f"aqm-llm-run-{run.key()}-{time.time_ns()}")
        by_future[fut] = run
    already = summary.skipped + summary.reused
    # A bar on a terminal; in a log (stderr not a terminal) a plain line at most every few seconds.
    interactive = progress and sys.stderr.isatty()
    started, clock = time.monotonic(), LineClock()
    with tqdm(total=summary.total, initial=already, desc=label, unit="run",
              disable=not interactive, file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            for fut in as_completed(by_future):
                run = by_future.pop(fut)
                outcome = _outcome(fut, run)
                fut.release()
                db.record(_record(run, outcome, label))
                if outcome.status == "ok":
                    summary.ok += 1
                else:
                    summary.failed += 1
                    last = (outcome.error or "").strip().splitlines()[-1:] or ["(no message)"]
                    summary.failures.append((run.label(), last[0]))
                    if progress:
                        bar.write(f"failed: {run.label()}: {last[0]}", file=sys.stderr)
                bar.set_postfix_str(f"{summary.failed} failed" if summary.failed else "", refresh=False)
                bar.update(1)
                if progress and not interactive and clock.due(final=not by_future):
                    print(_progress_line(label, summary, already, time.monotonic() - started), file=sys.stderr,
                          flush=True)
        finally:
            if by_future:  # interrupted: runs not yet recorded stay missing; stop their processes
                client.cancel(list(by_future))
                try:
                    client.run(stop_runs, str(out_dir), on_error="ignore")
                except Exception:  # a worker already gone: nothing of ours left there
                    pass


def _progress_line(label: str, summary: SweepSummary, already: int, elapsed: float) -> str:
    ran = summary.ok + summary.failed
    left = summary.total - already - ran
    eta = f", about {elapsed * left / ran / 60:.0f} min to go" if left else ""
    failed = f", {summary.failed} failed" if summary.failed else ""
    return (f"{label}: {already + ran}/{summary.total} runs done{failed}, "
            f"{elapsed / 60:.1f} min elapsed{eta}")


def _outcome(fut: "Future", run: SweepRun) -> TaskOutcome:
    """The task's outcome, or a failed one if the task itself was lost (worker died, unpicklable result)."""
    try:
        return fut.result()
    except Exception as exc:
        now = time.time()
        return TaskOutcome(key=run.key(), status="failed", error=error_text(exc), metrics=None, started=now,
                           finished=now, worker="", versions={}, timeseries_gz=None)


def _record(run: SweepRun, o: TaskOutcome, sweep: str) -> RunRecord:
    agent = None
    if run.uses_agent():
        agent = sweep_agent(run.agent).description()
    return RunRecord(key=run.key(), sweep=sweep, scenario=run.spec.scenario, qdisc=run.spec.qdisc,
                     seed=run.spec.seed, params={k: str(v) for k, v in run.spec.params.items()},
                     variant=run.variant, agent=agent, status=o.status, error=o.error, started=o.started,
                     finished=o.finished, worker=o.worker, versions=o.versions, metrics=o.metrics,
                     timeseries_gz=o.timeseries_gz)
