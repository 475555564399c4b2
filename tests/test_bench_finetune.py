"""`aqm-llm bench finetune` on a tiny random backbone and a synthetic pool: LoRA trains what
`aqm-llm train` trains and leaves the base weights alone; full fine-tuning moves them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_training_units import make_pool, tiny_config

from aqm_llm.bench import finetune as bench
from aqm_llm.errors import ConfigError


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> object:
    root = tmp_path_factory.mktemp("bench-finetune")
    pool = make_pool(root / "pool", [("dumbbell", 0, 12, 0.9), ("dumbbell", 1, 12, 0.7)])
    return tiny_config(pool, root / "out")


def test_modes_train_what_they_should(cfg: object) -> None:
    from aqm_llm.agent.policy import LlmPolicy
    from aqm_llm.training.trainer import policy_config, prepare

    lora = bench.run_mode(cfg, "lora", steps=2, warmup=1)
    full = bench.run_mode(cfg, "full", steps=2, warmup=1)
    assert full.trainable > lora.trainable and full.total < lora.total  # no LoRA matrices
    assert len(lora.step_s) == len(full.step_s) == 2 and lora.optimizer_mb > 0
    assert full.optimizer_mb > lora.optimizer_mb
    training = LlmPolicy(policy_config(cfg, prepare(cfg)["ckpt_reward"]))
    assert lora.trainable == sum(p.numel() for p in training.model.parameters() if p.requires_grad)

    for mode in bench.MODES:
        s = bench.build(cfg, mode)
        base = {n: p.detach().clone() for n, p in bench.base_weights(s.policy).items()}
        trainable = {n: p.detach().clone() for n, p in s.policy.model.named_parameters() if p.requires_grad}
        bench.train_step(s, 0)
        after = bench.base_weights(s.policy)
        changed = [n for n, p in after.items() if not torch.equal(p, base[n])]
        moved = [n for n, p in s.policy.model.named_parameters() if n in trainable
                 and not torch.equal(p, trainable[n])]
        assert moved, f"{mode}: one step changed no trainable weight"
        if mode == "lora":
            assert changed == [] and any("lora_B" in n for n in moved)
        else:
            embed = s.policy.backbone.model.get_input_embeddings().weight
            assert not embed.requires_grad
            assert len(changed) == len(after) - 1  # every base weight but the embedding table


def test_render_and_missing_pool(cfg: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = [bench.ModeResult(mode=m, trainable=t, total=10_000, step_s=[s, s], losses=[1.0, 0.9],
                                peak_rss_mb=r, train_peak_mb=r / 2, optimizer_mb=t * 8 / 2**20,
                                threads=2, batch_size=4, train_rows=20, device="cpu",
                                backbone="random:llama", detail="x", torch="2", build_s=1.0)
               for m, t, s, r in (("lora", 1_000, 1.0, 100.0), ("full", 9_000, 2.0, 300.0))]
    info = {"cpu": "cpu", "os": "os", "load": "0", "load_after": "1", "pools": ["p"]}
    text = bench.render(results, bench.BenchConfig(), info, "aqm-llm bench finetune --quick")
    assert "command: aqm-llm bench finetune --quick" in text and "machine: cpu" in text
    ratio = next(line for line in text.splitlines() if line.startswith("full / LoRA"))
    assert ratio.split()[3:9] == ["9.0x", "2.0x", "2.0x", "3.0x", "3.0x", "9.0x"]
    out = tmp_path / "bench-finetune.md"
    bench.save_section(out, text)
    bench.save_section(out, "new table")
    saved = out.read_text()
    assert saved.count(bench.SECTION_BEGIN) == 1 and "new table" in saved

    config = tmp_path / "train.yaml"
    config.write_text(f"pool: {tmp_path / 'nowhere'}\n")
    with pytest.raises(ConfigError, match="experience pool .*nowhere is missing"):
        bench.train_config(bench.BenchConfig(config=config))
    from aqm_llm import cli

    assert cli.main(["bench", "finetune", "--config", str(config), "--no-save"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is missing" in err
