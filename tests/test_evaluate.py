"""`aqm-llm evaluate`: evaluation files, the closed-loop runs through the sweep runner
(resumable), the tables and the target verdict. A tiny random-weight policy stands in for the
shipped checkpoint; the product path is the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aqm_llm import ConfigError, cli
from aqm_llm.evaluate import evaluate, load_eval_config, parse_eval_config
from aqm_llm.evaluate.table import (RUNG_METRICS, RungCheck, draw_standings, family_verdicts, median_and_range,
                                    resolutions, rung_checks, verdicts)
from aqm_llm.report.stats import MeanCI

TINY = "random:llama"


def _save_policy(directory: Path, init_seed: int) -> Path:
    from aqm_llm.agent.policy import LlmPolicy, PolicyConfig

    LlmPolicy(PolicyConfig(backbone=TINY, init_seed=init_seed)).save(directory, trained=True)
    return directory


def _doc(ckpt: Path, **extra: object) -> dict:
    doc = {"name": "ev", "seeds": [1, 2], "params": {"duration": "1500ms", "warmup": "500ms"},
           "baselines": ["dualpi2", "fifo"], "reference": "dualpi2",
           "policies": [{"label": "tiny", "checkpoint": str(ckpt)}],
           "agent": {"threads": 1, "backbone": TINY},
           "settings": [{"name": "seen", "scenario": "dumbbell", "split": "training", "params": {"rtt": "10ms"}},
                        {"name": "unseen", "scenario": "dumbbell", "split": "held-out",
                         "params": {"rtt": "30ms", "bottleneck_rate": "30Mbps"}}]}
    doc.update(extra)
    return doc


@pytest.mark.parametrize("change, message", [
    ({"baselines": ["dualpi2", "l4s-llm"]}, "evaluated through `policies`"),
    ({"reference": "pie"}, "reference: 'pie' is not one of the baselines"),
    ({"settings": [{"name": "x", "scenario": "dumbbell", "split": "test"}]}, "bad split 'test'"),
    ({"target": {"policy": "nope"}}, "target.policy: 'nope' is not a series other than the reference"),
    ({"target": {"policy": "dualpi2"}}, "target.policy: 'dualpi2' is not a series other than the reference"),
    ({"baselines": ["dualpi2", {"label": "d2", "qdisc": "dualpi2", "colour": 1}]}, r"baselines\[1\]: unknown key 'colour'"),
    ({"baselines": ["dualpi2", {"label": "d2"}]}, r"baselines\[1\]: 'qdisc' is required"),
    ({"baselines": ["dualpi2", {"label": "d2", "qdisc": "l4s-llm"}]}, "evaluated through `policies`"),
    ({"target": {"utilisation_tolerance": 1.5}}, "bad value '1.5'"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"baselines": ["dualpi2", "tiny"]}, "label 'tiny' is used twice"),
    ({"policies": [{"label": "t", "checkpoint": "c", "target_return": "high"}]},
     r"policies\[0\].target_return: bad value 'high'"),
    ({"policies": [{"label": "t", "checkpoint": "c", "sample": "yes"}]},
     r"policies\[0\].sample: bad value 'yes'"),
    ({"rung": "dualpi2"}, "rung: 'dualpi2' is not a series other than the reference"),
    ({"rung": ["fifo", ""]}, "rung: bad value '': expected a name"),
    ({"rung": 7}, "rung: bad value '7': expected a name or a list of names"),
    ({"target": {"policy": "tiny", "calibration": "tiny"}}, r"target.calibration: 'tiny' is not a series other "
                                                             r"than the reference and the policy \(fifo\)"),
    ({"target": {"calibration": "dualpi2"}}, "target.calibration: 'dualpi2' is not a series"),
    ({"target": {"calibration": ["fifo", "nope"]}}, "target.calibration: 'nope' is not a series"),
    ({"target": {"calibration": ["fifo", 3]}}, "target.calibration: bad value '3': expected a name"),
    ({"target": {"calibration": {"a": 1}}}, "target.calibration: bad value .* expected a name or a non-empty list"),
    ({"target": {"calibration": []}}, r"target.calibration: bad value '\[\]': expected a name or a non-empty list"),
])
def test_bad_evaluation_files_name_the_bad_value(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_eval_config(_doc(tmp_path, **change), source="ev.yaml")


def test_a_policy_row_can_set_parameters_of_its_own(tmp_path: Path) -> None:
    ckpt = _save_policy(tmp_path / "ckpt", 1)
    doc = _doc(ckpt, policies=[{"label": "tiny", "checkpoint": str(ckpt)},
                               {"label": "tiny @16 ms", "checkpoint": str(ckpt), "splits": ["held-out"],
                                "params": {"decision_delay": "16ms"}}])
    runs = parse_eval_config(doc, source="ev.yaml").runs()
    delayed = [r for r in runs if r.label == "tiny @16 ms"]
    assert len(delayed) == 2 and all(r.setting.name == "unseen" for r in delayed)
    assert all(r.run.spec.params["decision_delay"] == "16ms" for r in delayed)
    assert all("decision_delay" not in r.run.spec.params for r in runs if r.label == "tiny")
    assert len({r.run.key() for r in runs}) == len(runs)  # a row of its own, not a rerun of 'tiny'


def test_a_baseline_row_can_set_parameters_and_be_the_target(tmp_path: Path) -> None:
    ckpt = _save_policy(tmp_path / "ckpt", 1)
    other = {"label": "dualpi2, other draws", "qdisc": "dualpi2", "params": {"qdisc_stream": 1}}
    plain = parse_eval_config(_doc(ckpt), source="ev.yaml").runs()
    cfg = parse_eval_config(_doc(ckpt, baselines=["dualpi2", other], target={"policy": other["label"]},
                                 rung=[other["label"]]), source="ev.yaml")
    runs = cfg.runs()
    assert cfg.target.policy == "dualpi2, other draws" and cfg.rung == ("dualpi2, other draws",)
    drawn = [r for r in runs if r.label == "dualpi2, other draws"]
    assert len(drawn) == 4 and all(r.run.spec.qdisc == "dualpi2" for r in drawn)
    assert all(r.run.spec.params["qdisc_stream"] == "1" for r in drawn)
    # A plain baseline's runs keep their keys (databases of earlier evaluations are reused).
    keys = {r.run.key() for r in plain if r.label == "dualpi2"}
    assert keys == {r.run.key() for r in runs if r.label == "dualpi2"}
    assert not keys & {r.run.key() for r in drawn}


def test_a_draw_stream_for_a_queue_disc_without_one_fails_before_running(tmp_path: Path) -> None:
    ckpt = _save_policy(tmp_path / "ckpt", 1)
    fifo = {"label": "fifo, other draws", "qdisc": "fifo", "params": {"qdisc_stream": 1}}
    cfg = parse_eval_config(_doc(ckpt, baselines=["dualpi2", fifo]), source="ev.yaml")
    with pytest.raises(ConfigError, match="bad value '1' for qdisc_stream: it applies to dualpi2 and l4s-llm, not to fifo"):
        cfg.runs()


def test_a_policy_row_can_ask_for_another_target_return(tmp_path: Path) -> None:
    """target_return reaches the agent's command line and makes runs of their own."""
    ckpt = _save_policy(tmp_path / "ckpt", 1)
    doc = _doc(ckpt, policies=[{"label": "tiny", "checkpoint": str(ckpt)},
                               {"label": "tiny asked for 0.8", "checkpoint": str(ckpt), "target_return": 0.8}])
    runs = parse_eval_config(doc, source="ev.yaml").runs()
    asked = [r for r in runs if r.label == "tiny asked for 0.8"]
    assert len(asked) == 4
    cmd = asked[0].run.agent.command(None)
    assert cmd[cmd.index("--target-return") + 1] == "0.8"
    assert "--target-return" not in next(r for r in runs if r.label == "tiny").run.agent.command(None)
    assert len({r.run.key() for r in runs}) == len(runs)
    # What the agent process builds from it (aqm_llm.agent.server: --target-return).
    from aqm_llm.agent.policy import make_llm_policy

    served = make_llm_policy(str(ckpt), TINY, runtime="torch", threads=1, target_return=0.8)
    assert served.config.reward.target_return == 0.8
    assert make_llm_policy(str(ckpt), TINY, runtime="torch", threads=1).config.reward.target_return != 0.8


