"""Whole-spectrum estimates from random probes: the trace (Hutchinson, Hutch++), the
diagonal, and the spectral density."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxnn import _checks
from jaxnn.base import Params, PRNGKey
from jaxnn.curvature import Curvature, full_precision
from jaxnn.spectral import _common as common
from jaxnn.spectral._eigen import lanczos_jit, tridiagonal

__all__ = [
    "Density",
    "DiagonalEstimate",
    "TraceEstimate",
    "Tree",
    "hessian_diagonal",
    "hutchinson_trace",
    "hutchpp_trace",
    "spectral_density",
]

Tree = Any


class TraceEstimate(NamedTuple):
    """``trace`` ≈ mean of zᵀAz; ``stderr`` its standard error (sample std / √probes);
    ``samples`` the probes' zᵀAz (floats and a NumPy array from :func:`hutchinson_trace`,
    arrays from the jit-compatible :func:`hutchpp_trace`)."""

    trace: Any
    stderr: Any
    samples: Any


@full_precision
def hutchinson_trace(
    loss_fn: Callable | Curvature,
    params: Params,
    *,
    key: PRNGKey,
    probes: int = 100,
    mask: Any = None,
) -> TraceEstimate:
    """Hutchinson's estimator: tr A = E[zᵀAz] for z with independent ±1 entries
    (Rademacher), whose variance 2 Σ_{i≠j} A²ᵢⱼ is the least among such probes. Runs the
    probes in ``lax.map``: one product with A each."""
    key = _checks.prng_key("key", key)
    probes = _checks.positive_int("probes", probes, 2)
    block = common.block(mask, params)
    samples = np.asarray(
        _probe_quadratics(common.matvec(loss_fn), params, block, jax.random.split(key, probes)),
        float,
    )
    return TraceEstimate(
        float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(probes)), samples
    )


@functools.partial(jax.jit, static_argnums=0)
def _probe_quadratics(matvec, params, block, keys):
    op = common.restricted(matvec, params, block)

    def one(k):
        z = common.probe(k, params, block)
        return optax.tree.vdot(z, op(z))

    return lax.map(one, keys)


@full_precision
def hutchpp_trace(
    loss_fn: Callable | Curvature,
    params: Params,
    *,
    key: PRNGKey,
    matvecs: int = 99,
    mask: Any = None,
) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco and Woodruff, "Hutch++: optimal stochastic trace
    estimation" (2021), https://doi.org/10.1137/1.9781611976496.16): tr A with ``matvecs``
    products in all.

    With s = ⌊matvecs/3⌋ Rademacher probes S, Q = an orthonormal basis of AS (s products);
    tr A = tr(QᵀAQ) + tr((I − QQᵀ)A(I − QQᵀ)): the first term exactly (s products), the
    second by Hutchinson with the remaining g = matvecs − 2s probes projected off Q. The
    top of the spectrum lands in Q, so where a few eigenvalues dominate (a network's
    Hessian outliers) the error falls like 1/matvecs instead of Hutchinson's 1/√matvecs.
    Unbiased for any Q.

    Args:
      loss_fn: ``loss_fn(params) -> scalar`` or a :class:`Curvature`.
      params: the point.
      key: the probes' PRNG key.
      matvecs: products with A in all, at least 6 (two probes for the standard error).
      mask: restrict A to a block (per-layer traces).

    Returns:
      A :class:`TraceEstimate`: ``trace``, ``stderr`` (over the g residual probes; the
      low-rank part has none) and ``samples`` (tr(QᵀAQ) + each probe's residual term), as
      arrays. jit-compatible; the s + g probe vectors are held as one (·, P) matrix.
    """
    key = _checks.prng_key("key", key)
    matvecs = _checks.positive_int("matvecs", matvecs, 6)
    block = common.block(mask, params)
    sketch = matvecs // 3
    low, samples = _hutchpp(
        common.matvec(loss_fn), params, block, key, sketch, matvecs - 2 * sketch
    )
    samples = low + samples
    stderr = jnp.std(samples, ddof=1) / math.sqrt(samples.shape[0])
    return TraceEstimate(jnp.mean(samples), stderr, samples)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _hutchpp(matvec, params, block, key, sketch, probes):
    apply = common.flat(common.restricted(matvec, params, block), params)
    flat_block = None if block is None else ravel_pytree(block)[0]
    size = ravel_pytree(params)[0].shape[0]
    dtype = common.dtype(params)

    def rademacher(k, n):
        z = jax.random.rademacher(k, (n, size), dtype)
        return z if flat_block is None else z * flat_block

    q, _ = jnp.linalg.qr(lax.map(apply, rademacher(jax.random.fold_in(key, 0), sketch)).T)
    low = jnp.sum(q.T * lax.map(apply, q.T))
    g = rademacher(jax.random.fold_in(key, 1), probes)
    g = g - (g @ q) @ q.T
    return low, jnp.sum(g * lax.map(apply, g), axis=1)


class DiagonalEstimate(NamedTuple):
    """``diagonal`` ≈ the diagonal of A and ``stderr`` its standard error entry by entry,
    both pytrees shaped like the params."""

    diagonal: Tree
    stderr: Tree


