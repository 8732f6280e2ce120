"""Whole-spectrum estimates from random probes: Hutchinson's trace and the spectral density."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import optax
from jax import lax

from jaxnn import _checks
from jaxnn.base import Params, PRNGKey
from jaxnn.curvature import Curvature
from jaxnn.spectral import _common as common
from jaxnn.spectral._eigen import lanczos_jit, tridiagonal

__all__ = ["Density", "TraceEstimate", "Tree", "hutchinson_trace", "spectral_density"]

Tree = Any


class TraceEstimate(NamedTuple):
    """``trace`` ≈ mean of zᵀAz; ``stderr`` its standard error (sample std / √probes);
    ``samples`` the probes' zᵀAz."""

    trace: float
    stderr: float
    samples: np.ndarray


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
        z = common.random_tree(k, params, rademacher=True)
        if block is not None:
            z = optax.tree.mul(block, z)
        return optax.tree.vdot(z, op(z))

    return lax.map(one, keys)


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
