"""Learning-rate schedules: functions ``schedule(τ) -> η_τ`` of the step count τ.

Each is an optax-compatible schedule: τ may be a Python int or a traced integer, so a
schedule runs inside ``jit``/``lax.scan`` and can be passed as ``lr`` to any optimiser.

===================================  ====================================================
schedule                             η_τ
===================================  ====================================================
constant(lr)                         η
linear(lr0, lr_k, k)                 (1 − τ/k)η₀ + (τ/k)η_k for τ ≤ k, then η_k (notes 001)
power_law(lr0, s, c)                 η₀ (1 + τ/s)^c                             (notes 001)
exponential(lr0, c, s)               η₀ c^(τ/s)                                 (notes 001)
step(lr0, factor, every)             η₀ factor^⌊τ/every⌋
cosine_restarts(lr0, period, ...)    η_min + ½(η₀ − η_min)(1 + cos(π τ_cur / T_i))  (SGDR)
cyclic(lr_min, lr_max, half_period)  triangular: η_min → η_max → η_min every 2·half_period
===================================  ====================================================

The learning rate is ``lr`` here as in :mod:`jaxnn.optimizers` and ``fit``; the keywords of
jaxnn 0.1 (``eta``, ``eta0``, ``eta_k``, ``eta_min``, ``eta_max``) are still accepted.

``constant``, ``linear`` and ``step`` are optax's own schedules; the others are written
here in the notes' form.

References: Loshchilov & Hutter 2017 (SGDR); Smith 2017 (cyclical learning rates).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import optax

from jaxnn import _checks

__all__ = [
    "NAMES",
    "Schedule",
    "constant",
    "cosine_restarts",
    "cyclic",
    "exponential",
    "get",
    "linear",
    "power_law",
    "step",
]

Schedule = Callable[[Any], Any]

# the keywords of jaxnn 0.1, before the learning rate was called lr everywhere
_OLD_NAMES = _checks.renamed(eta="lr", eta0="lr0", eta_k="lr_k", eta_min="lr_min", eta_max="lr_max")


def _rate(name: str, value: Any) -> Any:
    return _checks.in_range(name, value, 0.0)


def _period(name: str, value: Any) -> Any:
    return _checks.in_range(name, value, 0.0, low_open=True)


@_OLD_NAMES
def constant(lr: float) -> Schedule:
    """η_τ = η for every step."""
    return optax.constant_schedule(_rate("lr", lr))


@_OLD_NAMES
def linear(lr0: float, lr_k: float, k: int) -> Schedule:
    """η_τ = (1 − τ/k)η₀ + (τ/k)η_k for τ ≤ k, held at η_k afterwards (notes 001)."""
    _rate("lr0", lr0)
    _rate("lr_k", lr_k)
    k = _checks.positive_int("k", k)
    return optax.linear_schedule(lr0, lr_k, k)


@_OLD_NAMES
def power_law(lr0: float, s: float, c: float) -> Schedule:
    """η_τ = η₀(1 + τ/s)^c (notes 001); c < 0 decays, like 1/τ^|c| for τ ≫ s."""
    _rate("lr0", lr0)
    _period("s", s)
    _checks.real_scalar("c", c)

    def schedule(count):
        return lr0 * (1.0 + jnp.asarray(count, jnp.result_type(float)) / s) ** c

    return schedule


@_OLD_NAMES
def exponential(lr0: float, c: float, s: float) -> Schedule:
    """η_τ = η₀ c^(τ/s) (notes 001): multiplied by c every s steps, smoothly."""
    _rate("lr0", lr0)
    _checks.in_range("c", c, 0.0, low_open=True)
    _period("s", s)

    def schedule(count):
        return lr0 * jnp.power(c, jnp.asarray(count, jnp.result_type(float)) / s)

    return schedule


@_OLD_NAMES
def step(lr0: float, factor: float, every: int) -> Schedule:
    """η_τ = η₀ factor^⌊τ/every⌋: multiplied by ``factor`` once every ``every`` steps."""
    _rate("lr0", lr0)
    _checks.in_range("factor", factor, 0.0, low_open=True)
    every = _checks.positive_int("every", every)
    return optax.exponential_decay(lr0, transition_steps=every, decay_rate=factor, staircase=True)


@_OLD_NAMES
def cosine_restarts(lr0: float, period: int, t_mult: float = 1.0, lr_min: float = 0.0) -> Schedule:
    """SGDR: cosine decay from η₀ to η_min over T_i steps, then a warm restart at η₀.

    Cycle i lasts T_i = period · t_mult^i steps and starts at
    S_i = period (t_mult^i − 1)/(t_mult − 1) (S_i = i·period when t_mult = 1). Within it,
    with τ_cur = τ − S_i: η_τ = η_min + ½(η₀ − η_min)(1 + cos(π τ_cur / T_i)).

    Args:
      lr0: η₀ ≥ η_min ≥ 0, the rate at every restart.
      period: T_0 ≥ 1, the first cycle's length in steps.
      t_mult: growth factor of the cycle length, ≥ 1.
      lr_min: the rate each cycle decays to.
    """
    _rate("lr0", lr0)
    _rate("lr_min", lr_min)
    period = _checks.positive_int("period", period)
    _checks.in_range("t_mult", t_mult, 1.0)
    if lr_min > lr0:
        raise ValueError(f"lr_min must be at most lr0={lr0}, got lr_min={lr_min}")

    def start(i):
        if t_mult == 1.0:
            return period * i
        return period * (t_mult**i - 1.0) / (t_mult - 1.0)

    def schedule(count):
        tau = jnp.asarray(count, jnp.result_type(float))
        if t_mult == 1.0:
            i = jnp.floor(tau / period)
        else:
            i = jnp.floor(jnp.log1p(tau * (t_mult - 1.0) / period) / math.log(t_mult))
            # correct the logarithm's round-off at cycle boundaries
            i = jnp.where(start(i + 1) <= tau, i + 1, i)
            i = jnp.where(start(i) > tau, i - 1, i)
        length = period * t_mult**i
        progress = (tau - start(i)) / length
        return lr_min + 0.5 * (lr0 - lr_min) * (1.0 + jnp.cos(jnp.pi * progress))

    return schedule


@_OLD_NAMES
def cyclic(lr_min: float, lr_max: float, half_period: int) -> Schedule:
    """Triangular cyclic rate: up from η_min to η_max over ``half_period`` steps, back down.

    η_τ = η_min + (η_max − η_min) · (1 − |(τ mod 2h)/h − 1|) with h = half_period,
    i.e. η_min at τ = 0, 2h, 4h, ... and η_max at τ = h, 3h, ... The phase τ mod 2h is
    taken first (exactly, in the step count's own integer type), so the rate is as accurate
    at step 10⁷ as at step 1: dividing τ itself by h in float32 would lose the phase.
    """
    _rate("lr_min", lr_min)
    _rate("lr_max", lr_max)
    half_period = _checks.positive_int("half_period", half_period)
    if lr_min > lr_max:
        raise ValueError(f"lr_min must be at most lr_max={lr_max}, got lr_min={lr_min}")

    def schedule(count):
        phase = jnp.mod(jnp.asarray(count), 2 * half_period).astype(jnp.result_type(float))
        return lr_min + (lr_max - lr_min) * (1.0 - jnp.abs(phase / half_period - 1.0))

    return schedule


_SCHEDULES = {
    "constant": constant,
    "linear": linear,
    "power_law": power_law,
    "exponential": exponential,
    "step": step,
    "cosine_restarts": cosine_restarts,
    "cyclic": cyclic,
}

NAMES = tuple(_SCHEDULES)


def get(name: str | Schedule, **kwargs: Any) -> Schedule:
    """Builds the schedule called ``name`` with ``kwargs``; a callable is returned as is."""
    if callable(name):
        return name
    fn = _checks.resolve("schedule", name, _SCHEDULES)
    _checks.keywords("schedule", name, fn, kwargs)
    return fn(**kwargs)
