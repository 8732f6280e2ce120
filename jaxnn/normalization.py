"""Data, batch and layer normalisation as pure functions (notes 001, §"Normalization").

Notation: a_ni is the value of unit (feature) i for example n; K examples in a
minibatch, M units in a layer; γ, β learnable scale and shift; δ > 0 keeps the
denominator away from zero.

* data normalisation:  x̃_ni = (x_ni − μ_i) / σ_i, with μ_i, σ_i from the *training* data
* batch normalisation: μ_i = (1/K) Σ_n a_ni,  σ_i² = (1/K) Σ_n (a_ni − μ_i)²  (over the batch)
                       â_ni = (a_ni − μ_i) / √(σ_i² + δ),  ã_ni = γ_i â_ni + β_i
* layer normalisation: μ_n = (1/M) Σ_i a_ni,  σ_n² = (1/M) Σ_i (a_ni − μ_n)²  (per example)
                       â_ni = (a_ni − μ_n) / √(σ_n² + δ),  ã_ni = γ_i â_ni + β_i

Erratum (notes 001): the notes' layer-norm variance subtracts μ_i, a per-unit mean; the
correct form, used here, subtracts the per-example mean μ_n.

Batch norm keeps running averages for inference, with 0 < α < 1:
  μ̄ ← α μ̄ + (1 − α) μ_i,   v̄ ← α v̄ + (1 − α) σ_i².
jaxnn keeps the running *variance* v̄ (notes 001 averages σ; both are usable, and the
variance is what libraries keep), and normalises with √(v̄ + δ) at inference.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _checks
from jaxnn.base import Array

__all__ = [
    "DataStats",
    "batch_norm",
    "fit_standardizer",
    "init_batch_norm",
    "layer_norm",
    "standardize",
]


class DataStats(NamedTuple):
    """Per-feature statistics of a training split: ``mean`` and ``std``, shape (features,).

    ``std`` holds 1 where the feature is constant (σ = 0), so standardising maps it to 0
    instead of dividing by zero.
    """

    mean: Array
    std: Array


def fit_standardizer(x: Any, *, name: str = "x") -> DataStats:
    """Computes μ_i = (1/N) Σ_n x_ni and σ_i = √((1/N) Σ_n (x_ni − μ_i)²) over axis 0.

    Args:
      x: training inputs, shape ``(N, features)`` (or ``(N, ...)``), N ≥ 1.
      name: the argument name used in error messages.

    Returns:
      ``DataStats(mean, std)`` with shape ``x.shape[1:]``; σ = 0 is replaced by 1.

    Raises:
      ValueError: if ``x`` is empty, has rank 0, or contains NaN or infinity.
    """
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, features) with N >= 1, got shape {x.shape}")
    _checks.finite(name, x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return DataStats(*_moments(x))


@jax.jit
def _moments(x: Array) -> tuple[Array, Array]:
    """(μ, σ) over the rows, σ = 1 where a feature is constant."""
    mean = jnp.mean(x, axis=0)
    std = jnp.std(x, axis=0)
    return mean, jnp.where(std > 0, std, jnp.ones_like(std))


def standardize(x: Any, stats: DataStats, *, name: str = "x") -> Array:
    """x̃ = (x − μ) / σ with μ, σ from :func:`fit_standardizer` (applied to any split).

    Raises:
      ValueError: if the feature shape of ``x`` differs from the statistics' or a concrete
        ``x`` contains NaN or infinity.
    """
    x = jnp.asarray(x)
    if x.shape[1:] != stats.mean.shape and x.shape != stats.mean.shape:
        raise ValueError(
            f"{name} has feature shape {x.shape[1:]}, but the statistics were "
            f"fitted on feature shape {stats.mean.shape}"
        )
    _checks.finite(name, x)
    return _standardize(x, stats.mean, stats.std)


@jax.jit
def _standardize(x: Array, mean: Array, std: Array) -> Array:
    return (x - mean) / std


def init_batch_norm(features: int, dtype: Any = jnp.float32) -> tuple[dict, dict]:
    """Initial batch-norm parameters and running averages for ``features`` units.

    Returns:
      ``({"gamma": ones, "beta": zeros}, {"mean": zeros, "var": ones})``, each of shape
      ``(features,)``: the identity transform, and running statistics of a standard normal.
    """
    params = {"gamma": jnp.ones((features,), dtype), "beta": jnp.zeros((features,), dtype)}
    running = {"mean": jnp.zeros((features,), dtype), "var": jnp.ones((features,), dtype)}
    return params, running


def _check_affine(a: Array, gamma: Array, beta: Array) -> None:
    if a.ndim < 1 or jnp.shape(gamma) != a.shape[-1:] or jnp.shape(beta) != a.shape[-1:]:
        raise ValueError(
            f"gamma and beta must have shape {a.shape[-1:]} (the last axis of "
            f"the input), got gamma.shape={jnp.shape(gamma)}, "
            f"beta.shape={jnp.shape(beta)}"
        )


def batch_norm(
    a: Array,
    gamma: Array,
    beta: Array,
    running: dict,
    *,
    train: bool,
    alpha: float = 0.9,
    delta: float = 1e-5,
) -> tuple[Array, dict]:
    """Batch normalisation of pre-activations ``a`` over the batch axis.

    In training, normalises with the batch's own μ_i, σ_i² (every axis but the last is a
    batch axis) and returns updated running averages μ̄ ← αμ̄ + (1−α)μ_i,
    v̄ ← αv̄ + (1−α)σ_i². At inference, normalises with μ̄, v̄ and returns them unchanged.
    Output: γ_i (a_ni − μ_i)/√(σ_i² + δ) + β_i.

    Args:
      a: pre-activations, shape ``(K, M)`` (or ``(K, ..., M)``); in training K ≥ 2.
      gamma, beta: learnable scale and shift, shape ``(M,)``.
      running: ``{"mean": (M,), "var": (M,)}`` running averages.
      train: a Python bool (static): batch statistics or running averages.
      alpha: running-average factor, 0 ≤ α < 1 (may be traced; then unchecked).
      delta: δ > 0 added to the variance.

    Returns:
      ``(normalised a, new running averages)``. The running averages carry no gradient.
    """
    if not isinstance(train, bool):
        raise TypeError(f"train must be a Python bool, got {train!r}")
    _check_affine(a, gamma, beta)
    _checks.in_range("alpha", alpha, 0.0, 1.0, high_open=True)
    _checks.in_range("delta", delta, 0.0, low_open=True)
    if train:
        k = int(np.prod(a.shape[:-1]))
        if k < 2:
            raise ValueError(
                f"batch norm in training needs at least 2 examples in the batch to "
                f"estimate a variance, got input of shape {a.shape}"
            )
        axes = tuple(range(a.ndim - 1))
        mean = jnp.mean(a, axis=axes)
        var = jnp.mean(jnp.square(a - mean), axis=axes)
        new_running = jax.tree.map(
            lambda old, new: jax.lax.stop_gradient(alpha * old + (1.0 - alpha) * new),
            running,
            {"mean": mean, "var": var},
        )
    else:
        mean, var = running["mean"], running["var"]
        new_running = running
    a_hat = (a - mean) * jax.lax.rsqrt(var + delta)
    return gamma * a_hat + beta, new_running


def layer_norm(a: Array, gamma: Array, beta: Array, *, delta: float = 1e-5) -> Array:
    """Layer normalisation over the last axis, separately for each example.

    Output: γ_i (a_ni − μ_n)/√(σ_n² + δ) + β_i with μ_n, σ_n² the mean and (1/M) variance
    of example n's M units. No running state: training and inference are the same.

    Args:
      a: pre-activations, shape ``(..., M)``.
      gamma, beta: learnable scale and shift, shape ``(M,)``.
      delta: δ > 0 added to the variance.
    """
    _check_affine(a, gamma, beta)
    _checks.in_range("delta", delta, 0.0, low_open=True)
    mean = jnp.mean(a, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(a - mean), axis=-1, keepdims=True)
    return gamma * (a - mean) * jax.lax.rsqrt(var + delta) + beta
