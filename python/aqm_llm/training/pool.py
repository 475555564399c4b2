"""The experience pool: one Parquet row per decision epoch, one part file per run.

Layout of a pool directory (written by :func:`aqm_llm.training.collect`)::

    manifest.json          what was run (config, scenarios, params, seeds, teachers, reward
                           weights, software versions, each record file's sha256, per-run totals)
    collect.db             the sweep's results database (resumable; aqm_llm.results.load reads it)
    records/<run_id>.rec   the queue disc's record files (docs/record-format.md)
    epochs/<run_id>.parquet  the rows below, converted from the record file
    runs/                  the runs' metrics JSON

Row schema (:func:`pool_schema`; docs/training.md has the full table)::

    run_id, scenario, seed, params (JSON), acting (the run's acting controller),
    epoch, sim_time_ns, actor (-2 fallback, -1 agent, >= 0 teacher index), actor_name,
    request (the raw request bytes as the channel carried them, REQUEST_DTYPE),
    packet_count, action (the acting controller's action per request packet), action_valid,
    p_l_mark, p_c_drop, p_c_mark (the acting controller's epoch probabilities),
    teacher_actions (T x packet_count), teacher_probs (T x 3) (every logged teacher, in the
    manifest's ``teachers`` order), util, l_delay_s, c_delay_s, loss (reward components carried by
    the request: the interval that ends at the epoch), reward, return_to_go (rewards after this
    epoch's: episode_return - cumulative sum up to and including this epoch), episode_return,
    episode_epochs

The reward is :func:`aqm_llm.agent.reward.epoch_reward` with the pool's weights.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from aqm_llm.errors import ConfigError

from aqm_llm.agent.reward import RewardConfig, epoch_reward, returns_to_go, reward_weights
from aqm_llm.channel import REQUEST_DTYPE, Reward
from aqm_llm.training.records import ACTOR_AGENT, ACTOR_FALLBACK, read_records

POOL_FORMAT = "aqm-llm-pool"
POOL_VERSION = 1
MANIFEST = "manifest.json"
RECORDS_DIR = "records"
PARTS_DIR = "epochs"
RUNS_DIR = "runs"
DB_FILE = "collect.db"
META_KEY = b"aqm_llm_pool"
N_REWARDS = len(Reward)
REWARD_COLUMNS = ("util", "l_delay_s", "c_delay_s", "loss")  # channel.Reward order


def pool_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("run_id", pa.string()), ("scenario", pa.string()), ("seed", pa.int32()),
        ("params", pa.string()), ("acting", pa.string()),
        ("epoch", pa.int64()), ("sim_time_ns", pa.int64()), ("actor", pa.int32()),
        ("actor_name", pa.string()),
        ("request", pa.binary(REQUEST_DTYPE.itemsize)), ("packet_count", pa.int16()),
        ("action", pa.list_(pa.uint8())), ("action_valid", pa.bool_()),
        ("p_l_mark", pa.float64()), ("p_c_drop", pa.float64()), ("p_c_mark", pa.float64()),
        ("teacher_actions", pa.list_(pa.list_(pa.uint8()))),
        ("teacher_probs", pa.list_(pa.list_(pa.float64(), 3))),
        *[(c, pa.float64()) for c in REWARD_COLUMNS],
        ("reward", pa.float64()), ("return_to_go", pa.float64()),
        ("episode_return", pa.float64()), ("episode_epochs", pa.int32()),
    ])


def reward_components(requests: np.ndarray) -> np.ndarray:
    """(n, 4) reward components (channel.Reward order) of REQUEST_DTYPE records; missing = 0."""
    out = np.zeros((requests.shape[0], N_REWARDS), np.float64)
    counts = requests["reward_count"].astype(np.intp)
    for i in range(N_REWARDS):
        present = counts > i
        out[present, i] = requests["rewards"][present, i]
    return out


def episode_rewards(components: np.ndarray, cfg: RewardConfig) -> np.ndarray:
    """Per-epoch rewards r_t (agent.reward.epoch_reward) of one episode."""
    return np.array([epoch_reward(row, cfg) for row in components], np.float64)


def returns_after(components: np.ndarray, cfg: RewardConfig) -> np.ndarray:
    """return_to_go_t = sum of r_s for s > t (unscaled): the hindsight return-to-go of a logged
    episode, the same numbers the policy's ``ReturnToGo`` gives online with
    ``target_return`` = the episode's return (``agent.reward.returns_to_go``)."""
    rewards = episode_rewards(components, cfg)
    total = float(rewards.sum())
    return returns_to_go(components, replace(cfg, target_return=total, rtg_scale=1.0, rtg_offset=0.0,
                                             rtg_norm="standard"))


