"""Predicted against observed convergence rates, per Hessian eigendirection."""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxnn import _checks, _draws, optimizers
from jaxnn.base import Array, Params
from jaxnn.hessian._matrix import LossFn, Spectrum, spectrum
from jaxnn.rates import momentum_recurrence, predicted_rates, spectral_radius

__all__ = ["RateCheck", "check_rates"]


class RateCheck(NamedTuple):
    """Predicted against observed convergence rates, per eigendirection (ascending λ).

    Fields:
      eigenvalues: λᵢ.
      predicted: 1 − ηλᵢ (plain descent; signed), or the spectral radius ρᵢ (momentum).
      observed: the fitted rate on the same footing (NaN where the direction fell below
        round-off too fast to measure, e.g. a rate of exactly 0).
      max_gap: the largest |predicted − observed| over measured directions (with momentum,
        also over the recurrence coefficients p and q).
      diverging: |predicted| > 1 (the direction grows).
      growth: |observed|, the observed factor by which |αᵢ| changes per step.
      predicted_pq, observed_pq: (P, 2) arrays of the recurrence (p, q) with momentum;
        None for plain descent.
      alpha: αᵢ(t) = uᵢᵀ(wₜ − w*) for t = 0 … steps, shape (steps + 1, P).
      steps_used: how many ratios (or recurrence rows) each fit used.
      lr, mu, nesterov: the run's settings.
      grad_norm: ‖∇E(w*)‖ at the given point (should be ≈ 0: it is meant to be a minimum).
      floor: per step, shape (steps + 1, 1): |αᵢ(t)| below floor[t] was treated as
        round-off, floor[t] = 100·ε·(‖w*‖/√P + ‖wₜ − w*‖), about 100 times the rounding
        error of one coordinate (a diverging direction raises it for all the others).
    """

    eigenvalues: np.ndarray
    predicted: np.ndarray
    observed: np.ndarray
    max_gap: float
    diverging: np.ndarray
    growth: np.ndarray
    predicted_pq: np.ndarray | None
    observed_pq: np.ndarray | None
    alpha: np.ndarray
    steps_used: np.ndarray
    lr: float
    mu: float
    nesterov: bool
    grad_norm: float
    floor: np.ndarray


@functools.partial(jax.jit, static_argnames=("loss_fn", "steps", "nesterov"))
def _descent_path(
    loss_fn: LossFn,
    params_star: Params,
    start: Array,
    velocity: Array,
    basis: Array,
    lr: Array,
    mu: Array,
    steps: int,
    nesterov: bool,
) -> tuple[Array, Array]:
    """α(t) = Uᵀ(wₜ − w*) for t = 0 … steps of jaxnn's momentum/nesterov from ``start``
    with the velocity (optax's ``trace``) set to ``velocity``, and ‖∇E(w*)‖."""
    flat_star, unravel = ravel_pytree(params_star)
    grad = jax.grad(lambda x: loss_fn(unravel(x)))
    make = optimizers.nesterov if nesterov else optimizers.momentum
    opt = make(lr, mu)

    def step(carry, _):
        x, state = carry
        updates, state = opt.update(grad(x), state, x)
        x = optax.apply_updates(x, updates)
        return (x, state), jnp.asarray(x) - flat_star

    state = optax.tree_utils.tree_set(opt.init(start), trace=velocity)
    _, path = lax.scan(step, (start, state), None, length=steps)
    path = jnp.concatenate([(start - flat_star)[None], path])
    return path @ basis, jnp.linalg.norm(grad(flat_star))


