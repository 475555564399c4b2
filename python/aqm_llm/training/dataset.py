"""From an experience pool to training batches in the policy's token layout.

Every epoch of every episode becomes one training example, built exactly as
:class:`aqm_llm.agent.policy.LlmPolicy` builds its input online (``layout.build_inputs``):
the current epoch's normalised request (``features.encode_request``), its return-to-go token,
and the H previous epochs of the same episode as [RTG][state summary][action summary] history
tokens (oldest slots absent at the start of an episode). The history's action is what the
acting controller did (the logged reply it applied), its RTG the token of that epoch.

Return-to-go (hindsight, Decision-Transformer style): for an episode with per-epoch rewards
r_0..r_{N-1} and return G = sum r, the token at epoch t is (G - sum_{s<=t} r_s) / rtg_scale,
the value ``agent.reward.returns_to_go`` gives with target_return = G, and the value the policy
computes online when started at ``target_return`` = G. With ``conditioned=False`` (behaviour
cloning) every RTG token is 0.

Families and the two pool-level choices made here:

- family of an episode: the values of ``family_keys`` ("scenario", "setting": the scenario and
  all its parameters but the acting teacher, or scenario parameter names), joined with "/"
  (default: the scenario);
- best teacher per family (the distillation target): the acting teacher with the highest mean
  episode return per epoch (G / N) over its episodes of that family (= the highest mean
  episode return when episodes have equal length);
- target return per family (what the policy is conditioned on at evaluation): the
  ``quantile`` (default 0.9) of G / N over the family's episodes times ``eval_epochs``
  (default: the family's median episode length N) -- with equal-length episodes exactly the
  90th percentile of episode returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from aqm_llm.agent import features as F
from aqm_llm.agent.layout import TokenLayout
from aqm_llm.agent.reward import RewardConfig, rtg_token
from aqm_llm.agent.synthetic import as_request
from aqm_llm.channel import Scalar
from aqm_llm.scenarios import parse_seconds
from aqm_llm.training.pool import episode_rewards, requests_of

IGNORE = -100  # cross-entropy ignore index (packet slots without a target)
ALL_FAMILIES = "*"


@dataclass(frozen=True)
class Episode:
    run_id: str
    scenario: str
    family: str
    acting: str  # acting controller of the run (teacher name)
    start: int  # first row
    epochs: int
    ret: float  # episode return G with the training reward weights
    # Mean reward per epoch from the run's warm-up on (the window its metrics and an evaluation's
    # statistics cover); per_epoch when the run had no warm-up or no epoch after it.
    per_epoch_after_warmup: float = float("nan")

    @property
    def per_epoch(self) -> float:
        return self.ret / max(self.epochs, 1)

    def score(self, after_warmup: bool) -> float:
        """The episode's mean reward per epoch: over the whole run, or after its warm-up."""
        if after_warmup and not np.isnan(self.per_epoch_after_warmup):
            return self.per_epoch_after_warmup
        return self.per_epoch


@dataclass
class PoolData:
    """Row arrays (one row per epoch, episodes contiguous, epochs in order)."""

    layout: TokenLayout
    teachers: list[str]
    episodes: list[Episode]
    series: np.ndarray  # (N, S, 2, WINDOW) f32
    scalars: np.ndarray  # (N, N_SCALARS, 2) f32
    packets: np.ndarray  # (N, K, PACKET_FEATURES) f32
    npk: np.ndarray  # (N,) packets with tokens
    state: np.ndarray  # (N, STATE_SUMMARY_DIM) f32
    action_sum: np.ndarray  # (N, ACTION_SUMMARY_DIM) f32
    act: np.ndarray  # (N, K) int64, IGNORE where no target
    probs: np.ndarray  # (N, 3) f32
    valid: np.ndarray  # (N,) bool: the acting controller's action is known
    rewards: np.ndarray  # (N,) f64
    rtg_raw: np.ndarray  # (N,) f64: G - cumsum (unscaled)
    pos: np.ndarray  # (N,) epoch index in its episode
    episode: np.ndarray  # (N,) episode index
    teacher_act: np.ndarray  # (N, T, K) int16, IGNORE past the packets
    teacher_probs: np.ndarray  # (N, T, 3) f32
    # (N, 2) f64: DualPI2's own p' and p_L as the request reported them (the factor output's
    # references, agent.factor)
    references: np.ndarray
    family_best: dict[str, dict[str, Any]] = field(default_factory=dict)
    dist_act: np.ndarray | None = None  # (N, K) int64
    dist_probs: np.ndarray | None = None  # (N, 3) f32
    dist_valid: np.ndarray | None = None  # (N,) bool

    @property
    def rows(self) -> int:
        return int(self.pos.shape[0])


