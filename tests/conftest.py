"""Shared fixtures: the suite runs against the native build installed by `make build`."""

from __future__ import annotations

from pathlib import Path

import pytest

from aqm_llm import native

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def native_build_present() -> None:
    if not native.installed_scenarios():
        pytest.exit("native build missing: run `make build` (make test does it)", returncode=2)


def strip_volatile(metrics: dict) -> dict:
    """Metrics without what legitimately differs between identical runs (wall time, paths)."""
    # agent: the agent process's own timings; agent_channel: a fresh segment name per run.
    out = {k: v for k, v in metrics.items() if k not in ("wall_time_s", "run", "agent")}
    out["config"] = {k: v for k, v in out.get("config", {}).items()
                     if k not in ("output", "timeseries", "agent_channel")}
    if "llm" in out:
        out["llm"] = {k: v for k, v in out["llm"].items() if "latency" not in k}
    return out
