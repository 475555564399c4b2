"""The learned policy's epoch probabilities held within a band around DualPI2's own.

DualPI2 (RFC 9332) derives both classes' probabilities from one base probability p' of a PI
controller on the classic queue delay: p_L = min(k p', 1) (coupled L4S mark), p_C = p'^2. A policy
whose probabilities are expressed as a factor f on that p' -- p_L = min(k f p', 1), p_C = (f p')^2 --
with f held in [1/band, band] cannot leave the controller's region: where it errs in one direction
for long, the PI integrator moves p' to compensate, so queue delay still converges to the target
(safe by construction), and the policy shapes how DualPI2 gets there. The queue disc keeps the
native step on the L queue under p_L either way.
"""

from __future__ import annotations

import math


def within_band(probs: tuple[float, float, float], p_prime: float, band: float,
                coupling: float = 2.0) -> tuple[float, float, float]:
    """(p_L mark, p_C drop, p_C mark) with p_L in DualPI2's p_L x [1/band, band] (capped at 1) and
    the classic signal p_C drop + p_C mark in p'^2 x [1/band^2, band^2] (its drop/mark split kept;
    all mark when the policy gave none: the queue disc drops what cannot carry a mark)."""
    if not band >= 1.0 or not math.isfinite(band):
        raise ValueError(f"band must be a finite factor >= 1, got {band!r}")
    p_l, p_c_drop, p_c_mark = probs
    p = min(max(float(p_prime), 0.0), 1.0)
    p_l = min(max(p_l, min(coupling * p / band, 1.0)), min(coupling * p * band, 1.0))
    signal = p_c_drop + p_c_mark
    lo, hi = min((p / band) ** 2, 1.0), min((p * band) ** 2, 1.0)
    bounded = min(max(signal, lo), hi)
    if signal > 0:
        scale = bounded / signal
        return p_l, p_c_drop * scale, p_c_mark * scale
    return p_l, 0.0, bounded


#: The value that turns the band off where a band can be given (``--p-prime-band off``).
OFF = "off"


def parse_band(text: str) -> float | None:
    """A band given on a command line or in a file: a factor >= 1, or 'off' (None)."""
    if str(text).strip().lower() == OFF:
        return None
    try:
        band = float(text)
    except ValueError:
        band = math.nan
    if not band >= 1.0 or not math.isfinite(band):
        raise ValueError(f"bad p' band '{text}': expected a factor >= 1 or '{OFF}'")
    return band
