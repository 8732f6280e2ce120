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
* :func:`fisher` — the model's Fisher information (1/n) Σᵢ E_{ŷ ~ p(·|xᵢ)} gᵢgᵢᵀ, gᵢ =
  ∇ log p(ŷ|xᵢ), exact or from one sampled label per example; :func:`empirical_fisher` —
  the same with the data's labels in place of the model's samples.
* :func:`preconditioned` — D^{-1/2} A D^{-1/2} for a positive diagonal D (an adaptive
  optimiser's): its λmax is the effective sharpness.
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
from typing import Any, NamedTuple, ParamSpec, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxnn import _checks
from jaxnn.base import Array, Params, PRNGKey

__all__ = [
    "LIKELIHOODS",
    "Curvature",
    "empirical_fisher",
    "fisher",
    "full_precision",
    "gauss_newton",
    "hessian_curvature",
    "hvp",
    "objective_loss",
    "operator",
    "preconditioned",
]

Tree = Any
_P = ParamSpec("_P")
_R = TypeVar("_R")


def full_precision(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` with every float32 matrix product it runs or traces at full precision.

    At JAX's default precision a float32 product may round its operands to TF32 (10
    significant bits) on recent NVIDIA GPUs, or to bfloat16 on TPUs: a relative error near
    10⁻³ in every Hessian-vector product and in every projection onto a Lanczos basis,
    which no solver's tolerance can get below. Every curvature product of this module and
    every tool of :mod:`jaxnn.spectral` therefore runs under
    ``jax.default_matmul_precision("highest")``, as :mod:`jaxnn.hessian` does. On a CPU,
    whose products are always full float32, nothing changes.
    """

    @functools.wraps(fn)
    def at_full_precision(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return at_full_precision


class Curvature(NamedTuple):
    """A symmetric linear map: ``matvec(params, v) -> A v`` (pytrees shaped like params).
    The constructors below and every tool of :mod:`jaxnn.spectral` run its products at
    full precision (:func:`full_precision`)."""

    matvec: Callable[[Params, Tree], Tree]


@functools.partial(jax.jit, static_argnums=0)
@full_precision
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

    return Curvature(full_precision(matvec))


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

    return Curvature(full_precision(matvec))


@functools.lru_cache(maxsize=64)
def _hessian_of(loss_fn: Callable) -> Curvature:
    """One Curvature per loss function, so that compiled loops are reused across calls."""
    return hessian_curvature(loss_fn)


def operator(loss_fn: Any) -> Callable[[Params, Tree], Tree]:
    """The matvec of a :class:`Curvature`, or the Hessian-vector product of a loss."""
    if isinstance(loss_fn, Curvature):
        return loss_fn.matvec
    if callable(loss_fn):
        return _hessian_of(loss_fn).matvec
    raise TypeError(
        f"loss_fn must be a function loss_fn(params) -> scalar or a Curvature, got {loss_fn!r}"
    )


def preconditioned(loss_fn: Callable | Curvature, d: Tree) -> Curvature:
    """The curvature v ↦ D^{-1/2} A D^{-1/2} v for a positive diagonal D.

    An adaptive optimiser steps w ← w − η D⁻¹ m (:func:`jaxnn.optimizers.preconditioner`
    gives its D); on a quadratic with Hessian A it is gradient descent (for AdaGrad and
    RMSProp) or momentum descent (Adam) in the coordinates u = D^{1/2} w, whose Hessian
    is D^{-1/2} A D^{-1/2}. Its λmax, the *effective sharpness*, is what stability is
    judged by: λ < 2/η for RMSProp-like steps, (2 + 2β₁)/((1 − β₁)η) for Adam (Cohen et
    al., "Adaptive gradient methods at the edge of stability" (2022),
    https://arxiv.org/abs/2207.14484). It has the eigenvalues of D⁻¹A.

    Args:
      loss_fn: ``loss_fn(params) -> scalar`` (A its Hessian) or a :class:`Curvature`.
      d: the diagonal, a pytree shaped like the params, every entry > 0.

    Returns:
      A :class:`Curvature` every tool of :mod:`jaxnn.spectral` accepts.

    Raises:
      ValueError: an entry of ``d`` that is not positive (where ``d`` is concrete), or a
        ``d`` whose structure or shapes differ from the params (at the first product).
    """
    matvec = operator(loss_fn)
    for i, leaf in enumerate(jax.tree.leaves(d)):
        value = _checks.concrete(leaf)
        if value is not None and not np.all(np.asarray(value) > 0):
            raise ValueError(f"d (leaf {i}) must be positive everywhere (a diagonal D > 0)")

    def product(params, v):
        shapes = jax.tree.map(np.shape, params), jax.tree.map(np.shape, d)
        if jax.tree.structure(d) != jax.tree.structure(params) or shapes[0] != shapes[1]:
            raise ValueError(
                f"d must be a pytree shaped like the params: got {shapes[1]}, params {shapes[0]}"
            )
        scale = jax.tree.map(lax.rsqrt, d)
        return optax.tree.mul(scale, matvec(params, optax.tree.mul(scale, v)))

    return Curvature(full_precision(product))


LIKELIHOODS = ("categorical", "gaussian")


def _xy(data: Any) -> tuple[Any, Any]:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"data must be a pair (x, y) of arrays, got {type(data).__name__}")
    x, y = data
    rows = {int(np.shape(a)[0]) for a in jax.tree.leaves((x, y)) if np.ndim(a)}
    if len(rows) != 1:
        raise ValueError(
            f"x and y must have the same number of rows, got shapes {np.shape(x)} and {np.shape(y)}"
        )
    _checks.finite("data (x)", x)
    return x, y


def _outer_products(per_example: Callable[[Params], Array], n: int) -> Callable:
    """v ↦ (1/n) Σᵢ ∇ℓᵢ (∇ℓᵢᵀ v) for the vector of per-example losses ℓ(w) of length n:
    one ``jvp`` (the n numbers ∇ℓᵢᵀv) and one ``vjp``, never the n gradients."""

    def matvec(params, v):
        directional = jax.jvp(per_example, (params,), (v,))[1]
        return jax.vjp(per_example, params)[1](directional / n)[0]

    return matvec


def empirical_fisher(model_fn: Callable, loss: Callable, data: Any) -> Curvature:
    """The empirical Fisher F̃ = (1/n) Σᵢ ∇ℓᵢ ∇ℓᵢᵀ over the n examples of ``data``.

    ℓᵢ = ``loss(model_fn(params, x)[i:i+1], y[i:i+1])``, the loss of example i alone
    (``loss`` is a mean over its batch, like :mod:`jaxnn.losses`' functions, so a batch of
    one is the example's loss). The gradient of the mean loss is (1/n) Σᵢ ∇ℓᵢ, not a term
    of F̃: F̃ is the uncentred second moment of the per-example gradients, which at a
    minimum of E (the mean gradient 0) is their covariance. It uses the data's labels, so
    it is not the model's Fisher (:func:`fisher`) and can differ from it badly away from a
    minimum (Kunstner, Hennig and Balles, "Limitations of the empirical Fisher
    approximation for natural gradient descent" (2019), https://arxiv.org/abs/1905.12558).

    Args:
      model_fn: ``model_fn(params, x) -> outputs``, a batch in, a batch out, each example's
        outputs depending on that example only (no batch-norm batch statistics).
      loss: ``loss(outputs, targets) -> scalar``, a mean over the batch.
      data: ``(x, y)``, arrays with a leading axis of n examples.

    Returns:
      A :class:`Curvature`; a product costs one ``jvp`` and one ``vjp`` over the batch.
    """
    if not (callable(model_fn) and callable(loss)):
        raise TypeError(
            "empirical_fisher needs model_fn(params, x) -> outputs and loss(outputs, targets)"
        )
    x, y = _xy(data)
    n = int(np.shape(jax.tree.leaves(x)[0])[0])

    def per_example(params):
        outputs = model_fn(params, x)
        return jax.vmap(lambda o, t: loss(o[None], t[None]))(outputs, y)

    return Curvature(full_precision(_outer_products(per_example, n)))


def fisher(
    model_fn: Callable, data: Any, *, likelihood: str = "categorical", key: PRNGKey | None = None
) -> Curvature:
    """The model's Fisher information F = (1/n) Σᵢ E_{ŷ ~ p(·|xᵢ)} [gᵢ gᵢᵀ], gᵢ = ∇_w log
    p(ŷ | xᵢ), the expectation over the model's own predictive distribution: the labels in
    ``data`` are not used.

    ``likelihood`` gives p(·|x) from the outputs f = model_fn(params, x):

    * ``"categorical"`` — softmax(f): F = (1/n) Σᵢ Jᵢᵀ (diag(pᵢ) − pᵢpᵢᵀ) Jᵢ, the
      Gauss-Newton matrix of the mean softmax cross-entropy;
    * ``"gaussian"`` — N(f, I): F = (1/n) Σᵢ JᵢᵀJᵢ, the Gauss-Newton matrix of
      :func:`jaxnn.losses.quadratic` (½‖f − y‖² per example, a mean over examples).

    Without ``key`` the expectation is exact (the closed forms above, by ``jvp`` and
    ``vjp``). With ``key``, one label ŷᵢ is sampled per example (``categorical`` on the
    logits, or f + N(0, I)), F̂ = (1/n) Σᵢ ∇ log p(ŷᵢ|xᵢ) ∇ log p(ŷᵢ|xᵢ)ᵀ: unbiased (E F̂ =
    F), of rank at most n, the labels fixed by ``key`` at each params (the Monte-Carlo
    Fisher of curvlinops and K-FAC). The mean over examples, not the sum: multiply by n
    for the Fisher of the whole dataset's log-likelihood.

    Args:
      model_fn: ``model_fn(params, x) -> outputs`` of shape (n, K), a batch in, a batch out.
      data: ``(x, y)``; only x is used (y is accepted so that the same pair serves
        :func:`empirical_fisher`), or x alone.
      likelihood: ``"categorical"`` or ``"gaussian"``.
      key: a PRNG key for the Monte-Carlo Fisher; None for the exact one.

    Returns:
      A :class:`Curvature`.

    References:
      Martens, "New insights and perspectives on the natural gradient method", JMLR 21
      (2020), https://jmlr.org/papers/v21/17-678.html.
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn must be a function model_fn(params, x), got {model_fn!r}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {list(LIKELIHOODS)}, got {likelihood!r}")
    if isinstance(data, (tuple, list)):
        x = _xy(data)[0]
    else:
        x = data
        _checks.finite("data (x)", x)
    n = int(np.shape(jax.tree.leaves(x)[0])[0])

    def outputs_of(params):
        return model_fn(params, x)

    if key is None:

        def matvec(params, v):
            outputs, jv = jax.jvp(outputs_of, (params,), (v,))
            if likelihood == "categorical":
                p = jax.nn.softmax(outputs, axis=-1)
                jv = p * jv - p * jnp.sum(p * jv, axis=-1, keepdims=True)
            return jax.vjp(outputs_of, params)[1](jv / n)[0]

        return Curvature(full_precision(matvec))

    sampler = _checks.prng_key("key", key)

    def matvec_sampled(params, v):
        outputs = lax.stop_gradient(outputs_of(params))
        if likelihood == "categorical":
            labels = jax.random.categorical(sampler, outputs, axis=-1)

            def per_example(p):
                logp = jax.nn.log_softmax(outputs_of(p), axis=-1)
                return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]

        else:
            sample = outputs + jax.random.normal(sampler, outputs.shape, outputs.dtype)

            def per_example(p):
                diff = (outputs_of(p) - sample).reshape(n, -1)
                return 0.5 * jnp.sum(diff * diff, axis=1)

        return _outer_products(per_example, n)(params, v)

    return Curvature(full_precision(matvec_sampled))
