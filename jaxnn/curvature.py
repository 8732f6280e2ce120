"""Curvature operators: the Hessian, or the Gauss-Newton matrix, as a matrix-vector product.

A *curvature* is a symmetric linear map v ↦ Av on params-shaped pytrees, never formed as a
matrix:

* :func:`hvp` — H v = ∂/∂t ∇E(w + t v) at t = 0, forward-over-reverse (the ``jvp`` of
  ``grad``), about the cost of two gradients. The exact Hessian of :mod:`jaxnn.hessian` is
  built from it column by column, and every matrix-free tool of :mod:`jaxnn.spectral`
  applies it.
* :func:`hessian_curvature` — A = ∇²E(w); optionally E = the mean of a per-batch loss over
  a dataset, the products summed batch by batch.
* :func:`gauss_newton` — A = Jᵀ H_ℓ J, the generalised Gauss-Newton matrix of a loss
  ℓ(f(w)) (J the Jacobian of the model's outputs f, H_ℓ the Hessian of the loss in the
  outputs): positive semi-definite when ℓ is convex in f.
* :func:`objective_loss` — the loss of a :func:`jaxnn.train.objective` as a function of the
  params alone, for any of these.

References:
  Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6 (1994),
  https://doi.org/10.1162/neco.1994.6.1.147.
  Schraudolph, "Fast curvature matrix-vector products for second-order gradient descent",
  Neural Computation 14 (2002), https://doi.org/10.1162/08997660260028683.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import optax
from jax import lax

from jaxnn import _checks
from jaxnn.base import Array, Params, PRNGKey

__all__ = ["Curvature", "gauss_newton", "hessian_curvature", "hvp", "objective_loss"]

Tree = Any


class Curvature(NamedTuple):
    """A symmetric linear map: ``matvec(params, v) -> A v`` (pytrees shaped like params)."""

    matvec: Callable[[Params, Tree], Tree]


@functools.partial(jax.jit, static_argnums=0)
def hvp(loss_fn: Callable[[Params], Array], params: Params, v: Tree) -> Tree:
    """H v = ∂/∂t ∇E(w + t v) at t = 0: the ``jvp`` of ``grad`` (forward-over-reverse),
    pytree in, pytree out, without forming H."""
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def hessian_curvature(
    loss_fn: Callable, data: Any = None, *, batch_size: int | None = None
) -> Curvature:
    """The Hessian of ``loss_fn(params)``, or of the dataset mean of ``loss_fn(params,
    batch)``.

    With ``data`` (a pytree of arrays sharing a leading axis of n rows), E(w) is the mean
    over the n examples of a per-batch mean loss, and
    H v = Σ_b (n_b / n) ∇²E_b(w) v over consecutive batches of ``batch_size`` rows (the
    last one smaller when n is not a multiple), summed inside ``lax.scan``: a dataset whose
    full-batch HVP would not fit in memory still works.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function, got {loss_fn!r}")
    if data is None:
        if batch_size is not None:
            raise ValueError("batch_size needs data=...")
        return Curvature(functools.partial(hvp, loss_fn))
    rows = {int(np.shape(a)[0]) for a in jax.tree.leaves(data)}
    if len(rows) != 1:
        raise ValueError(
            f"every array in data must have the same number of rows, got shapes "
            f"{[np.shape(a) for a in jax.tree.leaves(data)]}"
        )
    n = rows.pop()
    for i, leaf in enumerate(jax.tree.leaves(data)):
        _checks.finite(f"data (array {i})", leaf)
    size = n if batch_size is None else _checks.positive_int("batch_size", batch_size)
    if size > n:
        raise ValueError(f"batch_size must be at most the {n} rows of data, got {size}")
    full, rest = divmod(n, size)

    def batch_hvp(params, v, batch):
        return hvp(lambda p: loss_fn(p, batch), params, v)

    def matvec(params, v):
        head = jax.tree.map(lambda a: a[: full * size].reshape((full, size, *a.shape[1:])), data)
        total = lax.scan(
            lambda acc, b: (optax.tree.add(acc, batch_hvp(params, v, b)), None),
            optax.tree.zeros_like(v),
            head,
        )[0]
        total = optax.tree.scale(size / n, total)
        if rest:
            tail = jax.tree.map(lambda a: a[full * size :], data)
            total = optax.tree.add_scale(total, rest / n, batch_hvp(params, v, tail))
        return total

    return Curvature(matvec)


def objective_loss(
    objective: Any,
    state: Any = None,
    batch: Any = None,
    *,
    train: bool = False,
    key: PRNGKey | None = None,
) -> Callable:
    """The training loss of a :func:`jaxnn.train.objective` (data loss + penalty) as a
    function of the params alone: ``loss_fn(params)`` on ``batch``, or ``loss_fn(params,
    batch)`` for :func:`hessian_curvature` over a dataset when ``batch`` is None.

    By default the model is in inference mode: batch norm uses its running averages in
    ``state`` and dropout is off, so E is a fixed function of w and its Hessian is that of
    the network as it predicts. ``train=True`` analyses the training-mode loss instead
    (batch statistics: each example's output then depends on the whole batch; dropout
    draws its mask from ``key``).
    """
    if not hasattr(objective, "value"):
        raise TypeError(
            f"objective must be built by jaxnn.train.objective, got {type(objective).__name__}"
        )
    state = {} if state is None else state

    def on(params, data):
        return objective.value(params, state, data, train=train, key=key)[0]

    return on if batch is None else (lambda params: on(params, batch))


def gauss_newton(
    model_fn: Callable[[Params], Array], output_loss: Callable[[Array], Array]
) -> Curvature:
    """The generalised Gauss-Newton matrix G = Jᵀ H_ℓ J of E(w) = ℓ(f(w)).

    G v = Jᵀ (H_ℓ (J v)): J v by ``jvp`` of ``model_fn``, H_ℓ u by forward-over-reverse on
    ``output_loss`` at f(w), Jᵀ by ``vjp``. For a model linear in w with a quadratic ℓ,
    G equals the Hessian; G drops the term Σ_k (∂ℓ/∂f_k) ∇²f_k, and is positive
    semi-definite whenever ℓ is convex in f (squared error, softmax cross-entropy).
    """
    if not (callable(model_fn) and callable(output_loss)):
        raise TypeError(
            "gauss_newton needs model_fn(params) -> outputs and output_loss(outputs) -> scalar"
        )

    def matvec(params, v):
        outputs, jv = jax.jvp(model_fn, (params,), (v,))
        hjv = jax.jvp(jax.grad(output_loss), (outputs,), (jv,))[1]
        return jax.vjp(model_fn, params)[1](hjv)[0]

    return Curvature(matvec)
