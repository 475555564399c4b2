"""A policy checkpoint's files, checked in milliseconds without torch or the backbone: the agent
server, the runner and sweep/evaluation files refuse a missing or damaged checkpoint in one line
before anything slow starts (a backbone load, a simulation)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Mapping

import aqm_llm
from aqm_llm.errors import ConfigError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "policy.safetensors"
ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
CHECKPOINT_FORMAT = "aqm-llm-policy"
CHECKPOINT_VERSION = 1
#: The shipped checkpoint, used when none is given (``models/l4s-llm`` in the source tree).
DEFAULT_CHECKPOINT = Path(aqm_llm.__file__).resolve().parents[2] / "models" / "l4s-llm"
#: The l4s-llm queue disc's scenario parameters a checkpoint may carry (the policy config's
#: ``queue_disc``): how the queue disc around the agent is set (the rules it keeps around the
#: agent's decisions, and with llm_classic which queue the agent decides), not which agent decides.
QUEUE_DISC_PARAMS = ("llm_l_sojourn_limit", "llm_l_agent_drop", "llm_agent_forward", "llm_agent_drop",
                     "llm_classic", "llm_overload", "llm_batch")


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (None if it is): the header must parse and
    the tensors it lists must end exactly at the end of the file (a truncated copy does not)."""
    if not path.is_file():
        return f"missing {path.name}"
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{path.name} is truncated ({size} bytes)"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return f"{path.name} is truncated (header of {n} bytes in a {size}-byte file)"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return f"{path.name} is damaged (header is not JSON)"
    if not isinstance(header, dict):
        return f"{path.name} is damaged (header is not a JSON object)"
    ends = [t["data_offsets"][1] for k, t in header.items()
            if k != "__metadata__" and isinstance(t, dict) and "data_offsets" in t]
    if 8 + n + max(ends, default=0) != size:
        return f"{path.name} is truncated or damaged ({size} bytes, its header describes {8 + n + max(ends, default=0)})"
    return None


def checkpoint_problem(directory: str | Path) -> str | None:
    """Why ``directory`` is not a usable policy checkpoint (None if it looks complete)."""
    d = Path(directory)
    if not d.is_dir():
        return f"no checkpoint directory at {d}"
    cfg = d / CONFIG_FILE
    if not cfg.is_file():
        return f"{d} is not a policy checkpoint (no {CONFIG_FILE})"
    try:
        doc = json.loads(cfg.read_text())
    except ValueError:
        return f"{cfg} is damaged (not JSON)"
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT \
            or doc.get("version") != CHECKPOINT_VERSION or not isinstance(doc.get("policy"), dict):
        return f"{cfg} is not a {CHECKPOINT_FORMAT} v{CHECKPOINT_VERSION} config"
    problem = safetensors_problem(d / WEIGHTS_FILE)
    if problem is None and doc["policy"].get("lora") is not None and doc["policy"].get("backbone") != "mlp":
        problem = safetensors_problem(d / ADAPTER_DIR / ADAPTER_WEIGHTS)
    return f"checkpoint {d}: {problem}" if problem else None


def check_checkpoint(directory: str | Path) -> None:
    """ConfigError (one line) if ``directory`` is not a usable checkpoint."""
    problem = checkpoint_problem(directory)
    if problem:
        raise ConfigError(problem)


def default_checkpoint() -> Path | None:
    """The shipped trained checkpoint, if the source tree has one."""
    return DEFAULT_CHECKPOINT if (DEFAULT_CHECKPOINT / CONFIG_FILE).exists() else None


def _policy_section(directory: Path) -> dict:
    return dict(json.loads((directory / CONFIG_FILE).read_text()).get("policy") or {})


def resolve_checkpoint(checkpoint: str | None, backbone: str | None) -> Path | None:
    """The checkpoint to serve: the given one; without one, the shipped checkpoint if
    ``backbone`` is the one it was trained on (or not given), else None (an untrained policy)."""
    if checkpoint:
        return Path(checkpoint)
    path = default_checkpoint()
    if path is not None and backbone is not None:
        if backbone != _policy_section(path).get("backbone"):
            return None  # the shipped adapter and encoder belong to another backbone
    return path


def queue_disc_of(policy: Mapping[str, object]) -> dict[str, str]:
    """The ``queue_disc`` settings of a checkpoint's policy section, as parameter strings."""
    return {str(k): str(v) for k, v in dict(policy.get("queue_disc") or {}).items()}


def epoch_output_in(policy: Mapping[str, object]) -> str:
    """The epoch output of a checkpoint's policy section (``agent.factor.EPOCH_OUTPUTS``);
    checkpoints from before the factor output have none: the probability output."""
    from aqm_llm.agent.factor import PROBABILITY

    return str(policy.get("epoch_output") or PROBABILITY)


def epoch_output_of(checkpoint: str | None, backbone: str | None = None) -> str | None:
    """The epoch output the served checkpoint was trained with; None for an untrained policy or
    a directory that is not a checkpoint."""
    path = resolve_checkpoint(checkpoint, backbone)
    if path is None or checkpoint_problem(path) is not None:
        return None
    return epoch_output_in(_policy_section(path))


def queue_disc_settings(checkpoint: str | None, backbone: str | None = None) -> Mapping[str, str]:
    """The l4s-llm queue-disc parameters the served checkpoint carries ({} for none, for an
    untrained policy, or for a directory that is not a checkpoint: serving it fails clearly)."""
    path = resolve_checkpoint(checkpoint, backbone)
    if path is None or checkpoint_problem(path) is not None:
        return {}
    return queue_disc_of(_policy_section(path))
