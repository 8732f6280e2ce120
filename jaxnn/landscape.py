"""Loss landscapes: the loss along lines and over planes through the params.

* :func:`random_direction` — a Gaussian direction, filter-normalised (Li et al. 2018): each
  output unit's (or convolution filter's) slice of the direction gets the norm of the same
  slice of the weight, so that a step α means the same relative change in every layer
  whatever its scale; biases and normalisation parameters (leaves of rank ≤ 1) get 0.
* :func:`line` — E(w + α d) for each α; :func:`interpolate` — E((1 − α) a + α b);
  :func:`plane` — E(w + α d₁ + β d₂) over a grid. Each is one compiled program, the points
  evaluated ``chunk_size`` at a time under ``vmap`` (``lax.map`` with ``batch_size``), so
  the memory is bounded whatever the grid.
* :func:`trajectory_plane` — the plane of a training path: the two principal directions of
  its deviations from the last point, the path's coordinates in them, and the fraction of
  the deviations they explain.

``loss_fn(params) -> scalar`` closes over the data and, for a model with batch norm,
over the state: the landscape is that of the mode the caller chose (inference mode with
the running averages, or training mode with batch statistics); nothing here changes it.

References:
  Li, Xu, Taylor, Studer and Goldstein, "Visualizing the loss landscape of neural nets"
  (NeurIPS 2018), https://arxiv.org/abs/1712.09913.
  Goodfellow, Vinyals and Saxe, "Qualitatively characterizing neural network optimization
  problems" (ICLR 2015), https://arxiv.org/abs/1412.6544.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxnn import _checks
from jaxnn.base import Array, Params, PRNGKey

__all__ = [
    "MEMORY",
    "NORMALIZATIONS",
    "TrajectoryPlane",
    "interpolate",
    "line",
    "plane",
    "random_direction",
    "trajectory_plane",
]

Tree = Any
NORMALIZATIONS = ("filter", "layer", None)
MEMORY = 2**30  # bytes a chunk of grid points may hold by default


def random_direction(key: PRNGKey, params: Params, normalization: str | None = "filter") -> Tree:
    """A random direction shaped like ``params``, N(0, 1) entries then normalised.

    ``"filter"``: for every leaf of rank ≥ 2 (a dense weight (fan_in, fan_out), a
    convolution kernel (..., c_in, c_out)), each slice along the last axis (one output
    unit, one filter) is scaled to the norm of the same slice of the weight: dᵢ ←
    dᵢ ‖wᵢ‖/‖dᵢ‖. ``"layer"``: each such leaf as a whole, d ← d ‖w‖/‖d‖. Leaves of rank ≤ 1
    (biases, normalisation scales and shifts) get 0, Li et al.'s choice. ``None``: the raw
    Gaussian direction, every leaf included.
    """
    key = _checks.prng_key("key", key)
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {list(NORMALIZATIONS)}, got {normalization!r}"
        )
    return _direction(key, params, normalization)


@functools.partial(jax.jit, static_argnums=2)
def _direction(key: PRNGKey, params: Params, normalization: str | None) -> Tree:
    flat, unravel = ravel_pytree(params)
    raw = unravel(jax.random.normal(key, flat.shape, flat.dtype))
    if normalization is None:
        return raw

    def scale(d, w):
        if jnp.ndim(w) < 2:
            return jnp.zeros_like(w)
        axes = tuple(range(w.ndim - 1)) if normalization == "filter" else None
        dn = jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True))
        wn = jnp.sqrt(jnp.sum(w * w, axis=axes, keepdims=True))
        return d * jnp.where(dn > 0, wn / jnp.where(dn > 0, dn, 1.0), 0.0)

    return jax.tree.map(scale, raw, params)


def _like(name: str, tree: Tree, params: Params) -> None:
    shapes = jax.tree.map(np.shape, tree), jax.tree.map(np.shape, params)
    if jax.tree.structure(tree) != jax.tree.structure(params) or shapes[0] != shapes[1]:
        raise ValueError(
            f"{name} must be a pytree shaped like the params: got {shapes[0]}, params {shapes[1]}"
        )


def _chunk(loss_fn: Callable, params: Params, points: int, chunk_size: int | None) -> int:
    """Points per vmapped chunk: ``chunk_size``, or as many as ``MEMORY`` bytes hold, each
    point costing a copy of the params plus one loss evaluation's temporaries."""
    flat = ravel_pytree(params)[0]
    per_point = flat.size * flat.dtype.itemsize
    try:
        analysis = jax.jit(loss_fn).lower(params).compile().memory_analysis()
        per_point += int(getattr(analysis, "temp_size_in_bytes", 0) or 0)
    except Exception:  # a backend without memory analysis: count the params alone
        pass
    if chunk_size is None:
        return max(1, min(points, MEMORY // per_point))
    chunk_size = _checks.positive_int("chunk_size", chunk_size)
    if chunk_size * per_point > MEMORY:
        raise ValueError(
            f"chunk_size={chunk_size} points would hold about {chunk_size * per_point:,} bytes "
            f"at once, over the {MEMORY:,}-byte budget (jaxnn.landscape.MEMORY); pass "
            f"chunk_size <= {max(1, MEMORY // per_point)} or None"
        )
    return min(chunk_size, points)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _evaluate(loss_fn, base, directions, coefficients, chunk):
    """E(base + Σₖ cₖ dₖ) for every row c of ``coefficients`` (points, k)."""

    def at(c):
        moved = jax.tree.map(
            lambda b, *ds: b + sum(ci * d for ci, d in zip(c, ds)), base, *directions
        )
        return loss_fn(moved)

    return lax.map(at, coefficients, batch_size=chunk)


def _grid(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of numbers, got shape {arr.shape}"
        )
    _checks.finite(name, arr)
    return arr


def _run(loss_fn, base, directions, coefficients, chunk_size) -> Array:
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function loss_fn(params) -> scalar, got {loss_fn!r}")
    dtype = jnp.result_type(*jax.tree.leaves(base))
    chunk = _chunk(loss_fn, base, coefficients.shape[0], chunk_size)
    return _evaluate(loss_fn, base, tuple(directions), jnp.asarray(coefficients, dtype), chunk)


def line(
    loss_fn: Callable[[Params], Array],
    params: Params,
    direction: Tree,
    alphas: Any,
    *,
    chunk_size: int | None = None,
) -> Array:
    """E(w + α d) for each α in ``alphas``: an array of shape (len(alphas),)."""
    _like("direction", direction, params)
    alphas = _grid("alphas", alphas)
    return _run(loss_fn, params, [direction], alphas[:, None], chunk_size)


def interpolate(
    loss_fn: Callable[[Params], Array],
    a: Params,
    b: Params,
    alphas: Any,
    *,
    chunk_size: int | None = None,
) -> Array:
    """E((1 − α) a + α b) for each α (Goodfellow et al. 2015): α = 0 at ``a``, 1 at ``b``,
    outside [0, 1] beyond them. Shape (len(alphas),)."""
    _like("b", b, a)
    alphas = _grid("alphas", alphas)
    return _run(loss_fn, a, [optax.tree.sub(b, a)], alphas[:, None], chunk_size)


def plane(
    loss_fn: Callable[[Params], Array],
    params: Params,
    d1: Tree,
    d2: Tree,
    alphas: Any,
    betas: Any,
    *,
    chunk_size: int | None = None,
) -> Array:
    """E(w + α d₁ + β d₂) over the grid ``alphas`` × ``betas``: shape (len(alphas),
    len(betas)), entry [i, j] at (αᵢ, βⱼ).

    One compiled program: the len(alphas)·len(betas) points run ``chunk_size`` at a time
    under ``vmap`` inside ``lax.map``. By default a chunk holds as many points as
    :data:`MEMORY` bytes allow (a params copy and one loss evaluation's temporaries per
    point, from XLA's memory analysis); a ``chunk_size`` over that budget is refused.
    """
    _like("d1", d1, params)
    _like("d2", d2, params)
    alphas, betas = _grid("alphas", alphas), _grid("betas", betas)
    grid = np.stack(np.meshgrid(alphas, betas, indexing="ij"), -1).reshape(-1, 2)
    return _run(loss_fn, params, [d1, d2], grid, chunk_size).reshape(alphas.size, betas.size)


class TrajectoryPlane(NamedTuple):
    """``directions``: two orthonormal pytrees shaped like the params (the principal
    directions); ``coordinates`` (steps, 2): the path's deviations from its last point
    projected on them; ``explained`` (2,): the fraction of the deviations' squared length
    each direction carries; ``origin``: the last point, where the plane is centred."""

    directions: list
    coordinates: Array
    explained: Array
    origin: Params


def trajectory_plane(path: Tree) -> TrajectoryPlane:
    """The plane that best holds a training path (Li et al. 2018, section 7).

    With the path's T points w₀ … w_{T−1} (a pytree whose leaves carry a leading step
    axis) and M the T × P matrix of rows wₜ − w_{T−1}, the directions are M's top two right
    singular vectors (PCA of the deviations from the final point, not centred on their
    mean), the coordinates M [u₁ u₂], and ``explained`` σᵢ² / Σσ². Plot :func:`plane` around
    ``origin`` with ``d1, d2 = directions`` and the coordinates on top (the directions are
    orthonormal, so the coordinates are in the same units as α and β).
    """
    leaves = jax.tree.leaves(path)
    if not leaves or any(np.ndim(a) < 1 for a in leaves):
        raise ValueError("path must be a pytree whose leaves carry a leading step axis")
    steps = {int(np.shape(a)[0]) for a in leaves}
    if len(steps) != 1:
        raise ValueError(
            f"every leaf of path must have the same number of steps, got {sorted(steps)}"
        )
    count = steps.pop()
    if count < 3:
        raise ValueError(f"path must hold at least 3 points for a plane, got {count}")
    return _trajectory_plane(path)


@jax.jit
def _trajectory_plane(path: Tree) -> TrajectoryPlane:
    rows = jax.vmap(lambda t: ravel_pytree(t)[0])(path)
    origin = jax.tree.map(lambda a: a[-1], path)
    unravel = ravel_pytree(origin)[1]
    deviations = rows - rows[-1]
    _, sigma, vt = jnp.linalg.svd(deviations, full_matrices=False)
    total = jnp.sum(sigma**2)
    return TrajectoryPlane(
        [unravel(vt[0]), unravel(vt[1])],
        deviations @ vt[:2].T,
        sigma[:2] ** 2 / total,
        origin,
    )
