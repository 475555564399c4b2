"""Progress of long work off a terminal: plain lines, at most one every few seconds.

On a terminal, runs, sweeps and training show a tqdm bar; when stderr is not a terminal (a log,
``nohup``, CI) a bar's carriage returns would garble the file, so they print lines instead, each
one due by :class:`LineClock`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

#: Seconds between progress lines when stderr is not a terminal (batch jobs, logs, make demo).
LINE_EVERY_S = 5.0


@dataclass
class LineClock:
    """Whether a progress line is due: the first, then at most one every ``every_s`` seconds, and
    always a final one."""

    every_s: float = LINE_EVERY_S
    _last: float = field(default=float("-inf"), init=False)

    def due(self, final: bool = False) -> bool:
        now = time.monotonic()
        if final or now - self._last >= self.every_s:
            self._last = now
            return True
        return False