@full_precision
def hessian_diagonal(
    loss_fn: Callable | Curvature,
    params: Params,
    *,
    key: PRNGKey,
    probes: int = 100,
    mask: Any = None,
) -> DiagonalEstimate:
    """Hutchinson's diagonal estimator: diag(A) = E[z ⊙ Az] for Rademacher z (Bekas,
    Kokiopoulou and Saad, "An estimator for the diagonal of a matrix", Appl. Numer. Math.
    57 (2007), https://doi.org/10.1016/j.apnum.2007.01.003).

    Entry i of z ⊙ Az is A_ii + Σ_{j≠i} A_ij z_i z_j, so its variance is Σ_{j≠i} A²ᵢⱼ: exact
    for a diagonal A. ``probes`` products, accumulated in ``lax.scan`` (memory: three
    params-sized pytrees); the standard error is the sample standard deviation over the
    probes / √probes. With ``mask``, entries outside the block are 0. jit-compatible.

    Returns:
      A :class:`DiagonalEstimate` (pytrees shaped like the params).
    """
    key = _checks.prng_key("key", key)
    probes = _checks.positive_int("probes", probes, 2)
    block = common.block(mask, params)
    return _diagonal(common.matvec(loss_fn), params, block, key, probes)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _diagonal(matvec, params, block, key, probes):
    op = common.restricted(matvec, params, block)

    def one(sums, k):
        z = common.probe(k, params, block)
        d = optax.tree.mul(z, op(z))
        return (optax.tree.add(sums[0], d), optax.tree.add(sums[1], optax.tree.mul(d, d))), None

    zeros = optax.tree.zeros_like(params)
    (total, squares), _ = lax.scan(one, (zeros, zeros), jax.random.split(key, probes))
    mean = optax.tree.scale(1.0 / probes, total)
    var = jax.tree.map(
        lambda m, q: jnp.maximum(q - probes * m * m, 0.0) / (probes - 1), mean, squares
    )
    return DiagonalEstimate(mean, jax.tree.map(lambda v: jnp.sqrt(v / probes), var))


class Density(NamedTuple):
    """``grid`` and ``density`` (integrating to 1 over the grid); ``nodes`` (probes,
    order) and ``weights`` (probes, order): each probe's Ritz values θ and weights τ
    (Σ τ = 1), the Gauss quadrature of the spectral measure; ``sigma`` the broadening;
    ``mean`` = the mean over probes of Σ τθ, the estimate of the mean eigenvalue tr(A)/P,
    and ``mean_stderr`` its standard error over the probes (NaN for one probe)."""

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    mean: float
    mean_stderr: float


@full_precision
def spectral_density(
    loss_fn: Callable | Curvature,
    params: Params,
    *,
    key: PRNGKey,
    order: int = 30,
    probes: int = 10,
    points: int = 512,
    sigma: float | None = None,
    mask: Any = None,
) -> Density:
    """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani et al. 2019).

    The spectral density φ(t) = (1/P) Σᵢ δ(t − λᵢ) is estimated from ``probes`` random
    unit vectors v: ``order`` Lanczos steps from v give T = S diag(θ) Sᵀ, and
    vᵀ g(A) v ≈ Σⱼ τⱼ g(θⱼ) with τⱼ = S₀ⱼ² (Gauss quadrature, exact for polynomials of
    degree < 2·order). Averaging over probes and broadening each node with a Gaussian of
    width σ (default 1 % of the spectrum's range) gives
    φ(t) ≈ (1/probes) Σ_v Σⱼ τⱼ N(t; θⱼ, σ²), on ``points`` grid points spanning the nodes
    ± 5σ. Its mean Σ τθ estimates tr(A)/P.
    """
    key = _checks.prng_key("key", key)
    probes = _checks.positive_int("probes", probes)
    points = _checks.positive_int("points", points, 2)
    matvec, block = common.matvec(loss_fn), common.block(mask, params)
    size = common.size(params, block)
    order = _checks.positive_int("order", order)
    if order > size:
        raise ValueError(f"order must be at most the {size} parameters, got {order}")
    nodes, weights = [], []
    for i, k in enumerate(jax.random.split(key, probes)):
        # the Rademacher probe is drawn inside the compiled loop (no program of its own)
        _, alpha, beta, _ = lanczos_jit(
            matvec, params, block, k, jax.random.fold_in(k, i), order, True
        )
        theta, s = np.linalg.eigh(tridiagonal(alpha, beta))
        nodes.append(theta)
        weights.append(s[0] ** 2)
    nodes, weights = np.array(nodes), np.array(weights)
    span = float(nodes.max() - nodes.min()) or max(abs(float(nodes.max())), 1.0)
    sigma = (
        0.01 * span
        if sigma is None
        else float(_checks.in_range("sigma", sigma, 0.0, low_open=True))
    )
    grid = np.linspace(nodes.min() - 5 * sigma, nodes.max() + 5 * sigma, points)
    gauss = np.exp(-0.5 * ((grid[:, None] - nodes.reshape(-1)[None, :]) / sigma) ** 2)
    density = gauss @ weights.reshape(-1) / (probes * sigma * math.sqrt(2 * math.pi))
    means = (nodes * weights).sum(axis=1)
    stderr = float(means.std(ddof=1) / math.sqrt(probes)) if probes > 1 else math.nan
    return Density(grid, density, nodes, weights, sigma, float(means.mean()), stderr)