def test_a_policy_row_can_sample_its_packet_actions(tmp_path: Path) -> None:
    """sample: true reaches the agent's command line (--sample) and makes runs of their own; the
    rows without it keep the keys they had (no sample in their identity)."""
    ckpt = _save_policy(tmp_path / "ckpt", 1)
    plain = parse_eval_config(_doc(ckpt), source="ev.yaml").runs()
    doc = _doc(ckpt, policies=[{"label": "tiny", "checkpoint": str(ckpt)},
                               {"label": "tiny, sampled", "checkpoint": str(ckpt), "sample": True}])
    runs = parse_eval_config(doc, source="ev.yaml").runs()
    sampled = [r for r in runs if r.label == "tiny, sampled"]
    assert len(sampled) == 4 and all("--sample" in r.run.agent.command(None) for r in sampled)
    assert all("--sample" not in r.run.agent.command(None) for r in runs if r.label == "tiny")
    assert len({r.run.key() for r in runs}) == len(runs)
    assert {r.run.key() for r in plain if r.label == "tiny"} == {r.run.key() for r in runs if r.label == "tiny"}
    from aqm_llm.runner import AgentSpec

    with pytest.raises(ConfigError, match="sample applies to the llm agent, not 'aqm_llm.agent.stub:ForwardAllAgent'"):
        AgentSpec(agent="aqm_llm.agent.stub:ForwardAllAgent", sample=True).check()


