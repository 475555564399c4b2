"""The Dask cluster a sweep runs on: a LocalCluster sized to the machine, or an existing one.

Each worker advertises a ``cores`` resource and each task asks for the cores its run needs, so
Dask never starts more simultaneous runs on a worker than it has cores for.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from aqm_llm.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

RESOURCE = "cores"


@dataclass(frozen=True)
class ClusterConfig:
    """Where a sweep runs. ``scheduler`` set: an existing cluster; otherwise a LocalCluster of
    ``workers`` processes with ``cores_per_worker`` cores each (defaults: from the CPU count and
    the largest run)."""

    workers: int | None = None
    cores_per_worker: int | None = None
    scheduler: str | None = None
    connect_timeout_s: float = 30.0

    def check(self) -> None:
        """ConfigError for values that can never work (before anything is created)."""
        for name, value in (("workers", self.workers), ("cores per worker", self.cores_per_worker)):
            if value is not None and value < 1:
                raise ConfigError(f"bad value '{value}' for {name}: must be >= 1")
        if self.scheduler is not None and (self.workers is not None or self.cores_per_worker is not None):
            raise ConfigError("--workers and --cores-per-worker size a local cluster; with --scheduler the "
                              "cluster's workers decide (start them with --resources cores=N)")


def plan_local(cfg: ClusterConfig, max_need: int, pending: int, cpus: int | None = None) -> tuple[int, int]:
    """(worker processes, cores per worker) for a LocalCluster; ConfigError if a run cannot fit."""
    cpus = cpus or os.cpu_count() or 1
    cfg.check()
    if cfg.workers is None and cfg.cores_per_worker is None:
        # A run needing more cores than the machine has (an l4s-llm agent with all cores as threads
        # plus the simulation) runs alone: simulation and agent alternate in lockstep.
        cores = max_need
        workers = max(1, cpus // cores)
    elif cfg.cores_per_worker is None:
        workers = cfg.workers or 1
        cores = max(1, cpus // workers)
    else:
        cores = cfg.cores_per_worker
        workers = cfg.workers or max(1, cpus // cores)
    if max_need > cores:
        raise ConfigError(f"a run needs {max_need} cores but workers have {cores}; "
                          f"use fewer --workers or set --cores-per-worker {max_need}")
    return min(workers, max(1, pending)), cores


@contextmanager
def open_client(cfg: ClusterConfig, max_need: int, pending: int) -> Iterator["Client"]:
    """A Dask client for the sweep; a LocalCluster it starts is always closed on exit."""
    from distributed import Client, LocalCluster

    if cfg.scheduler:
        try:
            client = Client(cfg.scheduler, timeout=cfg.connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {cfg.scheduler}: {exc}") from None
        with client:
            check_remote_resources(client, max_need, cfg.scheduler)
            yield client
        return
    workers, cores = plan_local(cfg, max_need, pending)
    with LocalCluster(n_workers=workers, threads_per_worker=cores, processes=True,
                      resources={RESOURCE: cores}, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def check_remote_resources(client: "Client", max_need: int, address: str) -> None:
    """Every run must fit on some worker, or its task would wait forever."""
    workers = client.scheduler_info().get("workers", {})
    best = max((float(w.get("resources", {}).get(RESOURCE, 0)) for w in workers.values()), default=0.0)
    if best < max_need:
        raise ConfigError(
            f"no worker of the Dask cluster at {address} offers {max_need} '{RESOURCE}' (largest: {best:g}); "
            f"start workers with `dask worker {address} --nthreads N --resources {RESOURCE}=N`")
