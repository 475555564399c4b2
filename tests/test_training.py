"""The training pipeline end to end: collect two short record runs through the sweep
runner, train a few steps on a tiny random-weight backbone, save, load, and run a closed-loop
simulation with the trained checkpoint served by the agent process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aqm_llm import cli
from aqm_llm.runner import AgentSpec, run
from aqm_llm.training.pool import load_pool, part_metadata
from aqm_llm.training.records import file_sha256, read_records

TINY = "random:llama"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("collect")
    cfg = root / "collect.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "e2e", "pool": str(root / "pool"), "scenarios": ["dumbbell"],
        "teachers": ["dualpi2", "pie-step@2"], "seeds": [1],
        "params": {"duration": "2s", "warmup": "1s"}, "workers": 2}))
    assert cli.main(["collect", str(cfg), "--no-progress"]) == 0
    # Resumable: a second invocation runs nothing and rewrites no part.
    from aqm_llm.training.collector import collect

    again = collect(cfg, progress=False)
    assert (again.total, again.skipped, again.ok, again.converted) == (2, 2, 0, 0)
    return root / "pool"


def test_pool_manifest_and_rows(pool: Path) -> None:
    manifest = json.loads((pool / "manifest.json").read_text())
    assert manifest["totals"] == {"runs": 2, "failed": 0, "epochs": 2 * 124}
    assert sorted(r["acting"] for r in manifest["runs"]) == ["dualpi2", "pie-step@2"]
    assert len(manifest["teachers"]) == 9 and manifest["software"]["aqm_llm"]
    table, _ = load_pool(pool)
    assert table.num_rows == 248
    for entry in manifest["runs"]:
        rec = pool / entry["record"]
        assert file_sha256(rec) == entry["record_sha256"]
        assert part_metadata(pool / entry["part"])["record_sha256"] == entry["record_sha256"]
        meta, d = read_records(rec)
        assert d.shape[0] == entry["epochs"] and entry["fallbacks"] == 0
        assert meta["acting"] == f"teacher:{entry['acting']}"
    df = table.to_pandas()
    assert (df["actor"] >= 0).all() and df["action_valid"].all()
    assert set(df["actor_name"]) == {"dualpi2", "pie-step@2"}
    assert (df.groupby("run_id")["epoch"].apply(lambda e: list(e) == list(range(len(e))))).all()


def test_train_save_load_and_run_closed_loop(pool: Path, tmp_path: Path) -> None:
    from aqm_llm.agent.policy import LlmPolicy

    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "e2e", "pool": str(pool), "output": str(tmp_path / "out"), "seed": 1,
        "model": {"backbone": TINY, "lora": {"r": 4, "alpha": 8}},
        "optim": {"steps": 50, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1},
        "log_every": 1, "validation": {"fraction": 0.5, "every": 2, "batches": 1}}))
    assert cli.main(["train", str(cfg), "--steps", "4", "--no-progress"]) == 0
    ckpt = tmp_path / "out" / "checkpoint"
    doc = json.loads((ckpt / "config.json").read_text())
    assert doc["trained"] and doc["policy"]["backbone"] == TINY
    tr = doc["metadata"]["training"]
    assert tr["backbone_sha256"] is None  # random weights: no file to name
    assert tr["steps_done"] == 4 and tr["best_teachers"]["dumbbell"]["best"] in ("dualpi2", "pie-step@2")
    assert doc["policy"]["reward"]["target_return"] == pytest.approx(tr["target_return"])
    assert (ckpt / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "out" / "losses.png").is_file()
    lines = (tmp_path / "out" / "losses.csv").read_text().splitlines()
    assert lines[0].startswith("step,phase,loss") and sum(",train," in x for x in lines) == 4
    assert sum(",val," in x for x in lines) == 2
    policy = LlmPolicy.load(ckpt)
    assert policy.trained and policy.backbone.lora is not None

    metrics = run("dumbbell", qdisc="l4s-llm", seed=2, params={"duration": "2s", "warmup": "1s"},
                  output_dir=tmp_path / "runs",
                  agent=AgentSpec(checkpoint=str(ckpt), backbone=TINY, threads=1))
    assert metrics["fallbacks"] == 0
    agent = metrics["agent"]
    assert agent["trained"] is True and agent["policy"]["backbone"] == TINY
    assert agent["replies"] == {"ok": metrics["llm"]["epochs"], "fallback": 0, "error": 0}
    assert metrics["llm"]["agent_epochs"] == metrics["llm"]["epochs"] > 100
