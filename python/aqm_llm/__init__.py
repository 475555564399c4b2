"""aqm-llm: LLM-driven Active Queue Management for L4S as an ns-3 co-simulation plugin.

The library API mirrors the `aqm-llm` CLI::

    import aqm_llm
    metrics = aqm_llm.run("dumbbell", qdisc="fq-codel-l4s", seed=1, params={"duration": "10s"})
"""

from aqm_llm.errors import ConfigError
from aqm_llm.runner import run

__version__ = "0.1.0"
__all__ = ["ConfigError", "run", "__version__"]