def record_to_table(path: str | Path, *, run_id: str, scenario: str, seed: int,
                    params: dict[str, str], reward: RewardConfig,
                    record_sha256: str = "") -> Any:
    """One record file as a pyarrow Table with :func:`pool_schema` (one row per epoch)."""
    import pyarrow as pa

    meta, d = read_records(path)
    n = d.shape[0]
    teachers: list[str] = list(meta["teachers"])
    t_count = len(teachers)
    req, hdr = d["request"], d["h"]
    pc = req["packet_count"].astype(np.int64)
    actor = hdr["actor"].astype(np.int32)
    acting = str(meta.get("acting", ""))

    # The acting controller's reply per epoch (fallback epochs: none logged).
    act_p = np.zeros((n, 3), np.float64)
    act_valid = actor != ACTOR_FALLBACK
    act_rows: list[np.ndarray] = []
    for i in range(n):
        a = int(actor[i])
        if a >= 0:
            # Flag bit 2: epsilon exploration; the agent slot holds the actions actually applied.
            rep = d["agent_reply"][i] if int(hdr["flags"][i]) & 4 else d["teacher"][i, a]
        elif a == ACTOR_AGENT:
            rep = d["agent_reply"][i]
        else:
            act_rows.append(np.zeros(0, np.uint8))
            continue
        act_rows.append(np.array(rep["actions"]["action"][:pc[i]], np.uint8))
        act_p[i] = (rep["p_l_mark"], rep["p_c_drop"], rep["p_c_mark"])
    names = np.array(["fallback", "agent", *teachers], dtype=object)[actor + 2]

    # teacher_actions: list<list<uint8>>, T lists of packet_count actions per epoch.
    t_acts = d["teacher"]["actions"]["action"]  # (n, T, MAX_PACKETS)
    flat = [t_acts[i, t, :pc[i]] for i in range(n) for t in range(t_count)]
    inner_len = np.repeat(pc, t_count)
    inner = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(inner_len)]).astype(np.int32)),
        pa.array(np.concatenate(flat).astype(np.uint8) if flat else np.zeros(0, np.uint8)))
    teacher_actions = pa.ListArray.from_arrays(
        pa.array((np.arange(n + 1) * t_count).astype(np.int32)), inner)
    t_probs = np.stack([d["teacher"]["p_l_mark"], d["teacher"]["p_c_drop"],
                        d["teacher"]["p_c_mark"]], axis=-1).astype(np.float64)  # (n, T, 3)
    probs_inner = pa.FixedSizeListArray.from_arrays(pa.array(t_probs.reshape(-1)), 3)
    teacher_probs = pa.ListArray.from_arrays(
        pa.array((np.arange(n + 1) * t_count).astype(np.int32)), probs_inner)

    comps = reward_components(req)
    rewards = episode_rewards(comps, reward)
    total = float(rewards.sum())
    rtg = total - np.cumsum(rewards)
    # Bytes straight from the file's records (a numpy copy of the field would not keep the
    # padding bytes as they were carried).
    req_off = d.dtype.fields["request"][1]
    raw = d.view(np.uint8).reshape(n, d.dtype.itemsize)[:, req_off:req_off + REQUEST_DTYPE.itemsize]
    params_json = json.dumps(dict(sorted(params.items())))
    columns: dict[str, Any] = {
        "run_id": pa.array([run_id] * n, pa.string()),
        "scenario": pa.array([scenario] * n, pa.string()),
        "seed": pa.array(np.full(n, seed, np.int32)),
        "params": pa.array([params_json] * n, pa.string()),
        "acting": pa.array([acting] * n, pa.string()),
        "epoch": pa.array(hdr["epoch"].astype(np.int64)),
        "sim_time_ns": pa.array(hdr["sim_time_ns"].astype(np.int64)),
        "actor": pa.array(actor),
        "actor_name": pa.array(list(names), pa.string()),
        "request": pa.array([bytes(row) for row in raw], pa.binary(REQUEST_DTYPE.itemsize)),
        "packet_count": pa.array(pc.astype(np.int16)),
        "action": pa.array(act_rows, pa.list_(pa.uint8())),
        "action_valid": pa.array(act_valid),
        "p_l_mark": pa.array(act_p[:, 0]), "p_c_drop": pa.array(act_p[:, 1]),
        "p_c_mark": pa.array(act_p[:, 2]),
        "teacher_actions": teacher_actions, "teacher_probs": teacher_probs,
        **{c: pa.array(comps[:, i]) for i, c in enumerate(REWARD_COLUMNS)},
        "reward": pa.array(rewards), "return_to_go": pa.array(rtg),
        "episode_return": pa.array(np.full(n, total)),
        "episode_epochs": pa.array(np.full(n, n, np.int32)),
    }
    schema = pool_schema()
    table = pa.Table.from_arrays([columns[f.name].cast(f.type) for f in schema], schema=schema)
    part_meta = {"format": POOL_FORMAT, "version": POOL_VERSION, "run_id": run_id,
                 "teachers": teachers, "acting": acting, "record_sha256": record_sha256,
                 "reward": reward_dict(reward), "record_meta": {
                     k: meta.get(k) for k in ("protocol_version", "layout_hash", "decision_interval_s",
                                              "decision_delay_s", "batch_size", "window", "mode")}}
    return table.replace_schema_metadata({META_KEY: json.dumps(part_meta).encode()})


