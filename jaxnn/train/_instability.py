"""Loss spikes in a training history, and whether the sharpness fell across them.

At a step size above 2/λmax the loss first grows along the top eigendirection; either it
diverges, or (a *catapult*, Lewkowycz et al. 2020) the growth drives the iterate to a
flatter region, the sharpness drops below 2/η and the loss comes back down. Cohen et al.
(2021) see the same spikes, smaller, at the edge of stability. :func:`loss_spikes` finds
them by a stated rule, so that a claim about them is read off numbers, not off a plot.

References:
  Lewkowycz, Bahri, Dyer, Sohl-Dickstein and Gur-Ari, "The large learning rate phase of
  deep learning: the catapult mechanism" (2020), https://arxiv.org/abs/2003.02218.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from jaxnn import _checks

__all__ = ["Spike", "loss_spikes"]


class Spike(NamedTuple):
    """One excursion of the loss above ``factor`` × its running minimum.

    ``start``: the first step above; ``peak``: the step of the largest loss in it;
    ``end``: the first step back at or below the bound (None if it never came back:
    divergence, or the run ended inside the spike); ``height``: loss[peak] / the running
    minimum before ``start``; ``sharpness_before`` / ``sharpness_after``: the last
    measurement at or before ``start`` and the first at or after ``end`` (NaN without
    sharpness or without such a measurement); ``catapult``: the spike ended and the
    sharpness after it is below the sharpness before it."""

    start: int
    peak: int
    end: int | None
    height: float
    sharpness_before: float
    sharpness_after: float
    catapult: bool


def loss_spikes(
    loss: Any,
    *,
    factor: float = 2.0,
    floor: float | None = None,
    sharpness: Any = None,
    min_length: int = 1,
) -> list[Spike]:
    """The steps where the loss rises above ``factor`` × its running minimum.

    The rule: with m_t = min_{s<t} loss_s (the running minimum before step t) and the
    bound b_t = max(factor·m_t, floor), a spike starts at the first t with loss_t > b_t
    and ends at the first later step u with loss_u ≤ b_t (b fixed at its value at the
    start); a NaN or infinite loss counts as above. The floor keeps round-off at a
    converged loss from counting: by default √ε of the loss's dtype × |loss₀| (1.5e-8 ×
    |loss₀| in float64, 3.5e-4 × |loss₀| in float32). Spikes shorter than ``min_length``
    steps (start to end) are dropped; a spike that never ends is kept.

    Args:
      loss: (steps,) the per-step training loss (``FitResult.history["loss"]``).
      factor: the bound, > 1.
      floor: the least loss a spike must exceed (default above).
      sharpness: optional measurements of λmax, as the :class:`~jaxnn.train.HookHistory`
        of a sharpness hook (its record a dict with ``"sharpness"``, or an array) or a
        pair (steps, values).
      min_length: the fewest steps a spike that ended must last.

    Returns:
      The spikes in order, as :class:`Spike`s.
    """
    raw = np.asarray(loss)
    values = raw.astype(float)
    if values.ndim != 1:
        raise ValueError(f"loss must be a 1-D array of per-step losses, got shape {values.shape}")
    _checks.in_range("factor", factor, 1.0, low_open=True)
    if floor is None:
        eps = np.finfo(raw.dtype).eps if np.issubdtype(raw.dtype, np.floating) else 2.0**-52
        floor = float(np.sqrt(eps)) * (abs(values[0]) if values.size else 0.0)
    floor = float(_checks.in_range("floor", floor, 0.0))
    min_length = _checks.positive_int("min_length", min_length)
    steps, lam = _sharpness(sharpness)
    spikes, t = [], 1
    running = values[0] if values.size else np.nan
    while t < values.size:
        bound = max(factor * running, floor)
        if np.isfinite(values[t]) and values[t] <= bound:
            running = min(running, values[t])
            t += 1
            continue
        start, end = t, None
        while t < values.size:
            if np.isfinite(values[t]) and values[t] <= bound:
                end = t
                break
            t += 1
        part = values[start : (end if end is not None else values.size)]
        peak = start + int(np.argmax(np.where(np.isfinite(part), part, np.inf)))
        if end is None or end - start >= min_length:
            before = _last_at_or_before(steps, lam, start)
            after = np.nan if end is None else _first_at_or_after(steps, lam, end)
            spikes.append(
                Spike(
                    start,
                    peak,
                    end,
                    float(values[peak] / running) if running > 0 else float("inf"),
                    before,
                    after,
                    bool(end is not None and after < before),
                )
            )
        if end is None:
            break
    return spikes


def _sharpness(sharpness: Any) -> tuple[np.ndarray, np.ndarray]:
    if sharpness is None:
        return np.zeros(0, int), np.zeros(0)
    if hasattr(sharpness, "step") and hasattr(sharpness, "record"):
        record = sharpness.record
        record = record["sharpness"] if isinstance(record, dict) else record
        steps, lam = np.asarray(sharpness.step), np.asarray(record, float)
    else:
        try:
            steps, lam = (np.asarray(a) for a in sharpness)
        except (TypeError, ValueError):
            raise TypeError("sharpness must be a HookHistory or a pair (steps, values)") from None
    if steps.shape != lam.shape or steps.ndim != 1:
        raise ValueError(
            f"sharpness steps and values must be 1-D of one length, got {steps.shape} and "
            f"{lam.shape}"
        )
    return steps, lam.astype(float)


def _last_at_or_before(steps, lam, t) -> float:
    picks = np.nonzero(steps <= t)[0]
    return float(lam[picks[-1]]) if picks.size else float("nan")


def _first_at_or_after(steps, lam, t) -> float:
    picks = np.nonzero(steps >= t)[0]
    return float(lam[picks[0]]) if picks.size else float("nan")