#: Family key for "this run's setting": the scenario and every parameter but those collect sets
#: per run (the acting teacher, record plumbing, exploration).
SETTING = "setting"


def family_of(scenario: str, params: dict[str, str], keys: Sequence[str]) -> str:
    from aqm_llm.training.collector import OWNED

    def part(key: str) -> str:
        if key == "scenario":
            return scenario
        if key == SETTING:
            kept = {k: v for k, v in params.items() if k not in OWNED and k != "explore_epsilon"}
            return scenario + json.dumps(kept, sort_keys=True)
        return str(params.get(key, "-"))

    return "/".join(part(k) for k in keys) or scenario


def build_pool_data(table: Any, teachers: list[str], layout: TokenLayout, reward: RewardConfig, *,
                    family_keys: Sequence[str] = ("scenario",)) -> PoolData:
    """Decode a pool table (``pool.load_pool``) into row arrays (features, targets, RTGs)."""
    import pyarrow.compute as pc

    # Episodes contiguous, epochs ascending (parts are, but do not rely on it).
    run_ids = table.column("run_id").to_pylist()
    order_runs = list(dict.fromkeys(run_ids))
    run_rank = {r: i for i, r in enumerate(order_runs)}
    epochs = table.column("epoch").to_numpy()
    order = np.lexsort((epochs, np.array([run_rank[r] for r in run_ids])))
    if not np.array_equal(order, np.arange(len(order))):
        table = table.take(order)
        run_ids = [run_ids[i] for i in order]
    n = table.num_rows
    k = layout.packets
    t_count = len(teachers)
    reqs = requests_of(table.column("request"))
    pc_all = table.column("packet_count").to_numpy().astype(np.int64)

    def flat_lists(name: str) -> tuple[np.ndarray, np.ndarray]:
        col = table.column(name).combine_chunks()
        values = col.flatten()
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False).astype(np.int64)
        return values, lengths

    act_values, act_len = flat_lists("action")
    act_flat = act_values.to_numpy(zero_copy_only=False).astype(np.int64)
    act_off = np.concatenate([[0], np.cumsum(act_len)])
    ta_col = table.column("teacher_actions").combine_chunks()
    ta_inner = ta_col.flatten()  # one list per (row, teacher)
    ta_len = pc.list_value_length(ta_inner).to_numpy(zero_copy_only=False).astype(np.int64)
    ta_vals = ta_inner.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    ta_off = np.concatenate([[0], np.cumsum(ta_len)])
    if ta_len.shape[0] != n * t_count:
        raise ValueError(f"pool rows carry {ta_len.shape[0] / max(n, 1):g} teachers' actions, the "
                         f"manifest lists {t_count}")
    tp = table.column("teacher_probs").combine_chunks().flatten().flatten()
    teacher_probs = tp.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, t_count, 3)
    probs = np.stack([table.column(c).to_numpy() for c in ("p_l_mark", "p_c_drop", "p_c_mark")],
                     axis=-1).astype(np.float32)
    valid = table.column("action_valid").to_numpy(zero_copy_only=False).astype(bool)
    comps = np.stack([table.column(c).to_numpy() for c in ("util", "l_delay_s", "c_delay_s", "loss")],
                     axis=-1)

    s = layout.series
    series = np.zeros((n, s, 2, F.WINDOW), np.float32)
    scalars = np.zeros((n, F.N_SCALARS, 2), np.float32)
    packets = np.zeros((n, k, F.PACKET_FEATURES), np.float32)
    npk = np.zeros(n, np.int64)
    state = np.zeros((n, F.STATE_SUMMARY_DIM), np.float32)
    action_sum = np.zeros((n, F.ACTION_SUMMARY_DIM), np.float32)
    act = np.full((n, k), IGNORE, np.int64)
    teacher_act = np.full((n, t_count, k), IGNORE, np.int16)
    references = np.stack([reqs["scalars"][:, Scalar.P_PRIME], reqs["scalars"][:, Scalar.P_L]],
                          axis=-1).astype(np.float64)
    for i in range(n):
        feats = F.encode_request(as_request(reqs[i:i + 1].reshape(())))
        m = min(feats.packet_count, k)
        series[i] = feats.series[:s]
        scalars[i] = feats.scalars
        packets[i, :m] = feats.packets[:m]
        npk[i] = m
        state[i] = F.state_summary(feats)
        if pc_all[i] != feats.packet_count:
            raise ValueError(f"row {i}: packet_count {pc_all[i]} but the request has {feats.packet_count}")
        if valid[i]:
            a = act_flat[act_off[i]:act_off[i + 1]]
            if a.shape[0] != feats.packet_count:
                raise ValueError(f"row {i}: {a.shape[0]} actions for {feats.packet_count} packets")
            act[i, :m] = a[:m]
            action_sum[i] = F.action_summary(a.astype(np.uint8), feats.traffic_class,
                                             (float(probs[i, 0]), float(probs[i, 1]), float(probs[i, 2])))
        for t in range(t_count):
            j = i * t_count + t
            ta = ta_vals[ta_off[j]:ta_off[j + 1]]
            teacher_act[i, t, :min(m, ta.shape[0])] = ta[:m]

    # Episodes.
    scen = table.column("scenario").to_pylist()
    params_col = table.column("params").to_pylist()
    acting_col = table.column("acting").to_pylist()
    sim_time_s = table.column("sim_time_ns").to_numpy().astype(np.float64) * 1e-9
    starts = [0] + [i for i in range(1, n) if run_ids[i] != run_ids[i - 1]]
    episodes: list[Episode] = []
    rewards = np.zeros(n, np.float64)
    rtg_raw = np.zeros(n, np.float64)
    pos = np.zeros(n, np.int64)
    episode = np.zeros(n, np.int64)
    for e, start in enumerate(starts):
        stop = starts[e + 1] if e + 1 < len(starts) else n
        r = episode_rewards(comps[start:stop], reward)
        total = float(r.sum())
        rewards[start:stop] = r
        rtg_raw[start:stop] = total - np.cumsum(r)
        pos[start:stop] = np.arange(stop - start)
        episode[start:stop] = e
        acting = str(acting_col[start])
        acting = acting.split(":", 1)[1] if acting.startswith("teacher:") else acting
        params = json.loads(params_col[start])
        warmup_s = parse_seconds(str(params.get("warmup", "0s"))) or 0.0
        after = sim_time_s[start:stop] >= warmup_s
        episodes.append(Episode(run_id=run_ids[start], scenario=scen[start],
                                family=family_of(scen[start], params, family_keys),
                                acting=acting, start=start, epochs=stop - start, ret=total,
                                per_epoch_after_warmup=float(r[after].mean()) if after.any() else float("nan")))
    return PoolData(layout=layout, teachers=list(teachers), episodes=episodes, series=series,
                    scalars=scalars, packets=packets, npk=npk, state=state, action_sum=action_sum,
                    act=act, probs=probs, valid=valid, rewards=rewards, rtg_raw=rtg_raw, pos=pos,
                    episode=episode, teacher_act=teacher_act, teacher_probs=teacher_probs,
                    references=references)


