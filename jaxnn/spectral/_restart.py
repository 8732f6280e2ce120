"""Converged eigenpairs: thick-restart Lanczos, run until the wanted pairs meet a tolerance.

One cycle extends an orthonormal basis q₀ … q_{m−1} by Lanczos steps with full
reorthogonalisation, recording the projected matrix T = QᵀAQ column by column (the
Gram-Schmidt coefficients of A qⱼ), so that A Q = Q T + β q_m e_mᵀ. The eigenpairs (θᵢ, yᵢ)
of T give Ritz pairs (θᵢ, Q yᵢ) with residual ‖A Q yᵢ − θᵢ Q yᵢ‖ = |β Y[m−1, i]|, known
without another product. A restart keeps the l Ritz vectors nearest the wanted end of the
spectrum and q_m, with T = diag(θ_kept) (the coupling column is found again by the next
step's Gram-Schmidt), and extends the basis back to m: every cycle after the first costs
m − l products, and the kept vectors carry what the previous cycles learnt. The loop, the
eigen-decompositions of T and the final residual check all run under ``jit``.

References:
  Wu and Simon, "Thick-restart Lanczos method for large symmetric eigenvalue problems",
  SIAM J. Matrix Anal. Appl. 22 (2000), https://doi.org/10.1137/S0895479898334605.
  Stathopoulos, Saad and Wu, "Dynamic thick restarting of the Davidson, and the implicitly
  restarted Arnoldi methods", SIAM J. Sci. Comput. 19 (1998),
  https://doi.org/10.1137/S1064827596304162.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxnn.base import Array
from jaxnn.spectral import _common as common

__all__ = ["Restarted", "restarted_jit"]

Tree = Any


class Restarted(NamedTuple):
    """The k wanted Ritz pairs: ``values`` (k,), ``vectors`` (leaves with a leading axis
    of k), ``residuals`` ‖Av − θv‖ (k,), ``converged`` (k,) bools, ``matvecs`` used and
    ``cycles`` run."""

    values: Array
    vectors: Tree
    residuals: Array
    converged: Array
    matvecs: Array
    cycles: Array


def _coefficients(rows: Tree, w: Tree, upto: Array) -> Array:
    """qᵢᵀw for every row i ≤ ``upto`` of the basis (0 for the others)."""
    c = functools.reduce(
        jnp.add,
        [
            jnp.tensordot(a, x, axes=x.ndim)
            for a, x in zip(jax.tree.leaves(rows), jax.tree.leaves(w))
        ],
    )
    return jnp.where(jnp.arange(c.shape[0]) <= upto, c, 0.0)


def _remove(rows: Tree, w: Tree, c: Array) -> Tree:
    return jax.tree.map(lambda x, a: x - jnp.tensordot(c, a, axes=1), w, rows)


def _orthogonalise(rows: Tree, w: Tree, upto: Array) -> tuple[Tree, Array]:
    """Two classical Gram-Schmidt passes against rows ≤ ``upto`` ("twice is enough"),
    with the total coefficients."""
    c1 = _coefficients(rows, w, upto)
    w = _remove(rows, w, c1)
    c2 = _coefficients(rows, w, upto)
    return _remove(rows, w, c2), c1 + c2


def _extend(op, key, block, m, state):
    """Lanczos steps j = start … m − 1: q_{j+1} = (A qⱼ − Σ_{i≤j} (qᵢᵀAqⱼ) qᵢ) / β."""
    rows, t, _, first, matvecs = state
    eps = jnp.finfo(t.dtype).eps
    index = jnp.arange(m)

    def step(j, carry):
        rows, t, _ = carry
        w = op(jax.tree.map(lambda a: a[j], rows))
        w, h = _orthogonalise(rows, w, j)
        column = jnp.where(index <= j, h[:m], 0.0)
        t = t.at[:, j].set(column).at[j, :].set(column)
        b = optax.tree.norm(w)
        broken = b <= eps ** (2 / 3) * jnp.max(jnp.abs(t))
        fresh = common.random_unit(jax.random.fold_in(key, j), w, block)
        w = lax.cond(broken, lambda: _orthogonalise(rows, fresh, j)[0], lambda: w)
        b = jnp.where(broken, 0.0, b)
        rows = jax.tree.map(
            lambda a, x: a.at[j + 1].set(x), rows, optax.tree.scale(1 / optax.tree.norm(w), w)
        )
        t = t.at[j + 1, j].set(b, mode="drop").at[j, j + 1].set(b, mode="drop")
        return rows, t, b

    rows, t, beta = lax.fori_loop(first, m, step, (rows, t, jnp.zeros((), t.dtype)))
    return rows, t, beta, first, matvecs + (m - first)


def _wanted(values: Array, count: int, top: bool) -> Array:
    """Indices of the ``count`` eigenvalues of T (ascending) nearest the wanted end."""
    n = values.shape[0]
    return jnp.arange(n - 1, n - 1 - count, -1) if top else jnp.arange(count)


def _estimated_converged(t: Array, beta: Array, k: int, top: bool, tol: Array) -> Array:
    """Whether every wanted Ritz pair's residual |β Y[m−1, i]| is ≤ tol·|θᵢ|."""
    theta, y = jnp.linalg.eigh(t)
    pick = _wanted(theta, k, top)
    return jnp.all(jnp.abs(beta * y[-1, pick]) <= tol * jnp.abs(theta[pick]))


