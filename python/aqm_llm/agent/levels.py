"""Drop and mark probabilities on a log scale: the head's epoch outputs and the model's inputs.

TCP's rate is set by probabilities between about 1e-5 and 1e-3 (Cubic at 0.1% loss and 40 ms RTT:
about 11 Mb/s), so a probability is never learned or fed on a linear scale, where those values
are all "about zero". The head predicts, per epoch output, a distribution over the levels of a
:class:`LevelGrid`: an exact zero, then log-spaced values. Two grids:

- :data:`PROBABILITIES` (:data:`LEVELS`): 0, then 25 levels 4 per decade from 1e-6 to 1 -- the
  epoch probabilities themselves (``PolicyConfig.epoch_output`` ``probability``);
- :data:`FACTORS`: 0, then 25 factors 4 per octave from 1/8 to 8 -- factors on DualPI2's own
  probabilities (``epoch_output`` ``factor``, ``agent.factor``), where 1 is "as DualPI2".

Per grid:

- ``soft_targets``: a value as a target distribution: "two-hot" on the two levels around it,
  weighted by where it falls between them on the log scale (below the first non-zero level:
  linearly between zero and that level; above the last: the last).
- ``decode``: a predicted distribution back to a value: zero if the zero level holds at least
  half of the mass, else the base to the power of the mean log level under the rest of the mass.
  A two-hot target decodes to exactly the value it was made from between the first and the last
  non-zero level (round trip).

:func:`log_feature`: a probability as a model input, (log10(max(p, 1e-7)) + 7) / 7: 0 for
p <= 1e-7, 1 for p = 1, evenly spread over the decades that matter.

numpy only (the agent decodes ONNX Runtime outputs without torch); training computes the
cross-entropy against ``soft_targets`` on the head's logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class LevelGrid:
    """Zero, then ``per_unit`` levels per power of ``base`` from base**min_log to base**max_log."""

    base: float
    min_log: float
    max_log: float
    per_unit: int
    levels: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        count = int(round((self.max_log - self.min_log) * self.per_unit)) + 1
        logs = np.linspace(self.min_log, self.max_log, count)
        object.__setattr__(self, "levels", np.concatenate([[0.0], np.power(self.base, logs)]))

    @property
    def size(self) -> int:
        return int(self.levels.shape[0])

    def _log(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # log10 / log2 exactly where they apply: the probability grid decodes bit for bit as the
        # module did before the factor grid existed.
        if self.base == 10.0:
            return np.log10(x)
        if self.base == 2.0:
            return np.log2(x)
        return np.log(x) / np.log(self.base)

    def soft_targets(self, value: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """(..., size) target distributions for ``value`` (NaN -> 0, clipped to [0, top level])."""
        first, top = self.levels[1], self.levels[-1]
        q = np.clip(np.nan_to_num(np.asarray(value, np.float64), nan=0.0), 0.0, top)
        out = np.zeros(q.shape + (self.size,), np.float64)
        low = q < first
        # Below the first non-zero level: between "exactly zero" and that level, linearly.
        w = q[low] / first
        out[low, 0] = 1.0 - w
        out[low, 1] = w
        hi = ~low
        x = (self._log(np.maximum(q[hi], first)) - self.min_log) * self.per_unit
        i = np.minimum(np.floor(x).astype(np.int64), self.size - 2)  # index in the non-zero levels
        frac = np.clip(x - i, 0.0, 1.0)
        rows = np.nonzero(hi.reshape(-1))[0]
        flat = out.reshape(-1, self.size)
        flat[rows, 1 + i] = 1.0 - frac
        last = np.minimum(2 + i, self.size - 1)
        flat[rows, last] += frac
        return out.astype(np.float32)

    def decode(self, dist: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Values (...) from distributions over the levels (..., size)."""
        d = np.clip(np.nan_to_num(np.asarray(dist, np.float64), nan=0.0), 0.0, None)
        total = d.sum(-1)
        zero = d[..., 0] >= 0.5 * np.maximum(total, 1e-300)
        rest = d[..., 1:]
        mass = rest.sum(-1)
        mean_log = (rest * self._log(self.levels[1:])).sum(-1) / np.maximum(mass, 1e-300)
        v = np.power(self.base, mean_log)
        return np.where(zero | (mass <= 0), 0.0, np.clip(v, 0.0, self.levels[-1]))

    def decode_logits(self, logits: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Values (...) from the head's logits over the levels (..., size)."""
        z = np.nan_to_num(np.asarray(logits, np.float64), nan=0.0, posinf=1e4, neginf=-1e4)
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return self.decode(e / e.sum(-1, keepdims=True))


#: Probabilities: 0, then 1e-6 .. 1, 4 levels per decade (26 levels).
PROBABILITIES = LevelGrid(base=10.0, min_log=-6.0, max_log=0.0, per_unit=4)
#: Factors on DualPI2's probabilities: 0, then 1/8 .. 8, 4 levels per octave (26 levels: the same
#: head shape as the probabilities'; 1 is a level of its own).
FACTORS = LevelGrid(base=2.0, min_log=-3.0, max_log=3.0, per_unit=4)
assert PROBABILITIES.size == FACTORS.size

MIN_LEVEL_LOG10 = PROBABILITIES.min_log
LEVELS_PER_DECADE = PROBABILITIES.per_unit
LEVELS = PROBABILITIES.levels
N_LEVELS = PROBABILITIES.size
FEATURE_FLOOR_LOG10 = -7.0


def soft_targets(p: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """(..., N_LEVELS) target distributions for probabilities ``p`` (clipped to [0, 1])."""
    return PROBABILITIES.soft_targets(p)


def decode(dist: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Probabilities (...) from distributions over the levels (..., N_LEVELS)."""
    return PROBABILITIES.decode(dist)


def decode_logits(logits: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Probabilities (...) from the head's logits over the levels (..., N_LEVELS)."""
    return PROBABILITIES.decode_logits(logits)


def log_feature(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """A probability as a model input on a log scale, in [0, 1]."""
    q = np.clip(np.asarray(p, np.float64), 0.0, 1.0)
    return (np.log10(np.maximum(q, 10.0 ** FEATURE_FLOOR_LOG10)) - FEATURE_FLOOR_LOG10) / -FEATURE_FLOOR_LOG10