def reward_dict(cfg: RewardConfig) -> dict[str, float]:
    """The reward weights (what the pool's ``reward`` column depends on)."""
    return reward_weights(cfg)


def part_metadata(path: str | Path) -> dict[str, Any] | None:
    """The pool metadata of a part file (None if it has none or cannot be read)."""
    import pyarrow.parquet as pq

    try:
        md = pq.read_schema(str(path)).metadata or {}
    except (OSError, ValueError):
        return None
    blob = md.get(META_KEY)
    return json.loads(blob) if blob else None


def write_part(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, str(tmp), compression="zstd")
    tmp.replace(path)


def read_manifest(pool: str | Path) -> dict[str, Any]:
    path = Path(pool) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{pool} is not an experience pool (no {MANIFEST}; run `aqm-llm collect` first)")
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        raise ConfigError(f"{path}: damaged pool manifest (not JSON); run `aqm-llm collect` again") from None
    if not isinstance(doc, dict) or doc.get("format") != POOL_FORMAT or doc.get("version") != POOL_VERSION:
        got = f"format {doc.get('format')} v{doc.get('version')}" if isinstance(doc, dict) else "not a mapping"
        raise ConfigError(f"{path}: {got}, expected {POOL_FORMAT} v{POOL_VERSION}")
    return doc


def load_pool(pool: str | Path, *, columns: list[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """(pyarrow Table of every epoch of the runs in the manifest, manifest)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(pool)
    manifest = read_manifest(root)
    tables = []
    for run in manifest["runs"]:
        t = pq.read_table(str(root / run["part"]), columns=columns)
        tables.append(t.replace_schema_metadata(None))
    if not tables:
        raise ValueError(f"{pool}: the pool has no runs")
    return pa.concat_tables(tables), manifest


def load_pool_frame(pool: str | Path, *, columns: list[str] | None = None) -> Any:
    """The pool as a pandas DataFrame (list columns become arrays of arrays)."""
    table, _ = load_pool(pool, columns=columns)
    return table.to_pandas()


def requests_of(column: Any) -> np.ndarray:
    """REQUEST_DTYPE array (n,) from the pool's ``request`` column (a pyarrow (Chunked)Array)."""
    size = REQUEST_DTYPE.itemsize
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    parts = []
    for chunk in chunks:
        buf = chunk.buffers()[1]
        raw = np.frombuffer(buf, dtype=np.uint8)[chunk.offset * size:(chunk.offset + len(chunk)) * size]
        parts.append(raw)
    raw = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    return raw.view(REQUEST_DTYPE).copy()
