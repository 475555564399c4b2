"""The learned policy's epoch probabilities held within a band around DualPI2's own.

DualPI2 (RFC 9332) derives both classes' probabilities from one base probability p' of a PI
controller on the classic queue delay: p_L = min(k p', 1) (coupled L4S mark), p_C = p'^2. A policy
whose probabilities are expressed as a factor f on that p' -- p_L = min(k f p', 1), p_C = (f p')^2 --
with f held in [1/band, band] cannot leave the controller's region: where it errs in one direction
for long, the PI integrator moves p' to compensate, so queue delay still converges to the target
(safe by construction), and the policy shapes how DualPI2 gets there. The queue disc keeps the
native step on the L queue under p_L either way.

Three ways to hold the network's three probabilities in the band:

- independent (``FACTOR``, the first checkpoints'): p_L and the classic signal are each clamped
  to their own range, so the policy may choose one factor for L4S and another for classic
  traffic -- and so move the rate balance between the classes that DualPI2's coupling sets;
- coupled (``coupled:FACTOR``): one factor f for both, the geometric mean of the two factors the
  network implies (each first clamped to the band), so p_L / (k p') = sqrt(p_C) / p' = f: the
  policy shapes how strongly DualPI2 acts, never which class pays;
- on the ramp (``ramp:FACTOR``): as independent, but p_L is held around DualPI2's epoch p_L as the
  queue disc reports it (scalar p_l: max(native ramp at the L head's sojourn, k p')), not around
  k p' alone. The dualpi2 teacher's p_L carries that ramp (it marks the epoch's L packets with the
  head's ramp probability), so a band on k p' alone cuts off what the network learned from it
  whenever the L queue stands above the ramp's start while p' is small (measured on the held-out
  Wi-Fi setting, seed 101: the teacher's mean p_L 0.106, the shipped policy's 0.043 under the
  band on k p'; the network trained only to imitate dualpi2, with no band, 0.032 against a mean
  k p' of 0.034: it does not learn the ramp's step on its own). Closed loop it trades L4S share
  for L4S tail on Wi-Fi and lengthens the L4S tail where capacity collapses (README).
"""

from __future__ import annotations

import math


#: The band's forms (module docstring): each probability on its own range, one factor for both
#: classes, or p_L around DualPI2's epoch p_L (its ramp included).
INDEPENDENT = "independent"
COUPLED_FORM = "coupled"
RAMP_FORM = "ramp"
FORMS = (INDEPENDENT, COUPLED_FORM, RAMP_FORM)
#: DualPI2's coupling factor k (RFC 9332; the queue disc's CouplingFactor default).
DUALPI2_COUPLING = 2.0


def within_band(probs: tuple[float, float, float], p_prime: float, band: float,
                coupling: float = DUALPI2_COUPLING, *, form: str = INDEPENDENT,
                p_l_reference: float | None = None) -> tuple[float, float, float]:
    """(p_L mark, p_C drop, p_C mark) with p_L in k p' x [1/band, band] (capped at 1) and
    the classic signal p_C drop + p_C mark in p'^2 x [1/band^2, band^2] (its drop/mark split kept;
    all mark when the policy gave none: the queue disc drops what cannot carry a mark).
    ``form`` coupled: both with one factor on p'; ramp: p_L in ``p_l_reference`` (DualPI2's epoch
    p_L, ramp included, required) x [1/band, band] instead (module docstring)."""
    if not band >= 1.0 or not math.isfinite(band):
        raise ValueError(f"band must be a finite factor >= 1, got {band!r}")
    if form not in FORMS:
        raise ValueError(f"band form must be one of {', '.join(FORMS)}, got {form!r}")
    if form == RAMP_FORM and p_l_reference is None:
        raise ValueError("a band on the ramp needs p_l_reference (DualPI2's epoch p_L)")
    p_l, p_c_drop, p_c_mark = probs
    p = min(max(float(p_prime), 0.0), 1.0)
    signal = p_c_drop + p_c_mark
    if form == COUPLED_FORM and p > 0.0:
        def clamp(f: float) -> float:
            return min(max(f, 1.0 / band), band)

        f = math.sqrt(clamp(p_l / (coupling * p)) * clamp(math.sqrt(max(signal, 0.0)) / p))
        p_l, bounded = min(coupling * p * f, 1.0), min((p * f) ** 2, 1.0)
    else:
        ref = max(float(p_l_reference), 0.0) if form == RAMP_FORM else coupling * p
        p_l = min(max(p_l, min(ref / band, 1.0)), min(ref * band, 1.0))
        lo, hi = min((p / band) ** 2, 1.0), min((p * band) ** 2, 1.0)
        bounded = min(max(signal, lo), hi)
    if signal > 0:
        scale = bounded / signal
        return p_l, p_c_drop * scale, p_c_mark * scale
    return p_l, 0.0, bounded


#: The value that turns the band off where a band can be given (``--p-prime-band off``).
OFF = "off"
#: The prefix of a coupled band (``--p-prime-band coupled:2``).
COUPLED = f"{COUPLED_FORM}:"
#: The prefix of a band whose p_L is held around DualPI2's epoch p_L (``--p-prime-band ramp:2``).
RAMP = f"{RAMP_FORM}:"


def parse_band(text: str) -> float | None:
    """The factor of a band given on a command line or in a file: ``FACTOR``,
    ``coupled:FACTOR`` or ``ramp:FACTOR`` (a factor >= 1), or 'off' (None)."""
    value = str(text).strip()
    if value.lower() == OFF:
        return None
    form = band_form(value)
    prefix = "" if form == INDEPENDENT else f"{form}:"
    try:
        band = float(value[len(prefix):])
    except ValueError:
        band = math.nan
    if not band >= 1.0 or not math.isfinite(band):
        raise ValueError(f"bad p' band '{text}': expected a factor >= 1, {COUPLED}FACTOR, "
                         f"{RAMP}FACTOR or '{OFF}'")
    return band


def band_form(text: str) -> str:
    """The form of a band given as text: coupled (``coupled:FACTOR``), ramp (``ramp:FACTOR``) or
    independent (a plain factor, or 'off')."""
    value = str(text).strip().lower()
    return COUPLED_FORM if value.startswith(COUPLED) else RAMP_FORM if value.startswith(RAMP) else INDEPENDENT