def _restart(m: int, keep: int, top: bool, state):
    rows, t, beta, _, matvecs = state
    theta, y = jnp.linalg.eigh(t)
    pick = _wanted(theta, keep, top)
    kept = jax.tree.map(lambda a: jnp.tensordot(y[:, pick].T, a[:m], axes=1), rows)
    rows = jax.tree.map(lambda a, x: a.at[:keep].set(x).at[keep].set(a[m]), rows, kept)
    t = jnp.zeros_like(t).at[jnp.arange(keep), jnp.arange(keep)].set(theta[pick])
    return rows, t, beta, jnp.asarray(keep, jnp.int32), matvecs


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7))
def restarted_jit(matvec, params, block, start, k, m, keep, top, tol, budget, key) -> Restarted:
    """The k wanted eigenpairs of A_BB by thick-restart Lanczos with an m-vector basis
    keeping ``keep`` Ritz vectors, until each residual estimate is ≤ tol·|θ| or ``budget``
    products are spent (module doc)."""
    op = common.restricted(matvec, params, block)
    v = common.start(start, params, block)
    dtype = common.dtype(params)
    rows = jax.tree.map(lambda x: jnp.zeros((m + 1, *x.shape), x.dtype).at[0].set(x), v)
    tol = jnp.asarray(tol, dtype)
    extend = functools.partial(_extend, op, key, block, m)
    zero = jnp.asarray(0, jnp.int32)
    state = extend((rows, jnp.zeros((m, m), dtype), jnp.zeros((), dtype), zero, zero))

    def unfinished(carry):
        state, _ = carry
        done = _estimated_converged(state[1], state[2], k, top, tol)
        return ~done & (state[4] + (m - keep) + k <= budget)

    def cycle(carry):
        state, cycles = carry
        return extend(_restart(m, keep, top, state)), cycles + 1

    state, cycles = lax.while_loop(unfinished, cycle, (state, jnp.asarray(1)))
    rows, t, _, _, matvecs = state
    theta, y = jnp.linalg.eigh(t)
    pick = _wanted(theta, k, top)
    vectors = jax.tree.map(lambda a: jnp.tensordot(y[:, pick].T, a[:m], axes=1), rows)
    values = theta[pick]

    def residual(pair):
        value, u = pair
        return optax.tree.norm(optax.tree.add_scale(op(u), -value, u))

    residuals = lax.map(residual, (values, vectors))
    converged = residuals <= tol * jnp.abs(values)
    return Restarted(values, vectors, residuals, converged, matvecs + k, cycles)
