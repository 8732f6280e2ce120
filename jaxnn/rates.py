"""Convergence rates of gradient descent and momentum on a quadratic: the theory alone.

Near a minimum w* the loss is a quadratic (notes 001),

  E(w) ≈ E(w*) + ½ (w − w*)ᵀ H (w − w*),   H = U diag(λ) Uᵀ,  λ₁ ≤ … ≤ λ_P,

so one gradient-descent step w ← w − η∇E(w) moves each coordinate αᵢ = uᵢᵀ(w − w*) along
an eigenvector uᵢ on its own:

  αᵢ ← (1 − ηλᵢ) αᵢ.

Direction i converges iff |1 − ηλᵢ| < 1, so every direction converges iff η < 2/λmax. At
η = 1/λmax the top direction is solved in one step and the slowest contracts by 1 − 1/κ per
step, κ = λmax/λmin; the best fixed step η* = 2/(λmin + λmax) contracts every direction by
at most (κ − 1)/(κ + 1). (Erratum, notes 001: the notes call η = 1/λmax the fastest; it is
fastest along the λmax direction only, and the two rates 1 − 1/κ and (κ − 1)/(κ + 1) ≈ 1 −
2/κ each hold for their own η.)

With heavy-ball momentum (Δw ← −η∇E + μΔw, w ← w + Δw) each direction follows a two-term
recurrence αₜ₊₁ = p αₜ + q αₜ₋₁ with p = 1 + μ − ηλ, q = −μ, i.e. the iteration matrix
[[1 + μ − ηλ, −μ], [1, 0]]; Nesterov's look-ahead gives p = (1 − ηλ)(1 + μ), q = −(1 − ηλ)μ.
The rate is the spectral radius ρ of that matrix: the largest |r| over the roots of
r² − p r − q.

This module holds only these formulas (it needs no Hessian); :mod:`jaxnn.hessian` measures
λ and checks the rates on a real loss (:func:`jaxnn.hessian.check_rates`).

References:
  Goodfellow, Bengio and Courville, *Deep Learning* (2016), §4.3.1 and §8.2.
  Polyak, "Some methods of speeding up the convergence of iteration methods" (1964),
  https://doi.org/10.1016/0041-5553(64)90137-5.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp

from jaxnn import _checks
from jaxnn.base import Array

__all__ = [
    "PolyakStep",
    "max_stable_lr",
    "momentum_recurrence",
    "polyak_momentum",
    "predicted_rates",
    "predicted_rates_momentum",
    "spectral_radius",
]


def predicted_rates(eigenvalues: Any, lr: Any) -> Array:
    """Gradient descent's factor per eigendirection, αᵢ ← (1 − ηλᵢ) αᵢ (notes 001).

    Negative values mean the direction oscillates in sign; |1 − ηλᵢ| > 1 means it diverges.
    """
    _checks.in_range("lr", lr, 0.0, low_open=True)
    return 1.0 - lr * jnp.asarray(eigenvalues)


def momentum_recurrence(
    eigenvalues: Any, lr: Any, mu: Any, nesterov: bool = False
) -> tuple[Array, Array]:
    """(p, q) of each direction's recurrence αₜ₊₁ = p αₜ + q αₜ₋₁ under momentum.

    Heavy ball (Δw ← −η∇E + μΔw, w ← w + Δw): p = 1 + μ − ηλ, q = −μ, the iteration
    matrix [[1 + μ − ηλ, −μ], [1, 0]]. Nesterov (gradient at the look-ahead point):
    p = (1 − ηλ)(1 + μ), q = −(1 − ηλ)μ, i.e. characteristic polynomial
    r² − (1 − ηλ)(1 + μ) r + (1 − ηλ)μ. With μ = 0 both reduce to p = 1 − ηλ, q = 0.
    """
    _checks.in_range("lr", lr, 0.0, low_open=True)
    _checks.in_range("mu", mu, 0.0, 1.0, high_open=True)
    x = 1.0 - lr * jnp.asarray(eigenvalues)
    if nesterov:
        return x * (1.0 + mu), -x * mu
    return x + mu, jnp.full_like(x, -mu)


def spectral_radius(p: Any, q: Any) -> Array:
    """max |r| over the roots of r² − p r − q: (|p| + √(p² + 4q))/2 when the roots are
    real, √(−q) (their common modulus) when they are complex."""
    p, q = jnp.asarray(p), jnp.asarray(q)
    disc = p * p + 4.0 * q
    real = 0.5 * (jnp.abs(p) + jnp.sqrt(jnp.maximum(disc, 0.0)))
    return jnp.where(disc >= 0, real, jnp.sqrt(jnp.maximum(-q, 0.0)))


def predicted_rates_momentum(eigenvalues: Any, lr: Any, mu: Any, nesterov: bool = False) -> Array:
    """Momentum's rate per eigendirection: the spectral radius ρ of its 2 × 2 iteration
    matrix (see :func:`momentum_recurrence`); |αₜ| shrinks like ρᵗ (times t when the two
    roots coincide), and the direction diverges when ρ > 1."""
    return spectral_radius(*momentum_recurrence(eigenvalues, lr, mu, nesterov))


def max_stable_lr(
    lambda_max: Any, mu: Any = 0.0, nesterov: bool = False, *, ema: bool = False
) -> Any:
    """The largest stable step for curvature λmax (the same bound read as λ < … for a given η).

    Gradient descent: η < 2/λmax. Heavy ball: η < 2(1 + μ)/λmax (a root of the recurrence
    reaches −1 at ηλ = 2 + 2μ). Nesterov: η < 2(1 + μ)/((1 + 2μ) λmax) (a root reaches −1
    at (1 − ηλ)(1 + 2μ) = −1). ``ema=True``: the momentum is an average m ← μm + (1 − μ)g
    (Adam's first moment, μ = β₁), heavy ball with step η(1 − μ), so η < 2(1 + μ)/((1 −
    μ)λmax): read for the preconditioned curvature of Adam, λ < (2 + 2β₁)/((1 − β₁)η),
    38/η at β₁ = 0.9 (Cohen et al. 2022, https://arxiv.org/abs/2207.14484). RMSProp and
    AdaGrad (no momentum) keep λ < 2/η.
    """
    _checks.in_range("lambda_max", lambda_max, 0.0, low_open=True)
    _checks.in_range("mu", mu, 0.0, 1.0, high_open=True)
    bound = 2.0 * (1.0 + mu) / lambda_max
    if ema:
        bound = bound / (1.0 - mu)
    return bound / (1.0 + 2.0 * mu) if nesterov else bound


class PolyakStep(NamedTuple):
    """Polyak's optimal heavy-ball step for a quadratic with λ in [λmin, λmax]."""

    lr: float
    mu: float
    rate: float


def polyak_momentum(lambda_min: float, lambda_max: float) -> PolyakStep:
    """η = 4/(√λmax + √λmin)², μ = ((√κ − 1)/(√κ + 1))²; every direction then has spectral
    radius √μ = (√κ − 1)/(√κ + 1) ≈ 1 − 2/√κ (against (κ − 1)/(κ + 1) ≈ 1 − 2/κ without
    momentum); the extreme directions are critically damped (a double root)."""
    _checks.in_range("lambda_min", lambda_min, 0.0, low_open=True)
    _checks.in_range("lambda_max", lambda_max, float(lambda_min))
    smin, smax = math.sqrt(lambda_min), math.sqrt(lambda_max)
    rate = (smax - smin) / (smax + smin)
    return PolyakStep(lr=4.0 / (smax + smin) ** 2, mu=rate * rate, rate=rate)