def test_the_rung_reproduces_only_when_every_paired_interval_contains_zero() -> None:
    from aqm_llm.evaluate.spec import Setting

    setting = Setting("s", "dumbbell", "training")
    inside = MeanCI(0.02, 0.05, 5)
    assert RungCheck("r", setting, (inside,) * len(RUNG_METRICS), True).reproduces is True
    exact = MeanCI(0.0, 0.0, 5)  # identical on every seed (a p99 both hit at the same packet)
    assert RungCheck("r", setting, (exact,) * len(RUNG_METRICS), True).reproduces is True
    outside = MeanCI(-0.06, 0.05, 5)
    assert RungCheck("r", setting, (inside, outside, inside, inside, inside), True).reproduces is False
    one_seed = MeanCI(0.0, float("nan"), 1)
    assert RungCheck("r", setting, (inside, one_seed, inside, inside, inside), True).reproduces is None


def test_median_and_range_of_draw_counts() -> None:
    assert median_and_range([(3, 12), (0, 12), (10, 12)]) == "3 of 12 (0-10)"
    assert median_and_range([(3, 12), (0, 12), (10, 12), (6, 12)]) == "4.5 of 12 (0-10)"
    # different numbers judged (a draw without runs): the denominators' range, not one of them
    assert median_and_range([(2, 11), (5, 12), (0, 0)]) == "3.5 (2-5) of 11-12"
    assert median_and_range([(0, 0)]) == "-"


def test_missing_checkpoint_and_bad_parameter_fail_before_running(tmp_path: Path) -> None:
    cfg = parse_eval_config(_doc(tmp_path / "absent"), source="ev.yaml")
    with pytest.raises(ConfigError, match="no trained checkpoint at .*absent"):
        cfg.runs()
    ckpt = _save_policy(tmp_path / "ckpt", 1)
    bad = _doc(ckpt, settings=[{"name": "s", "scenario": "dumbbell", "split": "training",
                                "params": {"bottleneck_rate": "fast"}}])
    with pytest.raises(ConfigError, match="fast"):
        parse_eval_config(bad, source="ev.yaml").runs()


