"""Eigenpairs followed through training: a warm-started block method inside ``fit``.

Between two measurements the top of the Hessian's spectrum moves a little, so the
previous eigenvectors are an excellent start. Each measurement runs LOBPCG (Knyazev 2001)
from them: with X the current block of k orthonormal vectors, Θ = XᵀAX and the residuals
R = AX − XΘ, the Rayleigh-Ritz step on span[X, R, P] (P the previous step's change of
X) gives the next X. One iteration costs a product with each new direction (at most 2k);
the iteration stops when every tracked pair has ‖Ax − θx‖ ≤ tol·|θ|. The vectors are
flattened into a (P, k) matrix for the small dense linear algebra.

* :func:`eigen_tracking_hook` records the top-k eigenvalues (and optionally every further
  one above c·2/η, up to a cap) and the products spent;
* :func:`alignment_hook` records how much of the gradient and of the optimiser's update
  lies in the top-k eigenspace, and the curvature along the gradient (Gur-Ari et al. 2018).

References:
  Knyazev, "Toward the optimal preconditioned eigensolver: locally optimal block
  preconditioned conjugate gradient method", SIAM J. Sci. Comput. 23 (2001),
  https://doi.org/10.1137/S1064827500366124.
  Damian, Nichani and Lee / Cohen et al., "Understanding optimization in deep learning
  with central flows" (2024), https://arxiv.org/abs/2410.24206 (tracking every eigenvalue
  above a fraction of 2/η).
  Gur-Ari, Roberts and Dyer, "Gradient descent happens in a tiny subspace" (2018),
  https://arxiv.org/abs/1812.04754.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxnn import _checks
from jaxnn.base import Array, Params, PRNGKey
from jaxnn.curvature import full_precision, hvp
from jaxnn.spectral import _common as common
from jaxnn.train import Hook

__all__ = ["Block", "alignment_hook", "block_eigenpairs", "eigen_tracking_hook"]


class Block(NamedTuple):
    """``values`` (k,) descending, ``vectors`` (P, k) orthonormal columns, ``residuals``
    (k,) ‖Ax − θx‖, ``matvecs`` and ``iterations`` spent."""

    values: Array
    vectors: Array
    residuals: Array
    matvecs: Array
    iterations: Array


def _directions(x: Array, z: Array) -> tuple[Array, Array]:
    """An orthonormal basis of the part of span(z) orthogonal to the columns of x, and
    which of its columns are real: the columns of z are projected off x (twice), scaled to
    unit length, and their SVD's left vectors kept where the singular value exceeds √ε
    (a residual that has converged, or a direction already in the span, gives none)."""
    for _ in range(2):
        z = z - x @ (x.T @ z)
    norms = jnp.linalg.norm(z, axis=0)
    z = z / jnp.where(norms > 0, norms, 1.0)
    u, sigma, _ = jnp.linalg.svd(z, full_matrices=False)
    keep = sigma > jnp.sqrt(jnp.finfo(z.dtype).eps)
    u = u * keep
    return u - x @ (x.T @ u), keep


def _rayleigh_ritz(s: Array, a_s: Array, keep: Array, k: int) -> tuple[Array, Array]:
    """The top k Ritz pairs of A on the columns of s (orthonormal where ``keep``, zero
    elsewhere; A s given). A zero column would give a spurious Ritz value 0: it is moved
    below the whole spectrum instead, so it is never among the top k."""
    t = s.T @ a_s
    t = 0.5 * (t + t.T)
    floor = -2.0 * (jnp.max(jnp.abs(t)) + 1.0)
    theta, c = jnp.linalg.eigh(t + jnp.diag(jnp.where(keep, 0.0, floor)))
    order = jnp.arange(theta.shape[0] - 1, theta.shape[0] - 1 - k, -1)
    return theta[order], c[:, order]


def block_eigenpairs(
    apply: Callable[[Array], Array], x: Array, wanted: Callable[[Array], Array], iters: int, tol
) -> Block:
    """LOBPCG for the top k eigenpairs from the (P, k) start x (module doc).

    ``apply`` maps one flat vector to A times it; ``wanted(values)`` gives the (k,) bools
    of the pairs that must converge (the others are carried along). Runs under ``jit``.
    """
    k = x.shape[1]
    many = jax.vmap(apply, in_axes=1, out_axes=1)
    x = jnp.linalg.qr(x)[0]
    ax = many(x)
    theta, c = _rayleigh_ritz(x, ax, jnp.ones(k, bool), k)
    x, ax = x @ c, ax @ c

    def residuals(x, ax, theta):
        return jnp.linalg.norm(ax - x * theta, axis=0)

    def unfinished(carry):
        i, x, ax, theta, _, _, _ = carry
        done = (residuals(x, ax, theta) <= tol * jnp.abs(theta)) | ~wanted(theta)
        return (i < iters) & ~jnp.all(done)

    def step(carry):
        i, x, ax, theta, p, ap, matvecs = carry
        r = ax - x * theta
        first = i == 0
        # the search directions: residuals and (after the first step) the previous change
        z, real = _directions(x, jnp.concatenate([r, jnp.where(first, 0.0, p)], axis=1))
        az = many(z)
        s, a_s = jnp.concatenate([x, z], axis=1), jnp.concatenate([ax, az], axis=1)
        theta, c = _rayleigh_ritz(s, a_s, jnp.concatenate([jnp.ones(k, bool), real]), k)
        new_x, new_ax = s @ c, a_s @ c
        p, ap = z @ c[k:], az @ c[k:]
        return i + 1, new_x, new_ax, theta, p, ap, matvecs + 2 * k

    zero = jnp.zeros_like(x)
    i, x, ax, theta, _, _, matvecs = lax.while_loop(
        unfinished, step, (jnp.asarray(0), x, ax, theta, zero, zero, jnp.asarray(k))
    )
    return Block(theta, x, residuals(x, ax, theta), matvecs, i)


def _flat_hvp(loss_fn: Callable, params: Params) -> Callable[[Array], Array]:
    return common.flat(functools.partial(hvp, loss_fn, params), params)


def _start(key: PRNGKey, params: Params, k: int) -> Array:
    size = ravel_pytree(params)[0].size
    if k > size:
        raise ValueError(f"k must be at most the {size} parameters, got {k}")
    return jax.random.normal(key, (size, k), common.dtype(params))


def eigen_tracking_hook(
    objective: Callable,
    batch: Any,
    *,
    k: int = 5,
    every: int = 10,
    key: PRNGKey,
    lr: float | None = None,
    grow_above: float | None = None,
    max_k: int | None = None,
    iters: int = 30,
    tol: float = 1e-3,
):
    """A :class:`jaxnn.train.Hook` recording the top eigenvalues of the training loss's
    Hessian on ``batch`` every ``every`` steps, each measurement warm-started from the
    previous one's eigenvectors (LOBPCG, module doc).

    Without ``grow_above`` the block holds ``k`` vectors and the record's ``values``
    (k,) are the top k. With ``grow_above`` = c and ``lr`` = η the block holds ``max_k``
    vectors (default 4k; shapes are static under ``jit``, so the cap is fixed in advance)
    and every eigenvalue above c·2/η is tracked besides the top k: ``values`` (max_k,)
    holds them descending, NaN past the tracked ones; ``tracked`` says how many, and
    ``tracked == max_k`` warns that the cap may hide more. Each measurement iterates until
    every tracked pair's ‖Hx − θx‖ ≤ ``tol``·|θ| or ``iters`` iterations; the record holds
    ``residuals``, ``iterations`` and ``matvecs`` (products with H, k per iteration and
    direction).
    """
    k = _checks.positive_int("k", k)
    every = _checks.positive_int("every", every)
    iters = _checks.positive_int("iters", iters)
    _checks.in_range("tol", tol, 0.0, low_open=True)
    key = _checks.prng_key("key", key)
    if grow_above is not None:
        if lr is None:
            raise ValueError("grow_above needs lr=η: it tracks eigenvalues above c·2/η")
        _checks.in_range("grow_above", grow_above, 0.0, low_open=True)
        _checks.in_range("lr", lr, 0.0, low_open=True)
        size = 4 * k if max_k is None else _checks.positive_int("max_k", max_k, k)
        floor = float(grow_above) * 2.0 / float(lr)
    else:
        if max_k is not None:
            raise ValueError("max_k needs grow_above=c (the block grows to max_k)")
        size, floor = k, None

    def wanted(theta):
        top = jnp.arange(theta.shape[0]) < k
        return top if floor is None else top | (theta > floor)

    def init(params):
        return _start(key, params, size)

    def update(x, params, state, step):
        loss_fn = lambda p: objective(p, state, batch, jax.random.fold_in(key, step))[0]
        found = block_eigenpairs(_flat_hvp(loss_fn, params), x, wanted, iters, tol)
        keep = wanted(found.values)
        nan = jnp.asarray(jnp.nan, found.values.dtype)
        record = {
            "values": jnp.where(keep, found.values, nan),
            "residuals": jnp.where(keep, found.residuals, nan),
            "tracked": jnp.sum(keep),
            "iterations": found.iterations,
            "matvecs": found.matvecs,
        }
        return found.vectors, record

    return Hook(init, full_precision(update), every)


def alignment_hook(
    objective: Callable,
    batch: Any,
    optimizer: optax.GradientTransformation | None = None,
    *,
    k: int = 5,
    every: int = 10,
    key: PRNGKey,
    iters: int = 30,
    tol: float = 1e-3,
):
    """A :class:`jaxnn.train.Hook` recording, every ``every`` steps on ``batch``, how much
    of the gradient g lies in the span U of the Hessian's top-k eigenvectors, ‖Π_U g‖²/‖g‖²
    (``gradient_overlap``), the curvature along it gᵀHg/gᵀg (``gradient_curvature``) and
    the top-k ``values``; with ``optimizer`` (the one ``fit`` runs), also the overlap of
    the update u it would take from the current optimiser state on ``batch``
    (``update_overlap``; u = −ηg for SGD, so then equal to the gradient's). Gur-Ari et al.
    (2018) find the gradient's overlap near 1 with k = the number of classes. The
    eigenvectors come from the warm-started block method of :func:`eigen_tracking_hook`.
    """
    k = _checks.positive_int("k", k)
    every = _checks.positive_int("every", every)
    iters = _checks.positive_int("iters", iters)
    _checks.in_range("tol", tol, 0.0, low_open=True)
    key = _checks.prng_key("key", key)

    def init(params):
        return _start(key, params, k)

    def measure(x, params, state, step, opt_state):
        loss_fn = lambda p: objective(p, state, batch, jax.random.fold_in(key, step))[0]
        apply = _flat_hvp(loss_fn, params)
        found = block_eigenpairs(apply, x, lambda t: jnp.ones(t.shape, bool), iters, tol)
        grad = jax.grad(loss_fn)(params)
        g = ravel_pytree(grad)[0]

        def overlap(v):
            inside = found.vectors.T @ v
            return jnp.vdot(inside, inside) / jnp.vdot(v, v)

        record = {
            "values": found.values,
            "gradient_overlap": overlap(g),
            "gradient_curvature": jnp.vdot(g, apply(g)) / jnp.vdot(g, g),
            "matvecs": found.matvecs + 1,
        }
        if optimizer is not None:
            u = ravel_pytree(optimizer.update(grad, opt_state, params)[0])[0]
            record["update_overlap"] = overlap(u)
        return found.vectors, record

    if optimizer is None:
        return Hook(init, full_precision(lambda x, p, s, t: measure(x, p, s, t, None)), every)
    return Hook(init, full_precision(measure), every, with_opt_state=True)