def _fit_ratio(alpha: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares r in αₜ₊₁ ≈ r αₜ over steps with both |α| above the floor: Σαₜ₊₁αₜ / Σαₜ²."""
    a0, a1 = alpha[:-1], alpha[1:]
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (
            (np.abs(a0) >= floor[:-1])
            & (np.abs(a1) >= floor[1:])
            & np.isfinite(a0)
            & (np.isfinite(a1))
        )
        num = np.sum(np.where(ok, a1 * a0, 0.0), axis=0)
        den = np.sum(np.where(ok, a0 * a0, 0.0), axis=0)
    used = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(used >= 1, num / den, np.nan), used


def _fit_recurrence(alpha: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (p, q) in αₜ₊₁ ≈ p αₜ + q αₜ₋₁ per direction, over rows where αₜ or
    αₜ₋₁ is above the floor; NaN with fewer than 3 rows or a rank-deficient fit.

    Solved by QR, not the normal equations: when one root dominates, the columns αₜ and
    αₜ₋₁ are nearly parallel and the normal equations would square that ill-conditioning.
    """
    y, x1, x2 = alpha[2:], alpha[1:-1], alpha[:-2]
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (
            ((np.abs(x1) >= floor[1:-1]) | (np.abs(x2) >= floor[:-2]))
            & np.isfinite(y)
            & (np.isfinite(x1) & np.isfinite(x2))
        )
    design = np.stack([np.where(ok, x1, 0.0).T, np.where(ok, x2, 0.0).T], axis=-1)  # (P, T, 2)
    target = np.where(ok, y, 0.0).T[..., None]
    q_factor, r = np.linalg.qr(design)
    rhs = np.swapaxes(q_factor, -1, -2) @ target
    r11, r12, r22 = r[:, 0, 0], r[:, 0, 1], r[:, 1, 1]
    used = ok.sum(axis=0)
    scale = np.maximum(np.abs(r11), np.abs(r22))
    good = (used >= 3) & (np.abs(r22) > 1e2 * np.finfo(alpha.dtype).eps * scale) & (np.abs(r11) > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(good, rhs[:, 1, 0] / r22, np.nan)
        p = np.where(good, (rhs[:, 0, 0] - r12 * q) / r11, np.nan)
    return np.stack([p, q], axis=1), used


def check_rates(
    loss_fn: LossFn,
    params_star: Params,
    lr: float,
    steps: int = 50,
    *,
    mu: float = 0.0,
    nesterov: bool = False,
    key: Any,
    perturbation: float | None = None,
    spec: Spectrum | None = None,
) -> RateCheck:
    """Runs descent from a perturbed minimum and compares each direction's rate with theory.

    Starts at w₀ = w* + Σᵢ cᵢuᵢ with |cᵢ| equal and random signs (a component in every
    eigendirection), runs ``steps`` steps of jaxnn's optimiser (``momentum(lr, mu)`` or
    ``nesterov(lr, mu)``; μ = 0 is plain gradient descent; with μ > 0 the velocity starts
    at Σᵢ c′ᵢuᵢ, independent signs, not at 0, so that both roots of every direction are
    excited and the fit below can see them), projects wₜ − w* on the
    eigenvectors, αᵢ(t) = uᵢᵀ(wₜ − w*), and fits per direction:

    * μ = 0: r̂ᵢ = Σₜ αᵢ(t+1)αᵢ(t) / Σₜ αᵢ(t)², least squares over the steps where |αᵢ| is
      above round-off (NaN where fewer than two such steps remain), against 1 − ηλᵢ.
    * μ > 0: (p̂ᵢ, q̂ᵢ) of αₜ₊₁ = p̂ αₜ + q̂ αₜ₋₁ by least squares (a single ratio cannot
      describe oscillating or critically damped directions), and the spectral radius of
      r² − p̂r − q̂, against :func:`momentum_recurrence` and
      :func:`predicted_rates_momentum`.

    The prediction holds where E is quadratic, so w* must be a minimum to high accuracy
    (see :func:`find_minimum`; ``grad_norm`` in the result says how close) and the
    perturbation small. Use float64 (``jax_enable_x64``) for tight comparisons.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``.
      params_star: the minimum w*.
      lr: the step η > 0.
      steps: steps to run (≥ 2; ≥ 3 with momentum).
      mu: momentum μ in [0, 1).
      nesterov: use Nesterov's look-ahead.
      key: PRNG key for the signs of the perturbation (required; typed or legacy).
      perturbation: |cᵢ| per direction; default √ε·max(1, ‖w*‖)/√P (ε the machine
        epsilon), which balances the error of the quadratic model (∝ |cᵢ|) against
        round-off (∝ ε/|cᵢ|).
      spec: a :class:`Spectrum` with eigenvectors at ``params_star``, if already computed.

    Returns:
      A :class:`RateCheck`.
    """
    _checks.in_range("lr", lr, 0.0, low_open=True)
    _checks.in_range("mu", mu, 0.0, 1.0, high_open=True)
    steps = _checks.positive_int("steps", steps, 3 if mu else 2)
    if perturbation is not None:
        _checks.in_range("perturbation", perturbation, 0.0, low_open=True)
    if spec is None:
        spec = spectrum(loss_fn, params_star, vectors=True)
    if not isinstance(spec, Spectrum) or spec.eigenvectors is None:
        raise ValueError("spec must be a Spectrum computed with vectors=True at params_star")
    vectors = spec.eigenvectors
    flat_star = ravel_pytree(params_star)[0]
    size = flat_star.shape[0]
    if vectors.shape != (size, size):
        raise ValueError(
            f"spec has eigenvectors of shape {vectors.shape}, but params_star has {size} parameters"
        )
    dtype = np.dtype(flat_star.dtype)
    eps = float(np.finfo(dtype).eps)
    host_star = np.asarray(flat_star)
    norm = float(np.linalg.norm(host_star))
    if perturbation is None:
        perturbation = math.sqrt(eps) * max(1.0, norm) / math.sqrt(size)
    key = _checks.prng_key("key", key)
    # ±1 signs from the key; the start is built on the host (no program per problem size)
    signs = np.where(
        np.asarray(_draws.standard("uniform", key, (2, size), dtype)) < 0, -1.0, 1.0
    ).astype(dtype)
    basis = np.asarray(vectors, dtype)
    start = jnp.asarray(host_star + basis @ (perturbation * signs[0]))
    velocity = jnp.asarray(basis @ (perturbation * signs[1]) if mu else np.zeros_like(host_star))
    basis = jnp.asarray(basis)
    with jax.default_matmul_precision("highest"):
        alpha, grad_norm = _descent_path(
            loss_fn,
            params_star,
            start,
            velocity,
            basis,
            jnp.asarray(lr, dtype),
            jnp.asarray(mu, dtype),
            steps,
            bool(nesterov),
        )
    alpha = np.asarray(alpha)
    # 100 × the round-off in αᵢ(t): ε times the sizes of w* and of the whole deviation
    floor = 100 * eps * (norm / math.sqrt(size) + np.linalg.norm(alpha, axis=1, keepdims=True))
    with np.errstate(over="ignore", invalid="ignore"):
        floor = np.where(np.isfinite(floor), floor, np.inf)
    lam = spec.eigenvalues
    if mu:
        pred_pq = np.stack(
            [np.asarray(v) for v in momentum_recurrence(lam, lr, mu, nesterov)], axis=1
        )
        obs_pq, used = _fit_recurrence(alpha, floor)
        predicted = np.asarray(spectral_radius(pred_pq[:, 0], pred_pq[:, 1]))
        observed = np.asarray(spectral_radius(obs_pq[:, 0], obs_pq[:, 1]))
        gaps = np.concatenate([np.abs(predicted - observed), np.abs(pred_pq - obs_pq).ravel()])
    else:
        pred_pq = obs_pq = None
        predicted = np.asarray(predicted_rates(lam, lr))
        observed, used = _fit_ratio(alpha, floor)
        gaps = np.abs(predicted - observed)
    gaps = gaps[np.isfinite(gaps)]
    return RateCheck(
        eigenvalues=lam,
        predicted=predicted,
        observed=observed,
        max_gap=float(gaps.max()) if gaps.size else math.nan,
        diverging=np.abs(predicted) > 1.0,
        growth=np.abs(observed),
        predicted_pq=pred_pq,
        observed_pq=obs_pq,
        alpha=alpha,
        steps_used=used,
        lr=float(lr),
        mu=float(mu),
        nesterov=bool(nesterov),
        grad_norm=float(grad_norm),
        floor=floor,
    )