def test_evaluate_runs_tabulates_and_resumes(tmp_path: Path) -> None:
    ckpt = _save_policy(tmp_path / "ckpt", 1)
    path = tmp_path / "ev.yaml"
    path.write_text(yaml.safe_dump(_doc(ckpt, rung="tiny")))
    db, out = tmp_path / "ev.db", tmp_path / "tables"
    assert cli.main(["evaluate", str(path), "--db", str(db), "-o", str(out), "--no-progress", "--workers", "1"]) == 0
    cfg = load_eval_config(path)
    plan = cfg.runs()
    assert len(plan) == 2 * 3 * 2
    text = (out / "evaluation.md").read_text()
    for name in ("seen (dumbbell, training)", "unseen (dumbbell, held-out)", "Target: tiny against dualpi2"):
        assert name in text
    assert text.count("| 2/2 |") == 6
    rows = (out / "evaluation.csv").read_text().splitlines()
    assert len(rows) == 1 + 6

    # Resumable: everything is in the database, nothing runs again.
    again = evaluate(cfg, db, out, progress=False)
    assert again.summary is not None and (again.summary.skipped, again.summary.ok) == (12, 0)
    stats = again.stats
    tiny = [s for s in stats if s.label == "tiny"]
    assert all(s.stats[-1].n == 2 for s in tiny)  # fallbacks counted for both seeds
    vs = verdicts(cfg, stats)
    assert [v.setting.name for v in vs] == ["seen", "unseen"] and all(v.complete for v in vs)
    for v in vs:
        assert v.p99_ok == (v.p99[0] <= v.p99[1])
        # The paired difference is over both seeds, and its mean is the difference of the means.
        assert v.p99_delta.n == 2 and v.p99_delta.mean == pytest.approx(v.p99[0] - v.p99[1])
        # The target row shows the same loss % as the setting's table (in percent, once).
        ref = next(s for s in stats if s.setting == v.setting and s.label == "dualpi2")
        assert v.loss[1] == ref.stats[4].mean
        assert f"{v.loss[0]:.3f} ({v.loss[1]:.3f})" in again.markdown
    assert set(family_verdicts(vs)) == {"dumbbell"}
    # A calibration row: the same target judged for it, in a column beside the policy's verdict.
    import dataclasses

    from aqm_llm.evaluate.table import markdown

    calibrated = dataclasses.replace(cfg, target=dataclasses.replace(cfg.target, calibration=("fifo",)))
    text = markdown(calibrated, stats, "cmd")
    assert "| met | fifo met |" in text and "the same target for fifo against dualpi2" in text
    for v, c in zip(vs, verdicts(cfg, stats, "fifo")):
        row = next(line for line in text.splitlines() if line.startswith(f"| {v.setting.name} | dumbbell |"))
        assert row.endswith(f"| {'yes' if v.met else '**no**'} | {'yes' if c.met else '**no**'} |")
    assert "| family (held-out settings) | target met | fifo met |" in text
    assert "fifo met" not in again.markdown  # no calibration row in the file: no column
    # Several calibration rows: each cell counts the rows that meet the target. The rows are a copy
    # of the reference's runs ("dualpi2, again": meets the target everywhere) and a copy of the
    # random policy's ("tiny, again": it misses somewhere), so the counts mix two verdicts; with
    # "seen" made a held-out setting of another family, a last family row says how often all
    # families are met at once.
    seen = cfg.settings[0]
    other = dataclasses.replace(seen, scenario="wifi", split="held-out")
    moved = [dataclasses.replace(s, setting=other) if s.setting == seen else s for s in stats]
    moved += [dataclasses.replace(s, label=f"{s.label}, again") for s in moved if s.label in ("tiny", "dualpi2")]
    several = dataclasses.replace(cfg, settings=(other, *cfg.settings[1:]), target=dataclasses.replace(
        cfg.target, calibration=("dualpi2, again", "tiny, again")))
    text = markdown(several, moved, "cmd")
    assert "| met | calibration rows met (of 2) |" in text and "each of the 2 rows named as calibration" in text
    rows = {label: verdicts(several, moved, label) for label in ("dualpi2, again", "tiny, again")}
    assert all(v.met for v in rows["dualpi2, again"]) and not all(v.met for v in rows["tiny, again"])
    assert "| 1 of 2 |" in text
    for a, b in zip(rows["dualpi2, again"], rows["tiny, again"]):
        row = next(line for line in text.splitlines() if line.startswith(f"| {a.setting.name} | "))
        assert row.endswith(f"| {int(bool(a.met)) + int(bool(b.met))} of 2 |")
    families = {label: family_verdicts(vs) for label, vs in rows.items()}
    for family in families["tiny, again"]:
        row = next(line for line in text.splitlines() if line.startswith(f"| {family} | "))
        assert row.endswith(f"| {sum(bool(f[family]) for f in families.values())} of 2 |")
    policy_all = all(v.met for v in verdicts(several, moved))
    both = sum(all(f.values()) for f in families.values())
    assert f"| all 2 | {'yes' if policy_all else '**no**'} | {both} of 2 |" in text
    # What the target can resolve: per term, the worst calibration row against the reference (the
    # reference's own copy is 1x on every ratio, so the worst is the random policy's where it is
    # worse), bold where some row misses the term.
    assert "What the target can resolve" in text and "What the target can resolve" not in again.markdown
    for r, tiny_v in zip(resolutions(several, moved), rows["tiny, again"]):
        assert r.rows == 2
        assert r.l4s_p99_ratio == pytest.approx(max(1.0, tiny_v.p99[0] / tiny_v.p99[1]))
        assert r.util_ratio == pytest.approx(min(1.0, tiny_v.util[0] / tiny_v.util[1]))
        assert r.loss_excess_pct == pytest.approx(max(0.0, tiny_v.loss[0] - tiny_v.loss[1]))
        assert r.beyond == tuple(ok is False for ok in (tiny_v.p99_ok, tiny_v.classic_ok, tiny_v.util_ok,
                                                        tiny_v.loss_ok))
        row = next(line for line in text.splitlines() if line.startswith(f"| {r.setting.name} | held-out | 2 |"))
        assert (f"**{r.l4s_p99_ratio:.2f}x**" in row) == r.beyond[0]
    # Against each draw of the reference: the reference row and each calibration row in turn. The
    # policy meets the target against its own copy ("tiny, again") everywhere, and against the
    # reference and its copy exactly where it meets it against the reference.
    standings = {d.label: d for d in draw_standings(several, moved)}
    # in the file's order (baselines, then policies), then the rows the statistics add
    assert list(standings)[:2] == ["fifo", "tiny"] and all(d.complete for d in standings.values())
    assert "dualpi2" not in standings and set(standings) >= {"tiny", "fifo", "dualpi2, again", "tiny, again"}
    for v in verdicts(several, moved):
        assert standings["tiny"].per_setting[v.setting.name] == (2 * int(bool(v.met)) + 1, 3)
    assert standings["tiny"].all_families == (2 * int(policy_all) + 1, 3)
    assert standings["dualpi2, again"].per_setting[other.name][1] == 2  # not judged against itself
    # With a training setting ("seen" in the file as it is): against how many draws every training
    # setting is met at once.
    one_training = {d.label: d for d in draw_standings(calibrated, stats)}["tiny"]
    seen_met = [next(v for v in verdicts(cfg, stats, "tiny", reference=draw) if v.setting == seen).met
                for draw in ("dualpi2", "fifo")]
    assert one_training.all_training == (sum(bool(m) for m in seen_met), 2)
    assert "#### Against each draw of dualpi2" in text and "Against each draw" not in again.markdown
    row = next(line for line in text.splitlines()
               if line.startswith("| all 2 held-out families | held-out | "))
    assert f"| {2 * int(policy_all) + 1} of 3 |" in row
    # The rung check pairs the same seeds: each delta's mean is the difference of the two means.
    checks = rung_checks(cfg, stats)
    assert [c.setting.name for c in checks] == ["seen", "unseen"]
    for c in checks:
        mine = next(s for s in stats if s.setting == c.setting and s.label == "tiny")
        ref = next(s for s in stats if s.setting == c.setting and s.label == "dualpi2")
        for metric, d in zip(RUNG_METRICS, c.deltas):
            assert d.n == 2 and d.mean == pytest.approx(mine.mean(metric) - ref.mean(metric))
    assert "Sanity rung: tiny against dualpi2" in again.markdown
    assert "On the training settings it reproduces dualpi2 on" in again.markdown

    # Another checkpoint at the same path is another policy: its runs are new, the baselines' are not.
    _save_policy(ckpt, 2)
    changed = {r.run.key() for r in cfg.runs()} - {r.run.key() for r in plan}
    assert len(changed) == 4
    partial = evaluate(cfg, db, out, run=False)
    assert [s.stats[0].n for s in partial.stats if s.label == "tiny"] == [0, 0]
    assert "| tiny | 0/2 |" in partial.markdown
    stored = json.loads(next(iter((tmp_path / "ev-runs").glob("*.json"))).read_text())
    assert stored["scenario"] == "dumbbell"


def test_every_help_page_prints(capsys: pytest.CaptureFixture[str]) -> None:
    # argparse formats help strings with %: a bare "95% CI" once made `aqm-llm --help` crash.
    from aqm_llm.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["--help"])
    assert done.value.code == 0 and "95% CI" in capsys.readouterr().out
    for command in ("run", "evaluate", "train", "prepare-agent", "sweep"):
        with pytest.raises(SystemExit) as done:
            parser.parse_args([command, "--help"])
        assert done.value.code == 0
