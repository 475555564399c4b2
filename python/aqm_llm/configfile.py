"""Reading the project's YAML files (sweeps, evaluations, collection and training configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aqm_llm.errors import ConfigError


def read_yaml(path: str | Path, what: str) -> Any:
    """The document in ``path``; ConfigError in one line if there is no such file (naming ``what``
    it should be) or it is not valid YAML (with the line and column of the problem)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no {what} at {p}")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
