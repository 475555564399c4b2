"""Training pieces without ns-3: reward sign, return-to-go, pool decoding into the policy's
token layout, target/best-teacher rules, config checks, bitwise resume.

Record files here are synthetic (random valid requests written in the queue disc's record
format, docs/record-format.md); tests/test_training.py runs the real pipeline."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aqm_llm.agent import features as F
from aqm_llm.agent.layout import EpochRecord, History, TokenLayout, build_inputs
from aqm_llm.agent.reward import (ROBUST_TOKEN_CLIP, ReturnToGo, RewardConfig, epoch_reward, returns_to_go,
                                  rtg_token)
from aqm_llm.agent.synthetic import as_request, fill_random_request
from aqm_llm.channel import REPLY_DTYPE, REQUEST_DTYPE, Reward
from aqm_llm.errors import ConfigError
from aqm_llm.training import dataset as D
from aqm_llm.training.collector import parse_collect_config
from aqm_llm.training.config import parse_train_config
from aqm_llm.training.pool import (MANIFEST, PARTS_DIR, POOL_FORMAT, POOL_VERSION, load_pool,
                                   record_to_table, returns_after, reward_dict, write_part)
from aqm_llm.training.records import read_records

TEACHERS = ["dualpi2", "pie-step", "codel-like"]
HEADER_FIELDS = [["epoch", "<u8", 0], ["sim_time_ns", "<i8", 8], ["actor", "<i4", 16],
                 ["agent_outcome", "<u4", 20], ["teacher_count", "<u4", 24], ["flags", "<u4", 28],
                 ["agent_latency_s", "<f8", 32], ["effective_time_ns", "<i8", 40],
                 ["reserved", "(2,)<u8", 48]]


def write_record_file(path: Path, *, epochs: int, acting: int, seed: int, util: float = 0.9,
                      late_util: tuple[int, float] | None = None) -> None:
    """A record file as the queue disc writes it, with random valid requests and replies
    (``late_util``: (first epoch, utilisation) from that epoch on)."""
    rng = np.random.default_rng(seed)
    header = np.dtype({"names": [f[0] for f in HEADER_FIELDS], "formats": [f[1] for f in HEADER_FIELDS],
                       "offsets": [f[2] for f in HEADER_FIELDS], "itemsize": 64})
    rec = np.dtype([("h", header), ("request", REQUEST_DTYPE), ("agent_reply", REPLY_DTYPE),
                    ("teacher", REPLY_DTYPE, (len(TEACHERS),))])
    d = np.zeros(epochs, rec)
    for i in range(epochs):
        req = d["request"][i:i + 1].reshape(())
        fill_random_request(req, rng, packets=int(rng.integers(0, 20)), epoch=i)
        rewards = np.array(req["rewards"])
        rewards[Reward.UTILIZATION] = late_util[1] if late_util and i >= late_util[0] else util
        req["rewards"] = rewards
        n = int(req["packet_count"])
        d["h"]["epoch"][i], d["h"]["sim_time_ns"][i], d["h"]["actor"][i] = i, (i + 1) * 16_000_000, acting
        d["h"]["teacher_count"][i] = len(TEACHERS)
        for t in range(len(TEACHERS)):
            rep = d["teacher"][i:i + 1, t].reshape(())
            rep["action_count"] = n
            acts = rng.integers(0, 3, n).astype(np.uint8)
            acts[(acts == 2) & (req["packets"]["ecn"][:n] == 0)] = 1
            a = np.array(rep["actions"])
            a["uid"][:n], a["action"][:n] = req["packets"]["uid"][:n], acts
            rep["actions"] = a
            rep["p_l_mark"], rep["p_c_drop"], rep["p_c_mark"] = rng.uniform(0, 0.2, 3)
    meta = {"format": "aqm-llm-record", "version": 1, "record_size": rec.itemsize, "record_header_size": 64,
            "request_size": REQUEST_DTYPE.itemsize, "reply_size": REPLY_DTYPE.itemsize, "teachers": TEACHERS,
            "acting": "agent" if acting < 0 else f"teacher:{TEACHERS[acting]}", "acting_teacher_index": acting,
            "mode": "record",
            "record_header": HEADER_FIELDS}
    blob = json.dumps(meta).encode()
    offset = -(-(16 + len(blob) + 1) // 64) * 64
    with open(path, "wb") as f:
        f.write(b"AQMLLMRC" + struct.pack("<II", 1, offset))
        f.write(blob + b" " * (offset - 16 - len(blob) - 1) + b"\n")
        f.write(d.tobytes())


def make_pool(root: Path, episodes: list[tuple[str, int, int, float]], reward: RewardConfig = RewardConfig()) -> Path:
    """A pool directory from (scenario, acting teacher index (-1: the agent), epochs, utilisation)
    episodes."""
    runs = []
    for i, (scenario, acting, epochs, util) in enumerate(episodes):
        rec = root / "records" / f"r{i}.rec"
        rec.parent.mkdir(parents=True, exist_ok=True)
        write_record_file(rec, epochs=epochs, acting=acting, seed=100 + i, util=util)
        table = record_to_table(rec, run_id=f"r{i}", scenario=scenario, seed=i + 1,
                                params={"record_actor": "agent"} if acting < 0 else {"teacher": TEACHERS[acting]},
                                reward=reward)
        write_part(table, root / PARTS_DIR / f"r{i}.parquet")
        runs.append({"run_id": f"r{i}", "record_sha256": f"sha{i}", "part": f"{PARTS_DIR}/r{i}.parquet",
                     "epochs": epochs})
    (root / MANIFEST).write_text(json.dumps({"format": POOL_FORMAT, "version": POOL_VERSION, "name": "synthetic",
                                             "teachers": TEACHERS, "reward": reward_dict(reward), "runs": runs}))
    return root


# ------------------------------------------------------------------------ reward


def comps(util: float = 0.9, l_ms: float = 1.0, c_ms: float = 10.0, loss: float = 0.001) -> np.ndarray:
    return np.array([util, l_ms * 1e-3, c_ms * 1e-3, loss])


def test_reward_sign() -> None:
    cfg = RewardConfig()
    base = epoch_reward(comps(), cfg)
    assert epoch_reward(comps(l_ms=0.5), cfg) > base  # less L delay, more reward
    assert epoch_reward(comps(c_ms=5.0), cfg) > base  # less C delay, more reward
    assert epoch_reward(comps(util=1.0), cfg) > base  # more utilisation, more reward
    assert epoch_reward(comps(loss=0.01), cfg) < base  # more loss, less reward
    assert epoch_reward(comps(l_ms=5, c_ms=50), cfg) < base  # higher delay is never rewarded
    # The collect config refuses weights that would reward delay or loss.
    for key in ("l_delay_per_ms", "c_delay_per_ms", "loss", "utilization"):
        with pytest.raises(ConfigError, match="weights must be >= 0"):
            parse_collect_config({"scenarios": ["dumbbell"], "reward": {key: -1.0}})
    with pytest.raises(ConfigError, match="reward"):
        parse_train_config({"pool": "p", "reward": {"c_delay_per_ms": -0.1}})


def test_collect_config_checks_epsilon_and_owned_params() -> None:
    with pytest.raises(ConfigError, match="epsilon"):
        parse_collect_config({"scenarios": ["dumbbell"], "epsilon": 1.5})
    cfg = parse_collect_config({"scenarios": ["dumbbell"], "epsilon": 0.25})
    assert cfg.sweep_doc()["params"]["explore_epsilon"] == 0.25
    with pytest.raises(ConfigError, match="set by collect"):
        parse_collect_config({"scenarios": ["dumbbell"], "params": {"record_path": "x"}})


def test_collect_settings_from_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("base.yaml").write_text("settings:\n  - {scenario: dumbbell, params: {rtt: 10ms}}\n"
                                 "  - {scenario: wifi, params: {}}\n")
    cfg = parse_collect_config({"teachers": ["dualpi2"], "seeds": [3], "settings_from": "base.yaml"})
    assert [(s.scenario, s.params) for s in cfg.settings] == [("dumbbell", {"rtt": "10ms"}), ("wifi", {})]
    Path("grid.yaml").write_text("scenarios: [dumbbell]\n")
    for doc, needle in (({"settings_from": "nope.yaml"}, "settings_from: no collect file at nope.yaml"),
                        ({"settings_from": "grid.yaml"}, "grid.yaml has no settings list"),
                        ({"settings_from": "base.yaml", "settings": []}, "not both")):
        with pytest.raises(ConfigError, match=needle):
            parse_collect_config(doc)


@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_epsilon_exploration_is_applied_and_logged(tmp_path: Path, epsilon: float) -> None:
    import aqm_llm

    rec = tmp_path / "x.rec"
    aqm_llm.run("dumbbell", qdisc="l4s-llm", seed=3, output_dir=tmp_path,
                params={"duration": "3s", "warmup": "0.5s", "l4s_flows": 2, "classic_flows": 2,
                        "llm_mode": "record", "record_actor": "teacher",
                        "teacher": "dualpi2", "record_path": str(rec), "explore_epsilon": epsilon})
    meta, d = read_records(rec)
    acting = list(meta["teachers"]).index("dualpi2")
    pc = d["request"]["packet_count"]
    explored = (d["h"]["flags"] & 4) != 0
    assert explored.all() if epsilon > 0 else not explored.any()
    changed = total = 0
    for i in range(len(d)):
        own = d["teacher"][i, acting]["actions"]["action"][:pc[i]]
        applied = (d["agent_reply"][i] if explored[i] else d["teacher"][i, acting])["actions"]["action"][:pc[i]]
        changed += int((own != applied).sum())
        total += int(pc[i])
    assert total > 150
    # A replaced action differs from the teacher's own with probability 2/3.
    assert changed / total == pytest.approx(epsilon * 2 / 3, abs=0.08)


# ------------------------------------------------------------------------ return-to-go


def test_return_to_go_on_a_known_sequence() -> None:
    cfg = RewardConfig(utilization=1.0, l_delay_per_ms=0.0, c_delay_per_ms=0.0, loss=0.0)
    components = np.array([[1, 0, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0], [4, 0, 0, 0]], float)
    # r = 1, 2, 3, 4; G = 10; the RTG after each epoch's reward: 9, 7, 4, 0.
    assert returns_after(components, cfg).tolist() == [9.0, 7.0, 4.0, 0.0]
    tokens = returns_to_go(components, replace(cfg, target_return=10.0, rtg_scale=10.0))
    np.testing.assert_allclose(tokens, [0.9, 0.7, 0.4, 0.0])
    online = ReturnToGo(replace(cfg, target_return=10.0, rtg_scale=10.0))
    np.testing.assert_allclose([online.update(row) for row in components], tokens)
    # With delays: r_t = util - 0.1 * L_ms - 0.02 * C_ms - 10 * loss.
    cfg = RewardConfig()
    components = np.array([comps(1.0, 1.0, 10.0, 0.0), comps(0.5, 2.0, 0.0, 0.01)])
    r = [1.0 - 0.1 - 0.2, 0.5 - 0.2 - 0.1]
    np.testing.assert_allclose(returns_after(components, cfg), [r[1], 0.0], atol=1e-12)


def test_per_epoch_return_to_go_is_standardised_and_held_online(tmp_path: Path) -> None:
    cfg = RewardConfig(utilization=1.0, l_delay_per_ms=0.0, c_delay_per_ms=0.0, loss=0.0)
    pool = make_pool(tmp_path, [("dumbbell", 0, 10, 0.9), ("dumbbell", 1, 10, 0.5)], reward=cfg)
    table, _ = load_pool(pool)
    data = D.build_pool_data(table, TEACHERS, TokenLayout.fit(packets=4, max_tokens=32), cfg)
    # Hindsight: the mean reward per epoch still to come (the last epoch has none: divided by 1).
    values = D.rtg_values(data, "per_epoch")
    ep = data.episodes[0]
    rows = np.arange(ep.start, ep.start + ep.epochs)
    remaining = np.maximum(ep.epochs - 1 - np.arange(ep.epochs), 1)
    np.testing.assert_allclose(values[rows], data.rtg_raw[rows] / remaining)
    # Unlike the sum, it does not grow with the run length: episode 0's values sit near its
    # per-epoch utilisation.
    assert np.all(np.abs(values[rows][:-1] - 0.9) < 0.2)
    tokens = D.rtg_tokens(data, RewardConfig(rtg_mode="per_epoch", rtg_scale=0.25, rtg_offset=0.7))
    np.testing.assert_allclose(tokens, (values - 0.7) / 0.25, rtol=1e-6)
    # Online the agent holds the target per-epoch return, whatever rewards come in.
    online = ReturnToGo(replace(cfg, rtg_mode="per_epoch", target_return=0.9, rtg_offset=0.7,
                                rtg_scale=0.25))
    assert [online.update(comps(u, 0.0, 0.0, 0.0)) for u in (0.1, 0.9, 0.5)] == pytest.approx([0.8] * 3)
    with pytest.raises(ValueError, match="bad value 'mean' for rtg_mode"):
        RewardConfig(rtg_mode="mean")


def test_robust_return_to_go_spreads_the_middle_of_the_pool_and_saturates_outliers(tmp_path: Path) -> None:
    """rtg_norm robust: median and interquartile range of the per-epoch hindsight values, tokens
    clipped; one collapsed episode no longer squeezes the others together, and the agent online
    computes the token training saw."""
    cfg = RewardConfig(utilization=1.0, l_delay_per_ms=0.0, c_delay_per_ms=0.0, loss=0.0)
    # Three ordinary episodes (0.5, 0.7, 0.9 per epoch) and an outlier at -99 per epoch.
    pool = make_pool(tmp_path, [("dumbbell", 0, 10, 0.5), ("dumbbell", 1, 10, 0.7), ("dumbbell", 2, 10, 0.9),
                                ("dumbbell", 0, 10, -99.0)], reward=cfg)
    table, _ = load_pool(pool)
    data = D.build_pool_data(table, TEACHERS, TokenLayout.fit(packets=4, max_tokens=32), cfg)
    values = D.rtg_values(data, "per_epoch")[data.valid]
    offset, scale = D.rtg_normalisation(data, "per_epoch", 0.9, "robust")
    q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    assert (offset, scale) == pytest.approx((q50, q75 - q25))
    robust = replace(cfg, rtg_mode="per_epoch", rtg_norm="robust", rtg_offset=offset, rtg_scale=scale)
    tokens = D.rtg_tokens(data, robust)
    assert tokens.min() == pytest.approx(-ROBUST_TOKEN_CLIP) and tokens.max() <= ROBUST_TOKEN_CLIP
    # Asking for 0.5 or 0.9 per epoch: over half a unit apart under robust, 20x closer standardised.
    standard_offset, standard_scale = D.rtg_normalisation(data, "per_epoch", 0.9)
    standard = replace(cfg, rtg_mode="per_epoch", rtg_offset=standard_offset, rtg_scale=standard_scale)
    gap = {name: abs(float(rtg_token(0.9, c) - rtg_token(0.5, c))) for name, c in
           (("robust", robust), ("standard", standard))}
    assert gap["robust"] > 0.5 > 20 * gap["standard"]
    online = ReturnToGo(replace(robust, target_return=0.7))
    assert online.update(comps(0.2, 0.0, 0.0, 0.0)) == pytest.approx(float(rtg_token(0.7, robust)))
    with pytest.raises(ValueError, match="bad value 'iqr' for rtg_norm"):
        RewardConfig(rtg_norm="iqr")


def test_per_epoch_training_stores_a_standardised_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aqm_llm.agent.policy import LlmPolicy
    from aqm_llm.training.trainer import set_target_return, train

    pool = make_pool(tmp_path / "pool", [("dumbbell", 0, 10, 0.9), ("dumbbell", 1, 10, 0.7)])
    dt = train(tiny_config(pool, tmp_path / "dt", rtg_mode="per_epoch", optim={"steps": 2, "batch_size": 4}),
               resume=False, progress=False)
    reward = LlmPolicy.load(dt.checkpoint).config.reward
    meta = json.loads((dt.checkpoint / "config.json").read_text())["metadata"]["training"]
    assert reward.rtg_mode == "per_epoch" and reward.target_return == pytest.approx(
        meta["targets"]["*"]["per_epoch"])
    assert reward.rtg_scale > 0 and meta["rtg_offset"] == pytest.approx(reward.rtg_offset)
    # A per-epoch target is a reward per epoch, whatever the evaluation's length.
    assert set_target_return(dt.checkpoint, eval_epochs=100) == pytest.approx(meta["targets"]["*"]["per_epoch"])
    with pytest.raises(ConfigError, match="rtg_mode: bad value 'avg'"):
        tiny_config(pool, tmp_path / "x", rtg_mode="avg")
    with pytest.raises(ConfigError, match="rtg_norm: bad value 'iqr'"):
        tiny_config(pool, tmp_path / "x", rtg_norm="iqr")
    capsys.readouterr()
    robust = train(tiny_config(pool, tmp_path / "robust", rtg_mode="per_epoch", rtg_norm="robust",
                               optim={"steps": 2, "batch_size": 4}), resume=False, progress=True)
    assert LlmPolicy.load(robust.checkpoint).config.reward.rtg_norm == "robust"
    # Off a terminal the progress is plain lines, the last at the final step; no bar.
    err = capsys.readouterr().err
    assert "step 2/2, loss " in err and "min to go" in err and "\r" not in err


def test_pool_rows_match_the_record_and_the_online_policy_inputs(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, [("dumbbell", 0, 30, 0.9), ("dumbbell", 2, 20, 0.5)])
    table, manifest = load_pool(pool)
    assert table.num_rows == 50 and manifest["teachers"] == TEACHERS
    meta, d = read_records(pool / "records" / "r0.rec")
    df = table.to_pandas()
    row = df.iloc[7]
    n = int(d["request"]["packet_count"][7])
    assert row["packet_count"] == n and row["actor_name"] == "dualpi2"
    assert list(row["action"]) == list(d["teacher"]["actions"]["action"][7, 0, :n])
    assert [list(a) for a in row["teacher_actions"]] == [list(d["teacher"]["actions"]["action"][7, t, :n])
                                                         for t in range(3)]
    assert bytes(row["request"]) == d["request"][7].tobytes()
    ep0 = df[df.run_id == "r0"]
    np.testing.assert_allclose(ep0["return_to_go"], ep0["reward"].sum() - np.cumsum(ep0["reward"]))

    layout = TokenLayout.fit(packets=8, max_tokens=48)  # H = (48 - 20) // 3 = 9 < episode lengths
    data = D.build_pool_data(table, TEACHERS, layout, RewardConfig())
    scale = 37.0
    rtg = D.rtg_tokens(data, RewardConfig(rtg_scale=scale))
    # Replay each episode the way LlmPolicy.decide builds its inputs, with the logged actions.
    for ep in data.episodes:
        _, recs = read_records(pool / "records" / f"{ep.run_id}.rec")
        history = History(layout.history)
        online = ReturnToGo(replace(RewardConfig(), target_return=ep.ret, rtg_scale=scale))
        expected = []
        for t in range(ep.epochs):
            request = as_request(recs["request"][t:t + 1].reshape(()))
            feats = F.encode_request(request)
            token = online.update(request.rewards)
            expected.append(build_inputs(feats, history, token, layout))
            rep = recs["teacher"][t, recs["h"]["actor"][t]]
            acts = np.array(rep["actions"]["action"][:feats.packet_count], np.uint8)
            probs = (float(rep["p_l_mark"]), float(rep["p_c_drop"]), float(rep["p_c_mark"]))
            history.append(EpochRecord(rtg=token, state=F.state_summary(feats),
                                       action=F.action_summary(acts, feats.traffic_class, probs)))
        got = D.batch_arrays(data, np.arange(ep.start, ep.start + ep.epochs), rtg)
        for name in got:
            want = np.stack([getattr(e, name) for e in expected])
            np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-6, err_msg=name)


def test_best_teacher_and_target_return_rules(tmp_path: Path) -> None:
    # dumbbell: dualpi2 (util 0.9) beats codel-like (util 0.2); wifi: only pie-step acted.
    pool = make_pool(tmp_path, [("dumbbell", 0, 10, 0.9), ("dumbbell", 0, 10, 0.8),
                                ("dumbbell", 2, 10, 0.2), ("wifi", 1, 12, 0.6)])
    table, _ = load_pool(pool)
    data = D.build_pool_data(table, TEACHERS, TokenLayout.fit(packets=4, max_tokens=32), RewardConfig())
    best = D.best_teachers(data)
    assert best["dumbbell"]["best"] == "dualpi2" and best["dumbbell"]["index"] == 0
    assert best["wifi"]["best"] == "pie-step"
    D.set_distillation_targets(data, best)
    e = data.episodes[2]  # codel-like acted; the distillation target is dualpi2's logged action
    rows = slice(e.start, e.start + e.epochs)
    np.testing.assert_array_equal(data.dist_act[rows], data.teacher_act[rows, 0])
    assert not np.array_equal(data.act[rows], data.dist_act[rows])
    targets = D.target_returns(data, 0.9)
    per_epoch = [ep.per_epoch for ep in data.episodes[:3]]
    assert targets["dumbbell"]["epochs"] == 10
    assert targets["dumbbell"]["target_return"] == pytest.approx(np.quantile(per_epoch, 0.9) * 10)
    assert targets["wifi"]["target_return"] == pytest.approx(data.episodes[3].ret)
    assert targets[D.ALL_FAMILIES]["episodes"] == 4
    assert D.target_returns(data, 0.5, eval_epochs=100)["wifi"]["target_return"] == pytest.approx(
        data.episodes[3].per_epoch * 100)


def test_picks_are_screened_against_dualpi2_by_the_evaluation_target(tmp_path: Path) -> None:
    from aqm_llm.training.picks import picks_against_reference

    # dumbbell: codel-like scores best; wifi: only pie-step acted (no reference run there).
    pool = make_pool(tmp_path, [("dumbbell", 0, 10, 0.5), ("dumbbell", 2, 10, 0.9), ("wifi", 1, 10, 0.6)])
    table, manifest = load_pool(pool)
    data = D.build_pool_data(table, TEACHERS, TokenLayout.fit(packets=4, max_tokens=32), RewardConfig())
    best = D.best_teachers(data)
    assert best["dumbbell"]["best"] == "codel-like"
    summary = {"r0": {"l4s_sojourn_p99_ms": 2.0, "classic_sojourn_p99_ms": 20.0, "utilisation": 0.90, "loss_rate": 0.001},
               "r1": {"l4s_sojourn_p99_ms": 1.5, "classic_sojourn_p99_ms": 21.0, "utilisation": 0.89, "loss_rate": 0.0011}}
    manifest["runs"] = [{**run, "metrics": summary.get(run["run_id"], {})} for run in manifest["runs"]]
    picks = picks_against_reference(data, best, [manifest])
    assert picks["families"] == 1 and picks["met"] == 1  # within 1.1x, 0.98x and +0.01 points
    dumbbell = picks["per_family"]["dumbbell"]
    assert dumbbell["pick"] == "codel-like" and dumbbell["metrics"]["loss_pct"] == pytest.approx(0.11)
    # 0.02 points more loss than dualpi2 breaks the loss term alone.
    summary["r1"]["loss_rate"] = 0.0012
    manifest["runs"][1]["metrics"] = summary["r1"]
    terms = picks_against_reference(data, best, [manifest])["per_family"]["dumbbell"]["terms"]
    assert terms == {"l4s_p99_ms": True, "classic_p99_ms": True, "util": True, "loss_pct": False}
    # A run without an L4S packet has no L4S p99: that term is unknown, and so is the verdict.
    del summary["r1"]["l4s_sojourn_p99_ms"]
    unknown = picks_against_reference(data, best, [manifest])
    assert unknown["per_family"]["dumbbell"]["met"] is None and unknown["met"] == 0


def test_teachers_ranked_after_the_warm_up(tmp_path: Path) -> None:
    # dualpi2 starts fast and settles low; codel-like starts slow and settles high. Over the
    # whole run dualpi2 scores more; from the warm-up (80 ms: epochs 4..9, at 16 ms each) on,
    # codel-like does.
    runs = []
    for i, (acting, early, late) in enumerate(((0, 1.0, 0.5), (2, 0.0, 0.6))):
        rec = tmp_path / f"r{i}.rec"
        write_record_file(rec, epochs=10, acting=acting, seed=7 + i, util=early, late_util=(4, late))
        runs.append(record_to_table(rec, run_id=f"r{i}", scenario="dumbbell", seed=1,
                                    params={"teacher": TEACHERS[acting], "warmup": "80ms"}, reward=RewardConfig()))
    import pyarrow as pa

    data = D.build_pool_data(pa.concat_tables(runs), TEACHERS, TokenLayout.fit(packets=4, max_tokens=32),
                             RewardConfig(), family_keys=(D.SETTING,))
    assert D.best_teachers(data)[data.episodes[0].family]["best"] == "dualpi2"
    late = D.best_teachers(data, after_warmup=True)[data.episodes[0].family]
    assert late["best"] == "codel-like"
    rewards = [data.rewards[ep.start + 4:ep.start + ep.epochs].mean() for ep in data.episodes]
    assert late["mean_return_per_epoch"]["codel-like"] == pytest.approx(rewards[1])
    assert parse_train_config({"pool": "p", "rank_after_warmup": True}).identity()["rank_after_warmup"] is True
    assert "rank_after_warmup" not in parse_train_config({"pool": "p"}).identity()  # older identities stay
    with pytest.raises(ConfigError, match="rank_after_warmup"):
        parse_train_config({"pool": "p", "rank_after_warmup": "yes"})


def test_the_epoch_first_layout_is_a_model_setting_and_older_identities_stay() -> None:
    first = parse_train_config({"pool": "p", "model": {"epoch_sees_packets": False}})
    layout = first.model.layout()
    assert not layout.epoch_sees_packets and layout.epoch_index < layout.packet_slice.start
    assert first.identity()["model"]["epoch_sees_packets"] is False
    assert "epoch_sees_packets" not in parse_train_config({"pool": "p"}).identity()["model"]
    with pytest.raises(ConfigError, match="model.epoch_sees_packets: bad value '0': expected true or false"):
        parse_train_config({"pool": "p", "model": {"epoch_sees_packets": 0}})
    with pytest.raises(ConfigError, match="mlp backbone pools every token"):
        parse_train_config({"pool": "p", "model": {"backbone": "mlp", "epoch_sees_packets": False}})
    with pytest.raises(ConfigError, match="--mlp: model.epoch_sees_packets is false: the mlp backbone pools"):
        first.with_overrides(mlp=True)


def test_an_acting_policy_is_labelled_by_the_best_teacher_and_never_chosen(tmp_path: Path) -> None:
    # DAgger: the policy acted (and scored best); its states take the best teacher's decisions.
    pool = make_pool(tmp_path, [("dumbbell", 0, 10, 0.9), ("dumbbell", 2, 10, 0.2), ("dumbbell", -1, 10, 0.99)])
    table, _ = load_pool(pool)
    data = D.build_pool_data(table, TEACHERS, TokenLayout.fit(packets=4, max_tokens=32), RewardConfig(),
                             family_keys=(D.SETTING,))
    assert len({ep.family for ep in data.episodes}) == 1  # the acting policy's run is the same setting
    best = D.best_teachers(data)
    (info,) = best.values()
    assert info["best"] == "dualpi2" and "agent" in info["mean_return_per_epoch"]
    D.set_distillation_targets(data, best)
    e = data.episodes[2]
    assert e.acting == "agent"
    rows = slice(e.start, e.start + e.epochs)
    assert data.dist_valid[rows].all()
    np.testing.assert_array_equal(data.dist_act[rows], data.teacher_act[rows, 0])
    np.testing.assert_array_equal(data.dist_probs[rows], data.teacher_probs[rows, 0])


def test_collect_policy_runs_act_in_each_setting_next_to_the_teachers() -> None:
    doc = {"teachers": ["dualpi2"], "policy": {"checkpoint": "models/l4s-llm", "threads": 1},
           "settings": [{"scenario": "dumbbell", "params": {"rtt": "10ms"}},
                        {"scenario": "wifi", "params": {}}]}
    cfg = parse_collect_config(doc)
    sweep = cfg.sweep_doc()
    actors = sorted((i["scenario"], i["params"].get("record_actor", "teacher")) for i in sweep["include"])
    assert actors == [("dumbbell", "agent"), ("dumbbell", "teacher"), ("wifi", "agent"), ("wifi", "teacher")]
    assert sweep["agent"]["checkpoint"] == "models/l4s-llm"
    assert parse_collect_config({**doc, "teachers": []}).teachers == ()
    with pytest.raises(ConfigError, match="policy: give settings"):
        parse_collect_config({"scenarios": ["dumbbell"], "policy": {"checkpoint": "models/l4s-llm"}})
    with pytest.raises(ConfigError, match="agent"):
        parse_collect_config({**doc, "policy": {"checkpoint": "models/nope"}})


# ------------------------------------------------------------------------ resume


def tiny_config(pool: Path, out: Path, **over: object) -> object:
    doc = {"name": "tiny", "pool": str(pool), "output": str(out), "seed": 3, "device": "cpu",
           "model": {"backbone": "random:llama", "lora": {"r": 4, "alpha": 8}, "packets": 8, "max_tokens": 48},
           "optim": {"steps": 6, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2},
           "log_every": 2, "checkpoint_every": 2, "validation": {"fraction": 0.0}}
    doc.update(over)
    return parse_train_config(doc)


@pytest.mark.parametrize("backbone", ["random:llama", "mlp"])
def test_resume_gives_the_same_weights(tmp_path: Path, backbone: str) -> None:
    import torch
    from safetensors.torch import load_file

    from aqm_llm.training.trainer import train

    pool = make_pool(tmp_path / "pool", [("dumbbell", 0, 12, 0.9), ("dumbbell", 1, 12, 0.7)])
    model = {"backbone": backbone, "lora": {"r": 4, "alpha": 8}, "packets": 8, "max_tokens": 48}
    whole = train(tiny_config(pool, tmp_path / "a", model=model), resume=False, progress=False)
    part = train(tiny_config(pool, tmp_path / "b", model=model), resume=False, progress=False, stop_after=3)
    assert not part.finished and part.checkpoint is None and (tmp_path / "b" / "last").is_dir()
    rest = train(tiny_config(pool, tmp_path / "b", model=model), progress=False)
    assert rest.finished and rest.step == 6
    files = ["policy.safetensors"] + (["adapter/adapter_model.safetensors"] if backbone != "mlp" else [])
    for f in files:
        a, b = load_file(str(whole.checkpoint / f)), load_file(str(rest.checkpoint / f))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{f}:{k} differs after resuming"
    # Training moved the weights, and a changed config refuses the old state.
    first = [r["loss"] for r in whole.log if r["phase"] == "train"]
    assert len(first) == 3 and all(np.isfinite(first))
    with pytest.raises(ConfigError, match="different training config"):
        train(tiny_config(pool, tmp_path / "b", model=model, seed=4), progress=False)


def test_behaviour_cloning_checkpoint_feeds_zero_rtg(tmp_path: Path) -> None:
    from aqm_llm.agent.policy import LlmPolicy
    from aqm_llm.training.trainer import set_target_return, train

    pool = make_pool(tmp_path / "pool", [("dumbbell", 0, 10, 0.9), ("dumbbell", 1, 10, 0.7)])
    bc = train(tiny_config(pool, tmp_path / "bc", return_conditioning=False,
                           optim={"steps": 2, "batch_size": 4}), resume=False, progress=False)
    policy = LlmPolicy.load(bc.checkpoint)
    assert abs(policy._run.rtg.update(np.array([1.0, 0.01, 0.05, 0.0]))) < 1e-20
    with pytest.raises(ConfigError, match="without return conditioning"):
        set_target_return(bc.checkpoint, value=1.0)
    dt = train(tiny_config(pool, tmp_path / "dt", optim={"steps": 2, "batch_size": 4}), resume=False,
               progress=False)
    cfg = json.loads((dt.checkpoint / "config.json").read_text())
    meta = cfg["metadata"]["training"]
    assert cfg["policy"]["reward"]["target_return"] == pytest.approx(meta["targets"]["*"]["target_return"])
    new = set_target_return(dt.checkpoint, eval_epochs=100)
    assert new == pytest.approx(meta["targets"]["*"]["per_epoch"] * 100)
    assert LlmPolicy.load(dt.checkpoint).config.reward.target_return == pytest.approx(new)


def test_backbone_sha256_names_the_weight_file(tmp_path) -> None:
    import hashlib

    from aqm_llm.agent.backbone import backbone_sha256

    gguf = tmp_path / "model.Q4.gguf"
    gguf.write_bytes(b"weights" * 1000)
    assert backbone_sha256(str(gguf)) == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert backbone_sha256(str(tmp_path)) == backbone_sha256(str(gguf))  # a directory holding one GGUF
    assert backbone_sha256("mlp") is None and backbone_sha256("random:llama") is None


def test_a_checkpoint_refuses_other_backbone_weights(tmp_path) -> None:
    from aqm_llm.agent.backbone import backbone_sha256
    from aqm_llm.agent.policy import check_backbone_weights

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"base weights")
    doc = {"metadata": {"training": {"backbone_sha256": backbone_sha256(str(gguf))}}}
    check_backbone_weights(doc, str(gguf), tmp_path)  # the same weights: accepted
    gguf.write_bytes(b"other weights")
    with pytest.raises(ValueError, match="trained on backbone weights sha256"):
        check_backbone_weights(doc, str(gguf), tmp_path)
    check_backbone_weights({"metadata": {}}, str(gguf), tmp_path)  # older checkpoints: nothing to check


def test_imitation_of_one_teacher_targets_its_shadow_decisions(tmp_path: Path) -> None:
    from aqm_llm.training.trainer import prepare

    pool = make_pool(tmp_path / "pool", [("dumbbell", 0, 10, 0.9), ("dumbbell", 1, 10, 0.7)])
    cfg = tiny_config(pool, tmp_path / "im", distill_teacher=TEACHERS[2], return_conditioning=False)
    prep = prepare(cfg)
    data = prep["data"]
    # Every state, whoever acted, targets teacher 2's logged shadow decision, in every loss term.
    assert prep["summary"]["best_teachers"]["dumbbell"]["best"] == TEACHERS[2]
    np.testing.assert_array_equal(data.act, data.teacher_act[:, 2].astype(data.act.dtype))
    np.testing.assert_allclose(data.probs, data.teacher_probs[:, 2])
    assert data.valid.all() and np.array_equal(data.act, data.dist_act)
    with pytest.raises(ConfigError, match="distill_teacher: 'nosuch' is not a teacher of the pool"):
        prepare(tiny_config(pool, tmp_path / "x", distill_teacher="nosuch"))


def test_collect_settings_list_runs_each_setting_with_every_teacher() -> None:
    from aqm_llm.training.collector import plan_runs

    doc = {"teachers": ["dualpi2", "pie-step"], "seeds": [1], "params": {"duration": "2s", "warmup": "1s"},
           "settings": [{"scenario": "dumbbell", "params": {"rtt": "5ms"}},
                        {"scenario": "satellite", "params": {"orbit": "geo"}}]}
    runs = plan_runs(parse_collect_config(doc))
    got = sorted((r.spec.scenario, r.spec.params.get("rtt", r.spec.params.get("orbit")), r.spec.params["teacher"])
                 for r in runs)
    assert got == [("dumbbell", "5ms", "dualpi2"), ("dumbbell", "5ms", "pie-step"),
                   ("satellite", "geo", "dualpi2"), ("satellite", "geo", "pie-step")]
    assert all(r.spec.params["llm_mode"] == "record" for r in runs)
    with pytest.raises(ConfigError, match="nothing to collect"):
        parse_collect_config({"seeds": [1]})
    with pytest.raises(ConfigError, match=r"settings\[0\].params.teacher: set by collect"):
        parse_collect_config({"settings": [{"scenario": "dumbbell", "params": {"teacher": "x"}}]})
    with pytest.raises(ConfigError, match=r"settings\[0\]"):
        parse_collect_config({"settings": [{"scenario": "dumbbell", "rtt": "5ms"}]})


def test_setting_family_groups_a_setting_across_acting_teachers() -> None:
    from aqm_llm.training.dataset import SETTING, family_of

    a = family_of("dumbbell", {"rtt": "5ms", "teacher": "dualpi2", "llm_mode": "record"}, [SETTING])
    b = family_of("dumbbell", {"rtt": "5ms", "teacher": "pie-step@2", "llm_mode": "record"}, [SETTING])
    c = family_of("dumbbell", {"rtt": "10ms", "teacher": "dualpi2", "llm_mode": "record"}, [SETTING])
    assert a == b != c


def test_pool_coverage_summarises_families_ranges_and_cost() -> None:
    from aqm_llm.training.collector import coverage

    entries = [
        {"scenario": "dumbbell", "record_bytes": 10, "wall_s": 2.0,
         "metrics": {"capacity_mbps": 10.0, "base_rtt_ms": 5.0},
         "traffic": {"l4s_flows": 1, "classic_flows": 1, "short_flows_per_s": 0, "udp_rate": "0bps"}},
        {"scenario": "satellite", "record_bytes": 5, "wall_s": 3.0,
         "metrics": {"capacity_mbps": 50.0, "base_rtt_ms": 600.0},
         "traffic": {"l4s_flows": 2, "classic_flows": 8, "short_flows_per_s": 5, "udp_rate": "5Mbps"}},
    ]
    c = coverage(entries)
    assert c["runs_per_family"] == {"dumbbell": 1, "satellite": 1}
    assert c["capacity_mbps"] == [10.0, 50.0] and c["base_rtt_ms"] == [5.0, 600.0]
    assert c["flows_per_class"] == [1.0, 8.0]
    assert c["runs_with_short_flows"] == 1 and c["runs_with_udp"] == 1
    assert c["record_bytes"] == 15 and c["collection_wall_s"] == 5.0


def test_bench_rtg_measures_how_far_the_target_moves_decisions() -> None:
    """aqm-llm bench rtg's measurement: nothing moves at the configured target, a far target moves
    a random-weight policy's decisions, and each row carries the token the policy saw."""
    import torch

    from aqm_llm.agent.policy import LlmPolicy, PolicyConfig
    from aqm_llm.agent.synthetic import random_request
    from aqm_llm.bench.rtg import measure

    cfg = PolicyConfig(backbone="random:llama",
                       reward=RewardConfig(rtg_mode="per_epoch", target_return=0.5, rtg_scale=0.1))
    agent = LlmPolicy(cfg)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():  # a fresh head sits at its initial biases (probability 0, forward)
        for name, p in agent.model.named_parameters():
            if name.startswith("head."):
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    rng = np.random.default_rng(0)
    requests = [random_request(rng, packets=8, epoch=e) for e in range(12)]
    rows = {r.label: r for r in measure(agent, requests, {"same": 0.5, "far": 50.0})}
    assert (rows["same"].dlog_l, rows["same"].dlog_c, rows["same"].actions_changed) == (0.0, 0.0, 0.0)
    assert rows["far"].token == pytest.approx(500.0)
    assert max(rows["far"].dlog_l, rows["far"].dlog_c, rows["far"].actions_changed) > 0.0