# ------------------------------------------------------------------------ pool-level choices


def families(data: PoolData) -> dict[str, list[Episode]]:
    out: dict[str, list[Episode]] = {}
    for ep in data.episodes:
        out.setdefault(ep.family, []).append(ep)
    return out


def best_teachers(data: PoolData, *, after_warmup: bool = False) -> dict[str, dict[str, Any]]:
    """Per family: every acting teacher's mean return per epoch (``after_warmup``: counted from
    each run's warm-up on), and the best of them that is among the logged teachers (None if no
    teacher acted in that family)."""
    out: dict[str, dict[str, Any]] = {}
    for fam, eps in families(data).items():
        scores: dict[str, list[float]] = {}
        for ep in eps:
            scores.setdefault(ep.acting, []).append(ep.score(after_warmup))
        means = {name: float(np.mean(v)) for name, v in scores.items()}
        eligible = {name: v for name, v in means.items() if name in data.teachers}
        best = max(sorted(eligible), key=lambda name: eligible[name]) if eligible else None
        out[fam] = {"best": best, "index": data.teachers.index(best) if best else None,
                    "mean_return_per_epoch": means,
                    "episodes": {name: len(v) for name, v in scores.items()}}
    return out


def fixed_teacher(data: PoolData, best: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    """``best`` with one teacher as every family's distillation target (every teacher decides in
    shadow in every state, so its action is known everywhere); ConfigError if it was not logged."""
    from aqm_llm.errors import ConfigError

    if name not in data.teachers:
        raise ConfigError(f"distill_teacher: '{name}' is not a teacher of the pool; "
                          f"allowed: {', '.join(data.teachers)}")
    return {fam: {**info, "best": name, "index": data.teachers.index(name), "fixed": True}
            for fam, info in best.items()}


def set_distillation_targets(data: PoolData, best: dict[str, dict[str, Any]]) -> None:
    """dist_act / dist_probs: in each state, the logged action of its family's best teacher."""
    n, k = data.rows, data.layout.packets
    data.dist_act = np.full((n, k), IGNORE, np.int64)
    data.dist_probs = np.zeros((n, 3), np.float32)
    data.dist_valid = np.zeros(n, bool)
    for ep in data.episodes:
        idx = best.get(ep.family, {}).get("index")
        if idx is None:
            continue
        rows = slice(ep.start, ep.start + ep.epochs)
        data.dist_act[rows] = data.teacher_act[rows, idx].astype(np.int64)
        data.dist_probs[rows] = data.teacher_probs[rows, idx]
        data.dist_valid[rows] = True
    data.family_best = best


def imitate_distillation_targets(data: PoolData) -> None:
    """Imitation: the acting targets (actions, probabilities) become the distillation targets
    too, in every state where they are known, so that no loss term follows another controller."""
    assert data.dist_act is not None and data.dist_probs is not None and data.dist_valid is not None
    data.act = data.dist_act.astype(data.act.dtype)
    data.probs = data.dist_probs.copy()
    data.valid = data.dist_valid.copy()


def target_returns(data: PoolData, quantile: float, eval_epochs: int | None = None) -> dict[str, dict[str, float]]:
    """Per family (and ``*`` for all episodes): the target return rule's numbers."""
    groups = families(data)
    groups[ALL_FAMILIES] = list(data.episodes)
    out = {}
    for fam, eps in groups.items():
        per_epoch = np.array([ep.per_epoch for ep in eps])
        q = float(np.quantile(per_epoch, quantile))
        epochs = int(eval_epochs) if eval_epochs else int(np.median([ep.epochs for ep in eps]))
        out[fam] = {"per_epoch": q, "epochs": epochs, "target_return": q * epochs,
                    "episodes": len(eps), "max_return": float(max(ep.ret for ep in eps)),
                    "median_return": float(np.median([ep.ret for ep in eps]))}
    return out


# ------------------------------------------------------------------------ batches


def rtg_values(data: PoolData, mode: str = "sum") -> np.ndarray:
    """(N,) hindsight RTG value per row before scaling: ``sum``: G - cumsum (the return still to
    collect); ``per_epoch``: that divided by the epochs still to come (at least 1)."""
    if mode == "sum":
        return data.rtg_raw
    lengths = np.array([ep.epochs for ep in data.episodes], np.int64)[data.episode]
    remaining = np.maximum(lengths - 1 - data.pos, 1)
    return data.rtg_raw / remaining


def rtg_normalisation(data: PoolData, mode: str, target_return: float,
                      norm: str = "standard") -> tuple[float, float]:
    """(offset, default scale) of the RTG tokens (``agent.reward.rtg_token``): ``robust``: the
    median and the interquartile range of the rows' hindsight values (``rtg_values``; tokens then
    clipped); ``standard``: ``per_epoch``: their mean and standard deviation (standardised
    tokens); ``sum``: 0 and the largest |return| of an episode or of the target (tokens within
    [-1, 1])."""
    if norm == "robust" or mode == "per_epoch":
        values = rtg_values(data, mode)[data.valid]
        if not values.size:
            return 0.0, 1.0
        if norm == "robust":
            q25, median, q75 = (float(v) for v in np.quantile(values, [0.25, 0.5, 0.75]))
            return median, (q75 - q25) if q75 > q25 else 1.0
        spread = float(values.std())
        return float(values.mean()), spread if spread > 0 else 1.0
    max_abs = max([abs(ep.ret) for ep in data.episodes] + [abs(target_return)])
    return 0.0, max_abs if max_abs > 0 else 1.0


def rtg_tokens(data: PoolData, reward: RewardConfig, conditioned: bool = True) -> np.ndarray:
    """(N,) RTG token per row: ``rtg_values`` in the checkpoint's mode through
    ``agent.reward.rtg_token`` with its offset, scale and normalisation (``reward``), or 0
    without return conditioning."""
    if not conditioned:
        return np.zeros(data.rows, np.float32)
    return rtg_token(rtg_values(data, reward.rtg_mode), reward).astype(np.float32)


def batch_arrays(data: PoolData, rows: np.ndarray, rtg: np.ndarray) -> dict[str, np.ndarray]:
    """Model inputs (``layout.ModelInputs`` fields with a batch axis) for ``rows``; the
    same arrays ``layout.build_inputs`` gives online for that epoch and its history."""
    lay = data.layout
    h, b = lay.history, rows.shape[0]
    hist_rtg = np.zeros((b, h, 1), np.float32)
    hist_state = np.zeros((b, h, F.STATE_SUMMARY_DIM), np.float32)
    hist_action = np.zeros((b, h, F.ACTION_SUMMARY_DIM), np.float32)
    pos = data.pos[rows]
    for j in range(h):  # slot j (oldest first) holds epoch t - (h - j)
        back = h - j
        ok = pos >= back
        src = rows[ok] - back
        hist_rtg[ok, j, 0] = rtg[src]
        hist_state[ok, j] = data.state[src]
        hist_action[ok, j] = data.action_sum[src]
    mask = lay.presence_mask(data.npk[rows], pos)
    return {"rtg": rtg[rows][:, None].astype(np.float32), "scalars": data.scalars[rows],
            "series": data.series[rows], "packets": data.packets[rows], "hist_rtg": hist_rtg,
            "hist_state": hist_state, "hist_action": hist_action, "mask": mask}


def split_episodes(data: PoolData, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): whole episodes held out, chosen by ``seed``; only rows
    whose acting action is known."""
    n_ep = len(data.episodes)
    n_val = int(round(val_fraction * n_ep)) if n_ep > 1 else 0
    n_val = min(n_val, n_ep - 1)
    rng = np.random.default_rng([seed, 7919])
    val_eps = set(rng.permutation(n_ep)[:n_val].tolist())
    is_val = np.isin(data.episode, sorted(val_eps))
    rows = np.arange(data.rows)
    return rows[~is_val & data.valid], rows[is_val & data.valid]
