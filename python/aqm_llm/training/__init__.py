"""Offline training of the l4s-llm policy (NetLLM's data-driven LoRA, DD-LRNA).

    from aqm_llm.training import collect, train
    collect("configs/collect-small.yaml")        # experience pool: record runs -> Parquet + manifest
    result = train("configs/train-small.yaml")   # return-conditioned offline RL + distillation
    # aqm-llm run dumbbell --qdisc l4s-llm --checkpoint runs/train-small/checkpoint

Modules: records (record files), pool (the Parquet experience pool), collector (``collect``),
dataset (pool -> batches in the token layout, best teachers, target returns), config (the
training config), trainer (``train``, ``set_target_return``). Formulas and schemas:
docs/training.md. Importing this package imports neither torch nor pyarrow.
"""

from aqm_llm.training.collector import CollectConfig, collect, load_collect_config
from aqm_llm.training.config import TrainConfig, load_train_config, parse_train_config
from aqm_llm.training.pool import load_pool, load_pool_frame
from aqm_llm.training.trainer import TrainResult, set_target_return, train

__all__ = ["CollectConfig", "TrainConfig", "TrainResult", "collect", "load_collect_config", "load_pool",
           "load_pool_frame", "load_train_config", "parse_train_config", "set_target_return", "train"]
