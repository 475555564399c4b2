"""Drop and mark probabilities on a log scale: the head's epoch outputs and the model's inputs.

TCP's rate is set by probabilities between about 1e-5 and 1e-3 (Cubic at 0.1% loss and 40 ms RTT:
about 11 Mb/s), so a probability is never learned or fed on a linear scale, where those values
are all "about zero". The head predicts, per class probability, a distribution over
:data:`LEVELS`: an exact zero and 25 levels spaced 4 per decade from 1e-6 to 1.

- :func:`soft_targets`: a probability as a target distribution: "two-hot" on the two levels around
  it, weighted by where it falls between them in log10 (below 1e-6: linearly between zero and 1e-6).
- :func:`decode`: a predicted distribution back to a probability: zero if the zero level holds at
  least half of the mass, else 10 ** (the mean log10 level under the rest of the mass). A two-hot
  target decodes to exactly the probability it was made from over [1e-6, 1] (round trip).
- :func:`log_feature`: a probability as a model input, (log10(max(p, 1e-7)) + 7) / 7: 0 for
  p <= 1e-7, 1 for p = 1, evenly spread over the decades that matter.

numpy only (the agent decodes ONNX Runtime outputs without torch); training computes the
cross-entropy against :func:`soft_targets` on the head's logits.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MIN_LEVEL_LOG10 = -6.0
LEVELS_PER_DECADE = 4
#: 0, then 1e-6 .. 1 log-spaced (26 levels).
LEVELS = np.concatenate([[0.0], np.logspace(MIN_LEVEL_LOG10, 0.0,
                                            int(-MIN_LEVEL_LOG10) * LEVELS_PER_DECADE + 1)])
N_LEVELS = LEVELS.shape[0]
_LOG_LEVELS = np.log10(LEVELS[1:])
FEATURE_FLOOR_LOG10 = -7.0


def soft_targets(p: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """(..., N_LEVELS) target distributions for probabilities ``p`` (clipped to [0, 1])."""
    q = np.clip(np.nan_to_num(np.asarray(p, np.float64), nan=0.0), 0.0, 1.0)
    out = np.zeros(q.shape + (N_LEVELS,), np.float64)
    low = q < LEVELS[1]
    # Below the first non-zero level: between "exactly zero" and 1e-6, linearly.
    w = q[low] / LEVELS[1]
    out[low, 0] = 1.0 - w
    out[low, 1] = w
    hi = ~low
    x = (np.log10(np.maximum(q[hi], LEVELS[1])) - MIN_LEVEL_LOG10) * LEVELS_PER_DECADE
    i = np.minimum(np.floor(x).astype(np.int64), N_LEVELS - 2)  # index in the non-zero levels
    frac = np.clip(x - i, 0.0, 1.0)
    rows = np.nonzero(hi.reshape(-1))[0]
    flat = out.reshape(-1, N_LEVELS)
    flat[rows, 1 + i] = 1.0 - frac
    last = np.minimum(2 + i, N_LEVELS - 1)
    flat[rows, last] += frac
    return out.astype(np.float32)


def decode(dist: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Probabilities (...) from distributions over the levels (..., N_LEVELS)."""
    d = np.clip(np.nan_to_num(np.asarray(dist, np.float64), nan=0.0), 0.0, None)
    total = d.sum(-1)
    zero = d[..., 0] >= 0.5 * np.maximum(total, 1e-300)
    rest = d[..., 1:]
    mass = rest.sum(-1)
    mean_log = (rest * _LOG_LEVELS).sum(-1) / np.maximum(mass, 1e-300)
    p = np.power(10.0, mean_log)
    return np.where(zero | (mass <= 0), 0.0, np.clip(p, 0.0, 1.0))


def decode_logits(logits: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Probabilities (...) from the head's logits over the levels (..., N_LEVELS)."""
    z = np.nan_to_num(np.asarray(logits, np.float64), nan=0.0, posinf=1e4, neginf=-1e4)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return decode(e / e.sum(-1, keepdims=True))


def log_feature(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """A probability as a model input on a log scale, in [0, 1]."""
    q = np.clip(np.asarray(p, np.float64), 0.0, 1.0)
    return (np.log10(np.maximum(q, 10.0 ** FEATURE_FLOOR_LOG10)) - FEATURE_FLOOR_LOG10) / -FEATURE_FLOOR_LOG10
