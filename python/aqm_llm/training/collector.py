"""``aqm-llm collect``: build an experience pool by running teachers in record mode.

A grid of scenario x acting teacher x parameters x seeds runs through the sweep runner
(Dask, resumable: ``<pool>/collect.db``) with the l4s-llm queue disc in record mode: one
teacher acts, every teacher of the queue disc's set decides in shadow, and the queue disc
logs request + every reply per epoch. Each record file is then converted to a Parquet part
(:mod:`aqm_llm.training.pool`) and the manifest lists what the pool holds.

Config (YAML)::

    name: collect-small
    pool: pools/collect-small        # the pool directory (relative to the working directory)
    scenarios: [dumbbell]
    teachers: [dualpi2, pie-step, codel-like, dualpi2@0.5, dualpi2@2]   # acting; default all 9
    seeds: [1, 2]                    # or {count: N, start: S}
    params: {duration: 10s, warmup: 2s}
    grid: {bottleneck_rate: [50Mbps, 100Mbps]}
    per_scenario: {wifi: {stations: [2, 4]}}
    settings:                        # explicit settings (no grid), each x teachers x seeds
      - {scenario: satellite, params: {orbit: geo}}
    settings_from: configs/collect-default.yaml   # or: that collect file's settings (not with settings)
    reward: {utilization: 1.0, l_delay_per_ms: 0.1, c_delay_per_ms: 0.02, loss: 10.0}
    epsilon: 0.0                     # see below
    workers: null                    # LocalCluster size (default from the CPUs); or
    scheduler: null                  # tcp://host:8786, an existing Dask cluster

``scenarios`` (the grid) and ``settings`` (a list of scenario + params, for a pool that spans
many families and ranges without a cartesian product) may be given together; one is needed.
``settings_from`` takes ``settings`` from another collect file (a path from the working
directory), so that a pool meant to sit beside another (on-policy states, other seeds, longer
runs) collects in exactly its settings; the manifest lists the settings it used.

On-policy states (DAgger): ``policy: {checkpoint: models/l4s-llm, threads: 1}`` (the keys of a
sweep's ``agent``) adds, for each of ``settings``, runs where that trained policy acts while every
teacher still decides in shadow; ``teachers: []`` collects those runs alone. Training on such a
pool next to the teachers' (``pools: [...]``) labels the states the policy itself visits in closed
loop with the best teacher's decisions there, the states a teacher-only pool lacks (an acting
policy is never a distillation target: only teachers are).

Exploration: the perturbed teachers (``NAME@0.5``, ``NAME@2``: half / double their delay
targets) acting push the queue into states the nominal teachers avoid. ``epsilon``: the queue
disc replaces each of the acting teacher's per-packet actions, with that probability, by a
uniformly random one (``explore_epsilon``, its own random stream) and logs the actions it applied
(record flag bit 2), so the pool's ``action`` column is what was done, and ``teacher_actions``
still hold every teacher's own choice for distillation.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqm_llm.agent.reward import REWARD_WEIGHTS, RewardConfig
from aqm_llm.configfile import read_yaml
from aqm_llm.errors import ConfigError
from aqm_llm.configschema import as_run_timeout, top_level
from aqm_llm.training.pool import (DB_FILE, MANIFEST, PARTS_DIR, POOL_FORMAT, POOL_VERSION,
                                   RECORDS_DIR, RUNS_DIR, part_metadata, record_to_table,
                                   reward_dict, write_part)

QDISC = "l4s-llm"
VARIANT = "record"
#: Parameters collect sets itself.
OWNED = ("llm_mode", "record_actor", "teacher", "record_path", "agent_channel", "timeseries")


def all_teachers() -> tuple[str, ...]:
    """The l4s-llm queue disc's teacher set, as the scenario programs declare it (the C++ registry,
    the one list): the acting teachers a collection uses by default."""
    from aqm_llm.scenarios import available, describe

    names = available()
    if not names:
        raise ConfigError("no scenario programs are installed (run `make build`)")
    return describe(names[0]).params["teacher"].choices
_KEYS = ("name", "description", "pool", "scenarios", "teachers", "seeds", "params", "grid",
         "per_scenario", "settings", "settings_from", "reward", "epsilon", "policy", "workers", "cores_per_worker", "scheduler",
         "run_timeout_s")


@dataclass(frozen=True)
class Setting:
    """One explicit collection setting: a scenario and its parameters."""

    scenario: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectConfig:
    name: str
    pool: Path
    scenarios: tuple[str, ...]
    teachers: tuple[str, ...] = field(default_factory=all_teachers)
    seeds: Any = (1,)
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)
    per_scenario: dict[str, Any] = field(default_factory=dict)
    settings: tuple[Setting, ...] = ()
    reward: RewardConfig = RewardConfig()
    epsilon: float = 0.0
    policy: dict[str, Any] | None = None  # the agent that acts in extra runs (a sweep's agent keys)
    workers: int | None = None
    cores_per_worker: int | None = None
    scheduler: str | None = None
    run_timeout_s: float | None = None  # wall-clock limit per record run (None: the sweep default)
    source: str = "collect"
    doc: dict[str, Any] = field(default_factory=dict)  # the config as given (for the manifest)

    def sweep_doc(self) -> dict[str, Any]:
        """The equivalent sweep file: l4s-llm in record mode, the acting teacher a grid axis
        (and, for each explicit setting, one include per acting teacher)."""
        doc: dict[str, Any] = {
            "name": self.name, "seeds": self.seeds if isinstance(self.seeds, dict) else list(self.seeds),
            "params": {**self.params, "llm_mode": "record", "record_actor": "teacher",
                       **({"explore_epsilon": self.epsilon} if self.epsilon > 0 else {})},
            "per_scenario": self.per_scenario, "timeseries": False, "run_timeout_s": self.run_timeout_s}
        if self.scenarios:
            doc.update(scenarios=list(self.scenarios), qdiscs=[QDISC],
                       grid={**self.grid, "teacher": list(self.teachers)})
        if self.settings:
            doc["include"] = [{"scenario": s.scenario, "qdisc": QDISC, "params": {**s.params, "teacher": t}}
                              for s in self.settings for t in self.teachers]
        if self.policy is not None:
            doc["agent"] = dict(self.policy)
            doc["include"] = [*doc.get("include", []),
                              *({"scenario": s.scenario, "qdisc": QDISC, "params": {**s.params, "record_actor": "agent"}}
                                for s in self.settings)]
        return doc


def parse_collect_config(doc: Any, *, source: str = "collect", default_name: str = "collect",
                         pool: str | Path | None = None) -> CollectConfig:
    fail, name = top_level(doc, _KEYS, "scenarios, teachers, seeds, params", source, default_name)
    pool_dir = pool if pool is not None else doc.get("pool", f"pools/{name}")
    scenarios = doc.get("scenarios", [])
    if not isinstance(scenarios, list) or not all(isinstance(s, str) for s in scenarios):
        raise fail("scenarios: expected a list of scenario names")
    settings = _settings(_settings_doc(doc, fail), fail)
    if not scenarios and not settings:
        raise fail("nothing to collect: give scenarios (a grid) or settings (a list)")
    policy = doc.get("policy")
    if policy is not None:
        from aqm_llm.sweep.spec import agent_spec

        agent_spec(policy, fail)  # checked now: a missing checkpoint fails before anything runs
        if scenarios or not settings:
            raise fail("policy: give settings (the policy acts in each of them), not a scenarios grid")
    teachers = doc.get("teachers", list(all_teachers()))
    if not isinstance(teachers, list) or not (teachers or policy is not None) \
            or not all(isinstance(t, str) for t in teachers):
        raise fail("teachers: expected a non-empty list of teacher names (e.g. dualpi2, pie-step@2)")
    for where in ("params", "grid"):
        for key in (doc.get(where) or {}):
            if key in OWNED:
                raise fail(f"{where}.{key}: set by collect (acting teachers go in `teachers`)")
    for scen, values in (doc.get("per_scenario") or {}).items():
        for key in (values or {}):
            if key in OWNED:
                raise fail(f"per_scenario.{scen}.{key}: set by collect")
    reward_doc = doc.get("reward") or {}
    if not isinstance(reward_doc, dict) or any(k not in REWARD_WEIGHTS for k in reward_doc):
        raise fail(f"reward: expected a mapping with keys among {', '.join(REWARD_WEIGHTS)}")
    try:
        reward = RewardConfig(**{k: float(v) for k, v in reward_doc.items()})
    except (TypeError, ValueError) as exc:
        raise fail(f"reward: {exc}") from None
    if any(w < 0 for w in (reward.utilization, reward.l_delay_per_ms, reward.c_delay_per_ms, reward.loss)):
        raise fail("reward: weights must be >= 0 (delay and loss are penalised, utilisation rewarded)")
    epsilon = doc.get("epsilon", 0.0)
    if not isinstance(epsilon, (int, float)) or not 0.0 <= float(epsilon) <= 1.0:
        raise fail("epsilon: expected a number in [0, 1]")
    for key in ("workers", "cores_per_worker"):
        v = doc.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise fail(f"{key}: expected an integer >= 1")
    return CollectConfig(name=str(name), pool=Path(pool_dir), scenarios=tuple(scenarios),
                         teachers=tuple(dict.fromkeys(teachers)),
                         seeds=doc.get("seeds", [1]), params=dict(doc.get("params") or {}),
                         grid=dict(doc.get("grid") or {}),
                         per_scenario=dict(doc.get("per_scenario") or {}), settings=settings,
                         reward=reward,
                         epsilon=float(epsilon), policy=dict(policy) if policy is not None else None,
                         workers=doc.get("workers"),
                         cores_per_worker=doc.get("cores_per_worker"), scheduler=doc.get("scheduler"),
                         run_timeout_s=as_run_timeout(doc.get("run_timeout_s"), fail),
                         source=source, doc=doc)


def _settings_doc(doc: dict[str, Any], fail: Any) -> Any:
    """The ``settings`` list: the config's own, or that of the collect file ``settings_from`` names."""
    source = doc.get("settings_from")
    if source is None:
        return doc.get("settings", [])
    if "settings" in doc:
        raise fail("settings_from: give settings or settings_from, not both")
    if not isinstance(source, str) or not source:
        raise fail("settings_from: expected the path of a collect file")
    try:
        other = read_yaml(Path(source), "collect file")
    except ConfigError as exc:
        raise fail(f"settings_from: {exc}") from None
    if not isinstance(other, dict) or not isinstance(other.get("settings"), list):
        raise fail(f"settings_from: {source} has no settings list")
    return other["settings"]


