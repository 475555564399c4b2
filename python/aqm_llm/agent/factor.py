"""The epoch decision as factors on DualPI2's own probabilities (``PolicyConfig.epoch_output``
``factor``).

The queue disc runs DualPI2's PI controller whoever decides, and reports its base probability p'
in every request. With this output the head does not predict probabilities; it predicts, on the
:data:`~aqm_llm.agent.levels.FACTORS` grid (0, then 1/8 .. 8), two factors on p':

    p_L mark = min(k x f_L x p', 1)        p_C = min((f_C x p')^2, 1)        (k = 2)

and the queue disc keeps DualPI2's native ramp on each L packet's own sojourn under p_L, as
DualPI2 does. So "do what DualPI2 does" is the factor 1 on both, whatever the state, and with
both at 1 the decisions are DualPI2's own, draw for draw (tests) -- a network trained to imitate
dualpi2 no longer has to reproduce, on a log scale, a probability it reads in its input (the
probability output measured 1.3-1.4x DualPI2's classic probability at the median in closed
loop) -- and any decision stays DualPI2's controller times a bounded factor (safe by
construction: the PI integrator keeps acting on the queue). The classic signal is sent as
p_C mark: the queue disc drops the packets that cannot carry a mark (Not-ECT), and its overload
rule drops L4S packets when DualPI2 would. (ECN-capable classic packets in overload are marked
where DualPI2 drops them; k is DualPI2's default 2, so a run that sets the queue disc's
CouplingFactor to another value no longer has "factor 1 = DualPI2".) The head's third row is
unused (trained towards 1).

A teacher's decision in factor terms (:func:`to_factors`, the training targets): f_C =
sqrt(its p_C drop + p_C mark) / p'; f_L = its p_L / the p_L the request reports (DualPI2's epoch
p_L: the ramp at the L head's sojourn or k p', the larger -- the dualpi2 teacher's own p_L has
the same form, so its f_L is 1 where its p' is the queue disc's). Where the reference is 0 the
factor is 1 if the teacher sends no signal either, else the largest factor. That f_L is what the
decoding applies (to k p', under each packet's own ramp) only for DualPI2-like teachers: for a
teacher whose p_L has another form it is not, so training with this output accepts only
``distill_teacher: dualpi2`` (the sanity rung) for now.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from aqm_llm.agent.band import DUALPI2_COUPLING
from aqm_llm.agent.levels import FACTORS

#: ``PolicyConfig.epoch_output``: the head's epoch outputs are probabilities (agent.levels) or
#: factors on DualPI2's (this module).
PROBABILITY = "probability"
FACTOR = "factor"
EPOCH_OUTPUTS = (PROBABILITY, FACTOR)


def _ratio(value: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    top = FACTORS.levels[-1]
    safe = np.where(reference > 0, reference, 1.0)
    return np.where(reference > 0, np.minimum(value / safe, top), np.where(value > 0, top, 1.0))


def to_factors(probs: npt.ArrayLike, p_prime: npt.ArrayLike, p_l: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(..., 3) factors (f_L, f_C, 1) of decisions ``probs`` (..., 3: p_L mark, p_C drop,
    p_C mark) against DualPI2's ``p_prime`` and ``p_l`` (...)."""
    q = np.clip(np.nan_to_num(np.asarray(probs, np.float64), nan=0.0), 0.0, 1.0)
    pp = np.clip(np.asarray(p_prime, np.float64), 0.0, 1.0)
    pl = np.clip(np.asarray(p_l, np.float64), 0.0, 1.0)
    f_l = _ratio(q[..., 0], pl)
    f_c = _ratio(np.sqrt(np.minimum(q[..., 1] + q[..., 2], 1.0)), pp)
    return np.stack([f_l, f_c, np.ones_like(f_l)], axis=-1)


def from_factors(f_l: float, f_c: float, p_prime: float,
                 coupling: float = DUALPI2_COUPLING) -> tuple[float, float, float]:
    """(p_L mark, p_C drop, p_C mark) for factors ``f_l``, ``f_c`` on DualPI2's ``p_prime``
    (NaN or negative factors count as 0)."""
    def clean(x: float) -> float:
        return 0.0 if not x > 0.0 else min(float(x), float(FACTORS.levels[-1]))

    pp = min(max(float(p_prime), 0.0), 1.0)
    return min(coupling * clean(f_l) * pp, 1.0), 0.0, min((clean(f_c) * pp) ** 2, 1.0)


def decode_factor_logits(epoch_logits: npt.ArrayLike) -> tuple[float, float]:
    """(f_L, f_C) from one epoch's head logits (3, FACTORS.size)."""
    f = FACTORS.decode_logits(np.asarray(epoch_logits)[:2])
    return float(f[0]), float(f[1])
