"""Eigenvalues of a curvature from products with it: power iteration and Lanczos."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxnn import _checks
from jaxnn.base import Array, Params, PRNGKey
from jaxnn.curvature import Curvature, full_precision
from jaxnn.spectral import _common as common
from jaxnn.spectral._restart import restarted_jit

__all__ = [
    "Eigenpairs",
    "Extremes",
    "LanczosResult",
    "PowerResult",
    "Tree",
    "bottom_eigenvalues",
    "lambda_max_min",
    "lanczos",
    "lanczos_jit",
    "power",
    "power_iteration",
    "top_eigenvalues",
    "tridiagonal",
]

Tree = Any


class PowerResult(NamedTuple):
    """``eigenvalue`` (the Rayleigh quotient vᵀAv), ``eigenvector`` (unit pytree),
    ``iterations`` used, ``converged`` (relative change of the eigenvalue ≤ tol)."""

    eigenvalue: Array
    eigenvector: Tree
    iterations: Array
    converged: Array


def power(op: Callable, v: Tree, shift: Any, tol: Any, max_iter: int) -> PowerResult:
    """Power iteration on A + shift·I (shift None: on A) from the unit vector v, in
    ``lax.while_loop``."""

    def apply(u):
        return op(u) if shift is None else optax.tree.add_scale(op(u), shift, u)

    def measure(u, au):  # uᵀAu and ‖Au‖², both reductions over the same pass
        return optax.tree.vdot(u, au), optax.tree.vdot(au, au)

    def body(carry):
        i, _u, au, lam, square, _ = carry
        new = optax.tree.scale(lax.rsqrt(square), au)
        a_new = apply(new)
        lam_new, square = measure(new, a_new)
        return (
            i + 1,
            new,
            a_new,
            lam_new,
            square,
            jnp.abs(lam_new - lam) <= tol * jnp.abs(lam_new),
        )

    def cond(carry):
        i, _, _, _, _, done = carry
        return (i < max_iter) & ~done

    au = apply(v)
    lam, square = measure(v, au)
    i, u, _, lam, _, done = lax.while_loop(
        cond, body, (jnp.asarray(0), v, au, lam, square, jnp.asarray(False))
    )
    return PowerResult(jnp.asarray(lam if shift is None else lam - shift), u, i, done)


@full_precision
def power_iteration(
    loss_fn: Callable | Curvature,
    params: Params,
    *,
    key: PRNGKey,
    tol: float = 1e-6,
    max_iter: int = 200,
    shift: float | Array = 0.0,
    v0: Tree | None = None,
    mask: Any = None,
) -> PowerResult:
    """The eigenvalue of A of largest |λ| (which may be negative) and its eigenvector.

    vₜ₊₁ = (A + sI)vₜ / ‖(A + sI)vₜ‖ from a random unit v₀ (or ``v0``), until the
    Rayleigh quotient λₜ = vₜᵀAvₜ changes by at most ``tol``·|λₜ| or ``max_iter`` steps;
    the error shrinks like (|λ₂ + s|/|λ₁ + s|)ᵗ. With ``shift`` s, the iteration finds the
    eigenvalue λ maximising |λ + s| (reported without the shift): :func:`lambda_max_min`
    uses this to separate λmax from λmin.
    """
    key = _checks.prng_key("key", key)
    _checks.in_range("tol", tol, 0.0)
    max_iter = _checks.positive_int("max_iter", max_iter)
    matvec, block = common.matvec(loss_fn), common.block(mask, params)
    concrete = _checks.concrete(shift)
    offset = (
        None
        if concrete is not None and float(concrete) == 0.0
        else jnp.asarray(shift, common.dtype(params))
    )
    return _power_jit(
        matvec, params, block, key if v0 is None else v0, offset, float(tol), max_iter
    )


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def _power_jit(matvec, params, block, start, shift, tol, max_iter):
    return power(
        common.restricted(matvec, params, block),
        common.start(start, params, block),
        shift,
        tol,
        max_iter,
    )


class Extremes(NamedTuple):
    """λmax and λmin of A with their eigenvectors and the iterations each took."""

    lambda_max: Array
    lambda_min: Array
    max_vector: Tree
    min_vector: Tree
    iterations: tuple


@full_precision
def lambda_max_min(
    loss_fn: Callable | Curvature,
    params: Params,
    *,
    key: PRNGKey,
    tol: float = 1e-6,
    max_iter: int = 500,
    mask: Any = None,
) -> Extremes:
    """λmax and λmin by power iteration, each labelled.

    A first run finds λ₁, the eigenvalue of largest |λ|; s = |λ₁| bounds every |λ|. Then
    A + sI has eigenvalues λ + s ∈ [0, 2s], the largest being λmax + s, and sI − A has
    s − λ ∈ [0, 2s], the largest being s − λmin: one run on each gives λmax and λmin
    whatever their signs. The shifted runs converge at the rate (λ₂ + s)/(λmax + s).
    """
    first = power_iteration(loss_fn, params, key=key, tol=tol, max_iter=max_iter, mask=mask)
    s = jnp.abs(first.eigenvalue)
    top = power_iteration(
        loss_fn,
        params,
        key=jax.random.fold_in(key, 2),
        tol=tol,
        max_iter=max_iter,
        shift=s,
        mask=mask,
    )
    low = power_iteration(
        common.negated(common.matvec(loss_fn)),
        params,
        key=jax.random.fold_in(key, 1),
        tol=tol,
        max_iter=max_iter,
        shift=s,
        mask=mask,
    )
    return Extremes(
        top.eigenvalue,
        -low.eigenvalue,
        top.eigenvector,
        low.eigenvector,
        (int(first.iterations), int(top.iterations), int(low.iterations)),
    )


class LanczosResult(NamedTuple):
    """``alpha`` (k,), ``beta`` (k − 1,): the tridiagonal T = QᵀAQ (β = 0 where the Krylov
    space was exhausted and restarted); ``basis``: Q, every leaf with a leading axis of k;
    ``ritz_values`` (ascending) and ``ritz_vectors`` (k × k, the eigenvectors of T: the
    Ritz vector i is Σⱼ Q[j] ritz_vectors[j, i]); ``restarts``: how many breakdowns."""

    alpha: Array
    beta: Array
    basis: Tree
    ritz_values: np.ndarray
    ritz_vectors: np.ndarray
    restarts: Array


def _lanczos(op: Callable, v: Tree, key: PRNGKey, block: Tree | None, k: int) -> tuple:
    """k Lanczos steps, reorthogonalising against the basis built so far (module doc)."""
    dtype = common.dtype(v)
    eps = jnp.finfo(dtype).eps
    rows = max(4, -(-k // 8))  # the basis is read a group of rows at a time
    groups = -(-(k + 1) // rows)
    basis = jax.tree.map(lambda x: jnp.zeros((groups * rows, *x.shape), x.dtype), v)

    def project(q_all, w, j):
        """w − Σ_{i ≤ j} (qᵢᵀw) qᵢ, a group of rows at a time (block modified Gram-Schmidt),
        touching only the groups that hold q₀ … qⱼ."""

        def remove(g, out):
            part = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, g * rows, rows), q_all)
            coef = sum(
                jnp.tensordot(a, x, axes=x.ndim)
                for a, x in zip(jax.tree.leaves(part), jax.tree.leaves(out))
            )
            return jax.tree.map(lambda o, a: o - jnp.tensordot(coef, a, axes=1), out, part)

        return lax.fori_loop(0, j // rows + 1, remove, w)

    def orthogonalise(q_all, w, j):
        """One classical Gram-Schmidt pass, and a second when the first removed more than
        half of ‖w‖ (where one pass loses orthogonality: Kahan-Parlett, "twice is enough")."""

        def again(state):
            passes, _, before, after = state
            return (passes == 0) | ((passes == 1) & (after < 0.5 * before))

        def one_pass(state):
            passes, u, _, after = state
            u = project(q_all, u, j)
            return passes + 1, u, after, optax.tree.norm(u)

        norm = optax.tree.norm(w)
        return lax.while_loop(again, one_pass, (jnp.asarray(0), w, norm, norm))[1]

    def restart(q_all, j):
        return orthogonalise(q_all, common.random_unit(jax.random.fold_in(key, j), v, block), j)

    def body(j, carry):
        q_all, q, q_prev, beta_prev, alpha, beta, scale, restarts = carry
        w = op(q)
        a = optax.tree.vdot(q, w)
        w = jax.tree.map(lambda x, u, p: x - a * u - beta_prev * p, w, q, q_prev)  # 3-term
        w = orthogonalise(q_all, w, j)
        b = optax.tree.norm(w)
        scale = jnp.maximum(scale, jnp.maximum(jnp.abs(a), b))
        broken = b <= eps ** (2 / 3) * scale
        w = lax.cond(broken, lambda: restart(q_all, j), lambda: w)
        q_next = optax.tree.scale(1.0 / optax.tree.norm(w), w)
        q_all = jax.tree.map(lambda m, x: m.at[j + 1].set(x), q_all, q_next)
        b = jnp.where(broken, 0.0, b)
        return (
            q_all,
            q_next,
            q,
            b,
            alpha.at[j].set(a),
            beta.at[j].set(b),
            scale,
            restarts + (broken & (j < k - 1)),
        )

    start = jax.tree.map(lambda m, x: m.at[0].set(x), basis, v)
    zero = jnp.zeros((), dtype)
    carry = (
        start,
        v,
        optax.tree.zeros_like(v),
        zero,
        jnp.zeros(k, dtype),
        jnp.zeros(k, dtype),
        zero,
        jnp.asarray(0),
    )
    q_all, _, _, _, alpha, beta, _, restarts = lax.fori_loop(0, k, body, carry)
    return jax.tree.map(lambda m: m[:k], q_all), alpha, beta[:-1], restarts


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def lanczos_jit(matvec, params, block, start, key, k, rademacher=False):
    return _lanczos(
        common.restricted(matvec, params, block),
        common.start(start, params, block, rademacher),
        key,
        block,
        k,
    )


@full_precision
def lanczos(
    loss_fn: Callable | Curvature,
    params: Params,
    k: int,
    *,
    key: PRNGKey,
    v0: Tree | None = None,
    mask: Any = None,
) -> LanczosResult:
    """k steps of the Lanczos iteration with full reorthogonalisation.

    From a unit q₀: w = A qⱼ, αⱼ = qⱼᵀw, w ← w − αⱼqⱼ − βⱼ₋₁qⱼ₋₁, then w ← w − Σ_{i≤j}
    (qᵢᵀw) qᵢ over the basis so far (classical Gram-Schmidt, repeated once when it removes
    more than half of ‖w‖, which keeps the basis orthogonal to working precision), βⱼ = ‖w‖,
    qⱼ₊₁ = w/βⱼ; then T = tridiag(β, α, β) = QᵀAQ, whose eigenvalues (the Ritz values)
    approximate A's extremes first. When βⱼ falls to round-off (≤ ε^(2/3) × the largest
    |α|, β seen) the Krylov space is invariant: the iteration restarts from a random vector
    orthogonal to the basis and records βⱼ = 0, so k = P recovers the whole spectrum,
    repeated eigenvalues included. Costs k products with A and about k²P multiply-adds for
    the reorthogonalisation (the basis is read in groups, skipping those not yet filled);
    memory k + 1 vectors.

    The loop runs in ``lax.fori_loop`` under ``jit``; T (at most k × k) is diagonalised on
    the host.

    Written here rather than taken from matfree, whose ``tridiag_sym(k, reortho="full")``
    gives the same tridiagonal matrices but reorthogonalises against the whole fixed-size
    basis at every step, where this loop reads only the part filled so far; the timings,
    and a comparison with ``jax.experimental.sparse.linalg.lobpcg_standard``, are in
    ``benchmarks/README.md``.
    """
    key = _checks.prng_key("key", key)
    matvec, block = common.matvec(loss_fn), common.block(mask, params)
    size = common.size(params, block)
    k = _checks.positive_int("k", k)
    if k > size:
        raise ValueError(f"k must be at most the {size} parameters, got {k}")
    basis, alpha, beta, restarts = lanczos_jit(
        matvec, params, block, key if v0 is None else v0, jax.random.fold_in(key, 7), k
    )
    values, vectors = np.linalg.eigh(tridiagonal(alpha, beta))
    return LanczosResult(alpha, beta, basis, values, vectors, restarts)


def tridiagonal(alpha: Array, beta: Array) -> np.ndarray:
    """T with ``alpha`` on the diagonal and ``beta`` beside it, in float64 on the host."""
    a, b = np.asarray(alpha, float), np.asarray(beta, float)
    return np.diag(a) + np.diag(b, 1) + np.diag(b, -1)


class Eigenpairs(NamedTuple):
    """``values`` (the selected Ritz values), ``vectors`` (their Ritz vectors: a pytree,
    every leaf with a leading axis of len(values)), ``residuals`` ‖Av − λv‖ (each costs one
    more product with A), the :class:`LanczosResult` of the single run (None when the
    solver restarted to meet ``tol``), ``converged`` (one bool per pair: residual ≤
    tol·|λ|) and ``matvecs`` (the products with A spent, residuals included)."""

    values: Any
    vectors: Tree
    residuals: Any
    lanczos: LanczosResult | None
    converged: Any
    matvecs: Any


def _extreme(loss_fn, params, k, key, order, mask, top, tol, max_matvecs, v0) -> Eigenpairs:
    key = _checks.prng_key("key", key)
    k = _checks.positive_int("k", k)
    block = common.block(mask, params)
    matvec = common.matvec(loss_fn)
    size = common.size(params, block)
    if k > size:
        raise ValueError(f"k must be at most the {size} parameters, got {k}")
    order = min(size, max(30, 3 * k)) if order is None else _checks.positive_int("order", order)
    if k > order:
        raise ValueError(f"k must be at most order={order}, got {k}")
    if tol is not None:
        _checks.in_range("tol", tol, 0.0, low_open=True)
        if order == k and order < size:
            raise ValueError(
                f"order must exceed k to restart (room for new Lanczos vectors), got "
                f"order={order}, k={k}"
            )
        budget = (
            50 * order if max_matvecs is None else _checks.positive_int("max_matvecs", max_matvecs)
        )
        if budget < order + k:
            raise ValueError(
                f"max_matvecs must cover one cycle of order + k = {order + k} products, got "
                f"{budget}"
            )
        keep = min(order - 1, k + (order - k) // 2) if order < size else k
        found = restarted_jit(
            matvec,
            params,
            block,
            key if v0 is None else v0,
            k,
            order,
            keep,
            top,
            tol,
            budget,
            jax.random.fold_in(key, 7),
        )
        return Eigenpairs(
            found.values, found.vectors, found.residuals, None, found.converged, found.matvecs
        )
    op = common.restricted(matvec, params, block)
    result = lanczos(loss_fn, params, order, key=key, mask=mask, v0=v0)
    pick = np.argsort(result.ritz_values)[::-1][:k] if top else np.argsort(result.ritz_values)[:k]
    coef = jnp.asarray(result.ritz_vectors[:, pick], common.dtype(params))
    vectors = jax.tree.map(lambda q: jnp.tensordot(coef.T, q, axes=1), result.basis)
    values = result.ritz_values[pick]
    residuals = []
    for i in range(k):
        u = jax.tree.map(lambda x, i=i: x[i], vectors)
        r = optax.tree.add_scale(op(u), -float(values[i]), u)
        residuals.append(float(optax.tree.norm(r)))
    residuals = np.asarray(residuals)
    default = float(np.sqrt(np.finfo(common.dtype(params)).eps))
    return Eigenpairs(
        np.asarray(values),
        vectors,
        residuals,
        result,
        residuals <= default * np.abs(values),
        order + k,
    )


@full_precision
def top_eigenvalues(
    loss_fn: Callable | Curvature,
    params: Params,
    k: int = 5,
    *,
    key: PRNGKey,
    order: int | None = None,
    tol: float | None = None,
    max_matvecs: int | None = None,
    v0: Tree | None = None,
    mask: Any = None,
) -> Eigenpairs:
    """The k largest eigenvalues of A (descending), with Ritz vectors, residuals
    ‖Av − λv‖ and which of them converged.

    Without ``tol``, one run of ``order`` Lanczos steps (default max(30, 3k), at most P);
    ``converged`` then judges each pair at tol = √ε of the params' dtype (1.5e-8 in
    float64, 3.5e-4 in float32). With ``tol``, thick-restart Lanczos (a basis of ``order``
    vectors, about half of it kept at each restart; Wu and Simon 2000) runs under ``jit``
    until every wanted pair's relative residual ‖Av − λv‖ ≤ tol·|λ| or ``max_matvecs``
    products (default 50·order) are spent; ``converged`` says which pairs met it, from
    their true residuals, and ``matvecs`` what it cost. ``v0`` replaces the random start
    (a warm start: the previous eigenvector, or a sum of several).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> pairs = top_eigenvalues(lambda w: 0.5 * w @ (jnp.arange(1.0, 41.0) * w),
      ...                         jnp.ones(40), 3, key=jax.random.key(0), tol=1e-6)
      >>> [round(float(v), 4) for v in pairs.values], bool(pairs.converged.all())
      ([40.0, 39.0, 38.0], True)
    """
    return _extreme(loss_fn, params, k, key, order, mask, True, tol, max_matvecs, v0)


@full_precision
def bottom_eigenvalues(
    loss_fn: Callable | Curvature,
    params: Params,
    k: int = 5,
    *,
    key: PRNGKey,
    order: int | None = None,
    tol: float | None = None,
    max_matvecs: int | None = None,
    v0: Tree | None = None,
    mask: Any = None,
) -> Eigenpairs:
    """The k smallest eigenvalues of A (ascending; negative ones first), with Ritz
    vectors, residuals and which of them converged; ``order``, ``tol``, ``max_matvecs``
    and ``v0`` as in :func:`top_eigenvalues`. The bottom of a network's spectrum is a
    dense cluster near 0, where Lanczos converges slowly and a relative tolerance may
    never be met: read ``converged``."""
    return _extreme(loss_fn, params, k, key, order, mask, False, tol, max_matvecs, v0)