def _settings(value: Any, fail: Any) -> tuple[Setting, ...]:
    if not isinstance(value, list):
        raise fail("settings: expected a list of {scenario: NAME, params: {...}}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("scenario"), str) \
                or any(k not in ("scenario", "params") for k in item):
            raise fail(f"settings[{i}]: expected {{scenario: NAME, params: {{...}}}}")
        params = item.get("params") or {}
        if not isinstance(params, dict):
            raise fail(f"settings[{i}].params: expected a mapping")
        owned = [k for k in params if k in OWNED]
        if owned:
            raise fail(f"settings[{i}].params.{owned[0]}: set by collect")
        out.append(Setting(item["scenario"], dict(params)))
    return tuple(out)


def load_collect_config(path: str | Path, *, pool: str | Path | None = None) -> CollectConfig:
    p = Path(path)
    return parse_collect_config(read_yaml(p, "collect config"), source=str(p), default_name=p.stem, pool=pool)


def plan_runs(cfg: CollectConfig) -> list[Any]:
    """Every record run of the config, validated (ConfigError names the first bad one)."""
    from aqm_llm.sweep import parse_spec, plan

    spec = parse_spec(cfg.sweep_doc(), default_name=cfg.name, source=cfg.source)
    runs = plan(spec)
    return [dataclasses.replace(r, variant=VARIANT, timeseries=False) for r in runs]


def record_path(pool: Path, run_id: str) -> Path:
    return pool / RECORDS_DIR / f"{run_id}.rec"


def record_task(run: Any, output_dir: Path) -> dict[str, Any]:
    """Sweep task: one run in record mode, its record file at ``<pool>/records/<run key>.rec``
    (``output_dir`` is ``<pool>/runs``)."""
    from aqm_llm.runner import run as run_one
    from aqm_llm.sweep.runs import wall_clock_limit
    from aqm_llm.training.records import file_sha256, read_header, record_dtype

    pool = Path(output_dir).parent
    rec = record_path(pool, run.key())
    rec.parent.mkdir(parents=True, exist_ok=True)
    params = {**dict(run.spec.params), "record_path": str(rec)}
    metrics = run_one(run.spec.scenario, qdisc=run.spec.qdisc, seed=run.spec.seed, params=params,
                      output_dir=output_dir, timeseries=False, progress=False, timeout_s=wall_clock_limit(run),
                      agent=run.agent)
    if not rec.is_file():
        raise RuntimeError(f"the run wrote no record file at {rec}")
    meta, offset = read_header(rec)
    epochs = (rec.stat().st_size - offset) // record_dtype(meta).itemsize
    metrics["record"] = {"path": str(rec.relative_to(pool)), "sha256": file_sha256(rec),
                         "bytes": rec.stat().st_size, "epochs": int(epochs)}
    return metrics


@dataclass
class CollectSummary:
    pool: Path
    total: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    epochs: int = 0
    converted: int = 0  # part files (re)written by this invocation
    failures: list[tuple[str, str]] = field(default_factory=list)


def collect(config: CollectConfig | str | Path, *, pool: str | Path | None = None,
            progress: bool = True) -> CollectSummary:
    """Run every record run the pool does not have yet, convert records to Parquet parts,
    write the manifest. Resumable: rerun to finish an interrupted or partly failed collection."""
    from aqm_llm.resultsdb import ResultsDB
    from aqm_llm.sweep import ClusterConfig, run_sweep

    cfg = config if isinstance(config, CollectConfig) else load_collect_config(config, pool=pool)
    if isinstance(config, CollectConfig) and pool is not None:
        cfg = dataclasses.replace(cfg, pool=Path(pool))
    root = cfg.pool.resolve()
    runs = plan_runs(cfg)
    root.mkdir(parents=True, exist_ok=True)
    db_path = root / DB_FILE
    sweep = run_sweep(runs, db_path, cluster=ClusterConfig(workers=cfg.workers,
                                                           cores_per_worker=cfg.cores_per_worker,
                                                           scheduler=cfg.scheduler),
                      task=record_task, run_dir=root / RUNS_DIR, name=cfg.name, progress=progress)
    summary = CollectSummary(pool=root, total=sweep.total, skipped=sweep.skipped, ok=sweep.ok,
                             failed=sweep.failed, failures=list(sweep.failures))
    with ResultsDB(db_path) as db:
        done = db.done_keys(r.key() for r in runs)
    rows = _ok_rows(db_path, done)
    entries, failed = [], []
    for run in runs:
        key = run.key()
        if key not in done:
            failed.append({"run_id": key, "label": run.label()})
            continue
        entry, converted = _convert(root, run, rows.get(key) or {}, cfg.reward)
        summary.converted += converted
        summary.epochs += entry["epochs"]
        entries.append(entry)
    write_manifest(root, cfg, runs, entries, failed)
    return summary


def _ok_rows(db_path: Path, keys: set[str]) -> dict[str, dict[str, Any]]:
    """Metrics of the 'ok' runs (by key)."""
    from aqm_llm.resultsdb import connect, json_cell

    conn = connect(db_path, create=False)
    try:
        out = {}
        for key, metrics in conn.execute("SELECT key, metrics FROM runs WHERE status = 'ok'"):
            if key in keys:
                out[key] = json_cell(metrics, "metrics", key, db_path) if metrics else {}
        return out
    finally:
        conn.close()


def _convert(root: Path, run: Any, metrics: dict[str, Any], reward: RewardConfig) -> tuple[dict[str, Any], int]:
    """The manifest entry of one finished run; (re)writes its Parquet part if missing or stale."""
    from aqm_llm.training.records import file_sha256

    key = run.key()
    rec = record_path(root, key)
    if not rec.is_file():
        raise ConfigError(f"run {run.label()} is recorded as done in {root / DB_FILE} but its record "
                          f"file {rec} is missing: delete its row (DELETE FROM runs WHERE key = '{key}') "
                          "and collect again")
    sha = file_sha256(rec)
    logged = (metrics.get("record") or {}).get("sha256")
    if logged and logged != sha:
        raise ConfigError(f"{rec} changed since its run ended (sha256 {sha[:12]}, the run logged "
                          f"{logged[:12]}): delete its row and collect again")
    part = root / PARTS_DIR / f"{key}.parquet"
    meta = part_metadata(part) if part.is_file() else None
    converted = 0
    if meta is None or meta.get("record_sha256") != sha or meta.get("reward") != reward_dict(reward):
        params = {k: str(v) for k, v in run.spec.params.items()}
        table = record_to_table(rec, run_id=key, scenario=run.spec.scenario, seed=run.spec.seed,
                                params=params, reward=reward, record_sha256=sha)
        write_part(table, part)
        meta = part_metadata(part)
        converted = 1
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(part))
    n = pf.metadata.num_rows
    episode_return = None
    if n:
        first = pf.read_row_group(0, columns=["episode_return"]).column(0)
        episode_return = float(first[0].as_py())
    llm = metrics.get("llm") or {}
    return {
        "run_id": key, "scenario": run.spec.scenario, "seed": run.spec.seed,
        "params": {k: str(v) for k, v in run.spec.params.items()},
        "acting": run.spec.params.get("teacher"),
        "record": str(rec.relative_to(root)), "record_sha256": sha, "record_bytes": rec.stat().st_size,
        "part": str(part.relative_to(root)), "epochs": int(n), "episode_return": episode_return,
        "teachers": (meta or {}).get("teachers"),
        "fallbacks": llm.get("fallbacks", metrics.get("fallbacks")),
        "metrics": {k: metrics.get(k) for k in ("utilisation", "loss_rate", "mark_rate", "capacity_mbps",
                                                 "base_rtt_ms")} | {
            "l4s_sojourn_p99_ms": ((metrics.get("classes") or {}).get("l4s") or {}).get("sojourn_ms", {}).get("p99"),
            "classic_sojourn_p99_ms": ((metrics.get("classes") or {}).get("classic") or {}).get("sojourn_ms", {}).get("p99")},
        "traffic": {k: (metrics.get("config") or {}).get(k)
                    for k in ("l4s_flows", "classic_flows", "short_flows_per_s", "udp_rate", "udp_ecn")},
        "wall_s": (metrics.get("run") or {}).get("wall_s"),
        "versions": metrics.get("versions"),
    }, converted


