"""The checkpoints that ship in models/: complete, trained on the installed SmolLM2
weights, described truthfully by their model card, and used by `--qdisc l4s-llm` by default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aqm_llm.agent.backbone import backbone_sha256
from aqm_llm.agent.policy import DEFAULT_CHECKPOINT, default_checkpoint, read_checkpoint_config
from aqm_llm.runner import AgentSpec, checkpoint_params, run

MODELS = Path(__file__).resolve().parents[1] / "models"


def _training(directory: Path) -> dict:
    return read_checkpoint_config(directory)["metadata"]["training"]


def test_the_default_checkpoint_is_the_shipped_one() -> None:
    assert default_checkpoint() == DEFAULT_CHECKPOINT == MODELS / "l4s-llm"
    doc = read_checkpoint_config(DEFAULT_CHECKPOINT)
    tr = doc["metadata"]["training"]
    assert doc["trained"] is True and doc["policy"]["backbone"] == "smollm2"
    # the recipe the README's verdict chose: dualpi2 distilled alone, served with the ramp band and
    # the L4S sojourn limit (configs/train-default.yaml)
    assert tr["variant"] == "lora+bc+imitate:dualpi2" and tr["return_conditioning"] is False
    policy = doc["policy"]
    assert (policy["p_prime_band"], policy["p_prime_form"]) == (2.0, "ramp")
    assert policy["queue_disc"] == {"llm_l_sojourn_limit": "20ms"}
    assert tr["steps_done"] == tr["config"]["optim"]["steps"]
    assert tr["backbone_sha256"] == backbone_sha256("smollm2")
    assert (DEFAULT_CHECKPOINT / "adapter" / "adapter_model.safetensors").is_file()
    assert (DEFAULT_CHECKPOINT / "policy.safetensors").is_file()


def test_the_model_card_matches_the_checkpoint() -> None:
    card = (DEFAULT_CHECKPOINT / "README.md").read_text()
    tr = _training(DEFAULT_CHECKPOINT)
    assert tr["backbone_sha256"] in card
    assert f"{tr['trainable_parameters']:,}" in card
    steps = re.search(r"steps: (\d+)", card)
    assert steps is not None and int(steps.group(1)) == tr["steps_done"]
    assert tr["pool_identity"] in card
    assert "full fine-tuning" in card


@pytest.mark.parametrize("name, variant, same_pool_as", [
    ("l4s-llm-imitate", "lora+bc+imitate:dualpi2", "l4s-llm"),  # the shipped network's own training
    ("l4s-llm-return", "lora", "l4s-llm"), ("l4s-llm-bc", "lora+bc", "l4s-llm"),
    # the MLP and the retrained recipe: the same recipe on the pool as today's code collects it
    ("l4s-llm-mlp", "mlp+bc+imitate:dualpi2", "l4s-llm-retrain"),
    ("l4s-llm-retrain", "lora+bc+imitate:dualpi2", "l4s-llm-mlp"),
    # the recipe with the epoch decision from the state alone; its control is the retrained recipe
    ("l4s-llm-epoch-first", "lora+bc+imitate:dualpi2", "l4s-llm-retrain")])
def test_the_ablation_checkpoints_ship_too(name: str, variant: str, same_pool_as: str) -> None:
    tr = _training(MODELS / name)
    assert tr["variant"] == variant
    assert tr["pool_identity"] == _training(MODELS / same_pool_as)["pool_identity"]  # same experience
    assert tr["steps_done"] == tr["config"]["optim"]["steps"]


def test_the_epoch_first_checkpoint_differs_from_its_control_in_the_layout_only() -> None:
    first, control = (read_checkpoint_config(MODELS / n) for n in ("l4s-llm-epoch-first", "l4s-llm-retrain"))
    assert first["policy"]["layout"].pop("epoch_sees_packets") is False
    assert first["policy"]["layout"] == control["policy"]["layout"]
    assert first["metadata"]["training"]["config"]["model"] == {
        **control["metadata"]["training"]["config"]["model"], "epoch_sees_packets": False}


def test_the_shipped_weights_are_the_evaluated_network_s() -> None:
    """models/l4s-llm serves the network of models/l4s-llm-imitate byte for byte (the one the
    evaluations that chose the recipe ran), with the serving settings of configs/train-default.yaml."""
    for part in ("policy.safetensors", "adapter/adapter_model.safetensors"):
        assert (DEFAULT_CHECKPOINT / part).read_bytes() == (MODELS / "l4s-llm-imitate" / part).read_bytes()
    imitate = read_checkpoint_config(MODELS / "l4s-llm-imitate")["policy"]
    shipped = read_checkpoint_config(DEFAULT_CHECKPOINT)["policy"]
    served = ("p_prime_band", "p_prime_form", "queue_disc")
    assert {k: v for k, v in shipped.items() if k not in served} == \
        {k: v for k, v in imitate.items() if k not in served}


def test_run_uses_the_shipped_checkpoint_by_default(tmp_path: Path) -> None:
    metrics = run("dumbbell", qdisc="l4s-llm", seed=1, params={"duration": "600ms", "warmup": "200ms"},
                  output_dir=tmp_path, agent=AgentSpec(threads=2))
    agent = metrics["agent"]
    assert agent["trained"] is True
    assert agent["policy"]["checkpoint"] == str(DEFAULT_CHECKPOINT.resolve())
    assert metrics["fallbacks"] == 0 and metrics["llm"]["agent_epochs"] == metrics["llm"]["epochs"] > 30
    # the queue-disc setting the checkpoint carries reached the scenario program, and says so
    assert metrics["run"]["checkpoint_params"] == {"llm_l_sojourn_limit": "20ms"}
    assert metrics["run"]["params"]["llm_l_sojourn_limit"] == "20ms"
    assert "--llm_l_sojourn_limit=20ms" in metrics["run"]["command"]
    json.dumps(metrics)  # serialisable as stored


def test_a_run_s_own_queue_disc_setting_wins_over_the_checkpoint_s() -> None:
    served = AgentSpec(threads=1)
    assert checkpoint_params("l4s-llm", {}, served) == {"llm_l_sojourn_limit": "20ms"}
    assert checkpoint_params("l4s-llm", {"llm_l_sojourn_limit": "0s"}, served) == {}
    # only where the checkpoint serves: not a teacher's run, another queue disc or another agent
    assert checkpoint_params("l4s-llm", {"llm_mode": "teacher"}, served) == {}
    assert checkpoint_params("dualpi2", {}, served) == {}
    assert checkpoint_params("l4s-llm", {}, AgentSpec(agent="aqm_llm.agent.stub:DualPi2ProbabilityAgent")) == {}
    # a checkpoint that carries none adds none
    assert checkpoint_params("l4s-llm", {}, AgentSpec(checkpoint=str(MODELS / "l4s-llm-imitate"))) == {}


@pytest.mark.parametrize("name, pools", [
    ("l4s-llm-dagger", ["collect-default", "collect-dagger"]),
    ("l4s-llm-dagger2", ["collect-default", "collect-dagger", "collect-dagger2"]),
    ("l4s-llm-long", ["collect-long"])])
def test_the_evaluation_rows_ship_with_their_pools(name: str, pools: list[str]) -> None:
    tr = _training(MODELS / name)
    assert tr["pool_names"] == pools
    assert tr["steps_done"] == tr["config"]["optim"]["steps"]
    assert tr["pool_identity"] in (MODELS / name / "README.md").read_text()
    # the 30 s pool's targets were ranked after the warm-up; the others' over whole runs
    assert tr["config"].get("rank_after_warmup", False) == (name == "l4s-llm-long")


def test_the_factor_rung_ships_with_its_output_and_card() -> None:
    from aqm_llm.agent.factor import FACTOR
    from aqm_llm.agent.policy import PolicyConfig, read_checkpoint_config

    doc = read_checkpoint_config(MODELS / "l4s-llm-imitate-factor")
    assert PolicyConfig.from_dict(doc["policy"]).epoch_output == FACTOR
    tr = _training(MODELS / "l4s-llm-imitate-factor")
    assert tr["config"]["distill_teacher"] == "dualpi2" and tr["steps_done"] == tr["config"]["optim"]["steps"]
    assert tr["pool_identity"] in (MODELS / "l4s-llm-imitate-factor" / "README.md").read_text()
