"""Alignment of a direction with the curvature: subspace overlap and directional curvature.

Gradient descent on a network moves mostly inside the span of the Hessian's few top
eigenvectors (Gur-Ari, Roberts and Dyer 2018). Two numbers say how much:

* :func:`subspace_overlap` — ‖Π_U v‖² / ‖v‖², the fraction of v's squared length inside the
  span U of some vectors (the top-k eigenvectors, say): 1 when v lies in U, 0 when it is
  orthogonal to it.
* :func:`principal_angles` — the cosines of the angles between two subspaces (the top
  eigenvectors of the Hessian and of the Fisher, say): all 1 for the same span.
* :func:`directional_curvature` — vᵀAv / vᵀv, the curvature of the loss along v (the
  Rayleigh quotient): between λmin and λmax, equal to λᵢ along the eigenvector uᵢ.

References:
  Gur-Ari, Roberts and Dyer, "Gradient descent happens in a tiny subspace" (2018),
  https://arxiv.org/abs/1812.04754.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxnn.base import Array, Params
from jaxnn.curvature import Curvature, full_precision
from jaxnn.spectral import _common as common
from jaxnn.spectral._eigen import Eigenpairs

__all__ = ["directional_curvature", "principal_angles", "subspace_overlap"]

Tree = Any


def _basis(vectors: Any, like: Tree) -> Array:
    """The vectors as the columns of a (P, k) matrix, flattened in ``like``'s order."""
    stacked = isinstance(vectors, Eigenpairs)
    if stacked:
        vectors = vectors.vectors
    elif isinstance(vectors, (list, tuple)) and not vectors:
        raise ValueError("vectors must hold at least one vector, got an empty sequence")
    # a sequence of vectors shaped like v, unless v itself is a sequence the vectors stack
    listed = (
        not stacked
        and isinstance(vectors, (list, tuple))
        and jax.tree.structure(vectors[0]) == jax.tree.structure(like)
    )
    if listed:
        columns = [ravel_pytree(u)[0] for u in vectors]
    else:  # one pytree whose leaves have a leading axis of k
        leaves = jax.tree.leaves(vectors)
        if not leaves or np.ndim(leaves[0]) < 1:
            raise TypeError(
                "vectors must be a list of pytrees shaped like v, a pytree whose leaves carry a "
                "leading axis of k vectors, or the Eigenpairs of top_eigenvalues"
            )
        k = np.shape(leaves[0])[0]
        columns = [ravel_pytree(jax.tree.map(lambda a, i=i: a[i], vectors))[0] for i in range(k)]
    size = ravel_pytree(like)[0].shape[0]
    if any(c.shape != (size,) for c in columns):
        raise ValueError(
            f"every vector must have the {size} entries of v, got sizes "
            f"{sorted({int(c.shape[0]) for c in columns})}"
        )
    return jnp.stack(columns, axis=1)


@full_precision
def subspace_overlap(vectors: Any, v: Tree) -> Array:
    """‖Π_U v‖² / ‖v‖²: the fraction of v's squared length in the span U of ``vectors``.

    Π_U is the orthogonal projection onto U, computed from a QR factorisation of the k
    vectors, so they need not be orthonormal (for orthonormal u₁ … u_k the value is
    Σᵢ (uᵢᵀv)² / vᵀv). jit-compatible.

    Args:
      vectors: the k vectors spanning U: a list of pytrees shaped like ``v``, one pytree
        whose leaves carry a leading axis of k, or the :class:`Eigenpairs` of
        :func:`top_eigenvalues` (its Ritz vectors).
      v: a pytree shaped like the params (a gradient, an update).

    Returns:
      A scalar in [0, 1] (NaN for v = 0).

    Example:
      >>> import jax.numpy as jnp
      >>> float(subspace_overlap([jnp.array([1.0, 0.0, 0.0])], jnp.array([1.0, 1.0, 0.0])))
      0.5
    """
    q, _ = jnp.linalg.qr(_basis(vectors, v))
    flat = ravel_pytree(v)[0]
    inside = q.T @ flat
    return jnp.vdot(inside, inside) / jnp.vdot(flat, flat)


@full_precision
def directional_curvature(
    loss_fn: Callable[[Params], Array] | Curvature, params: Params, v: Tree, *, mask: Any = None
) -> Array:
    """vᵀAv / vᵀv: the curvature along v, A the Hessian of ``loss_fn`` at ``params``.

    One Hessian-vector product (:func:`jaxnn.curvature.hvp`), or one product with a
    :class:`Curvature` such as :func:`gauss_newton`'s. With ``mask``, A and v are restricted
    to the block (see :mod:`jaxnn.spectral`). jit-compatible.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``, or a :class:`Curvature`.
      params: the point, any pytree of floating-point arrays.
      v: the direction, a pytree shaped like ``params``.
      mask: a block of the params (a pytree of bools, or a function of the leaf's path).

    Returns:
      A scalar: λᵢ when v is the eigenvector uᵢ, between λmin and λmax otherwise.
    """
    block = common.block(mask, params)
    op = common.restricted(common.matvec(loss_fn), params, block)
    if block is not None:
        v = optax.tree.mul(block, v)
    return jnp.asarray(optax.tree.vdot(v, op(v)) / optax.tree.vdot(v, v))


@full_precision
def principal_angles(u: Any, v: Any) -> Array:
    """cos θᵢ of the principal angles between span(U) and span(V), largest first.

    With orthonormal bases Q_U (P × k) and Q_V (P × l) from QR factorisations (so the
    vectors need not be orthonormal), the cosines are the singular values of Q_Uᵀ Q_V
    (Björck and Golub, "Numerical methods for computing angles between linear subspaces",
    Math. Comp. 27 (1973), https://doi.org/10.2307/2005662): min(k, l) numbers in [0, 1],
    1 for a direction the spans share, 0 for orthogonal ones. Σᵢ cos² θᵢ / k is the mean
    overlap of U's vectors with V. jit-compatible.

    Args:
      u, v: each a list of pytrees shaped like the params, or an :class:`Eigenpairs` (its
        Ritz vectors).

    Returns:
      An array of min(k, l) cosines, descending.
    """
    like = _first(u)
    if jax.tree.structure(_first(v)) != jax.tree.structure(like):
        raise ValueError(
            f"u and v must hold vectors of the same structure, got {jax.tree.structure(like)} "
            f"and {jax.tree.structure(_first(v))}"
        )
    qu, _ = jnp.linalg.qr(_basis(u, like))
    qv, _ = jnp.linalg.qr(_basis(v, like))
    return jnp.clip(jnp.linalg.svd(qu.T @ qv, compute_uv=False), 0.0, 1.0)


def _first(vectors: Any) -> Tree:
    """The first vector of a list of same-shaped pytrees, or of an Eigenpairs."""
    if isinstance(vectors, Eigenpairs):
        return jax.tree.map(lambda a: a[0], vectors.vectors)
    shapes = lambda t: (jax.tree.structure(t), [np.shape(a) for a in jax.tree.leaves(t)])
    if (
        isinstance(vectors, (list, tuple))
        and vectors
        and all(shapes(x) == shapes(vectors[0]) for x in vectors)
    ):
        return vectors[0]
    raise TypeError(
        "u and v must each be a non-empty list of pytrees shaped alike (the params' shape) "
        f"or the Eigenpairs of top_eigenvalues, got {type(vectors).__name__}"
    )