def coverage(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What the pool spans (for the manifest and the model card): runs per family, capacity, base
    RTT and flows per class ranges, runs with short flows or UDP, and what collecting it cost."""
    def span(values: list[Any]) -> list[float] | None:
        nums = [float(v) for v in values if isinstance(v, (int, float))]
        return [min(nums), max(nums)] if nums else None

    traffic = [e.get("traffic") or {} for e in entries]
    families: dict[str, int] = {}
    for e in entries:
        families[e["scenario"]] = families.get(e["scenario"], 0) + 1
    return {
        "runs_per_family": families,
        "capacity_mbps": span([(e.get("metrics") or {}).get("capacity_mbps") for e in entries]),
        "base_rtt_ms": span([(e.get("metrics") or {}).get("base_rtt_ms") for e in entries]),
        "flows_per_class": span([t.get(k) for t in traffic for k in ("l4s_flows", "classic_flows")]),
        "runs_with_short_flows": sum(1 for t in traffic if float(t.get("short_flows_per_s") or 0) > 0),
        "runs_with_udp": sum(1 for t in traffic if str(t.get("udp_rate") or "0").rstrip("bps") not in ("", "0")),
        "record_bytes": sum(int(e.get("record_bytes") or 0) for e in entries),
        "collection_wall_s": sum(float(e.get("wall_s") or 0) for e in entries),
    }


def software_versions() -> dict[str, Any]:
    import importlib.metadata

    import numpy

    import aqm_llm
    from aqm_llm import channel
    from aqm_llm.agent import features

    out: dict[str, Any] = {"aqm_llm": aqm_llm.__version__, "python": platform.python_version(),
                           "numpy": numpy.__version__, "protocol_version": channel.PROTOCOL_VERSION,
                           "feature_version": features.FEATURE_VERSION}
    for dist in ("pyarrow", "ns3", "dask", "distributed"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    repo = Path(aqm_llm.__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode == 0:
            out["git_commit"] = head.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10)
            out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def write_manifest(root: Path, cfg: CollectConfig, runs: list[Any], entries: list[dict[str, Any]],
                   failed: list[dict[str, Any]]) -> Path:
    teachers = next((e["teachers"] for e in entries if e.get("teachers")), None)
    versions = software_versions()
    sim_versions = next((e["versions"] for e in entries if e.get("versions")), None)
    if sim_versions:
        versions["simulation"] = sim_versions
    doc = {
        "format": POOL_FORMAT, "version": POOL_VERSION, "name": cfg.name,
        "written_unix": time.time(), "config": cfg.doc, "config_source": cfg.source,
        "scenarios": sorted(set(cfg.scenarios) | {s.scenario for s in cfg.settings}),
        "settings": [{"scenario": s.scenario, "params": s.params} for s in cfg.settings],
        "acting_teachers": list(cfg.teachers), "policy": cfg.policy,
        "teachers": teachers, "seeds": sorted({r.spec.seed for r in runs}),
        "params": cfg.params, "grid": cfg.grid, "per_scenario": cfg.per_scenario,
        "reward": reward_dict(cfg.reward), "epsilon": cfg.epsilon,
        "reward_formula": "r = utilization*util - l_delay_per_ms*L_delay_ms - c_delay_per_ms*C_delay_ms "
                          "- loss*loss (aqm_llm.agent.reward.epoch_reward)",
        "software": versions,
        "totals": {"runs": len(entries), "failed": len(failed), "epochs": sum(e["epochs"] for e in entries)},
        "coverage": coverage(entries),
        "runs": entries, "failed": failed,
    }
    path = root / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    return path