def test_a_training_config_carries_the_band_form_and_queue_disc_settings_into_the_checkpoint() -> None:
    from aqm_llm.agent.policy import PolicyConfig
    from aqm_llm.training.config import parse_train_config
    from aqm_llm.training.trainer import policy_config

    base = {"pool": "pools/x", "output": "runs/x"}
    cfg = parse_train_config({**base, "p_prime_band": "ramp:2", "queue_disc": {"llm_l_sojourn_limit": "20ms"}})
    assert (cfg.p_prime_band, cfg.p_prime_form, cfg.queue_disc) == (2.0, "ramp", {"llm_l_sojourn_limit": "20ms"})
    # decision-time settings: the same training serves any of them (resume accepts it)
    assert cfg.identity() == parse_train_config(base).identity()
    policy = policy_config(cfg, RewardConfig())
    assert PolicyConfig.from_dict(policy.to_dict()) == policy
    assert (policy.p_prime_form, dict(policy.queue_disc)) == ("ramp", {"llm_l_sojourn_limit": "20ms"})
    assert parse_train_config({**base, "p_prime_band": 2}).p_prime_form == "independent"
    for bad, match in (({"p_prime_band": "ramp:0.5"}, "p_prime_band: bad p' band 'ramp:0.5'"),
                       ({"queue_disc": {"rtt": "10ms"}}, "queue_disc: unknown key 'rtt'"),
                       ({"queue_disc": {"llm_l_sojourn_limit": None}}, "queue_disc.llm_l_sojourn_limit")):
        with pytest.raises(ConfigError, match=re.escape(match)):
            parse_train_config({**base, **bad})
    with pytest.raises(ValueError, match="queue_disc: unknown setting 'rtt'"):
        PolicyConfig(queue_disc={"rtt": "10ms"})
