"""Losses and penalties. Every loss is a mean over examples (the leading axis).

Notation (notes 001): a are the output pre-activations (logits), z = σ(a) or softmax(a)
the outputs, y the targets, n the number of examples.

* :func:`quadratic`             C = (1/n) Σ_x ½‖z − y‖²
* :func:`binary_cross_entropy`  C = −(1/n) Σ_x Σ_j [y_j ln σ(a_j) + (1 − y_j) ln(1 − σ(a_j))]
* :func:`softmax_cross_entropy` C = −(1/n) Σ_x ln softmax(a)_y   (log-likelihood)
* :func:`l2_penalty`            λ/(2n) Σ_w w²   over weights only (notes 000)
* :func:`l1_penalty`            λ/n Σ_w |w|     over weights only

Gradients that explain slow learning (notes 001), single sigmoid neuron a = wx + b:
quadratic ∂C/∂w = (z − y)σ'(a)x, ∂C/∂b = (z − y)σ'(a); cross-entropy ∂C/∂w = x(σ(a) − y),
∂C/∂b = σ(a) − y; softmax log-likelihood δ_j = ∂C/∂a_j = z_j − y_j.

The elementwise terms come from ``optax.losses`` (``l2_loss``,
``sigmoid_binary_cross_entropy``, ``softmax_cross_entropy`` and its integer-label form),
which work from logits with log-sigmoid / log-softmax and so stay finite for |a| ≥ 100.

Weights versus biases: see :func:`jaxnn.base.weight_mask` (a weight has ndim ≥ 2).
Softmax is unchanged when the same constant is added to every output bias, so a softmax
loss with penalties on weights only has a zero Hessian eigenvalue at every point.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import _checks
from jaxnn.base import Array, Params, weight_mask

__all__ = [
    "accuracy",
    "binary_cross_entropy",
    "l1_penalty",
    "l2_penalty",
    "quadratic",
    "softmax_cross_entropy",
]


def _mean_over_examples(per_entry: Array) -> Array:
    """Sums over every axis but the first (the outputs of one example), averages over it."""
    if per_entry.ndim == 0:
        return per_entry
    return jnp.mean(jnp.sum(per_entry.reshape(per_entry.shape[0], -1), axis=1))


def quadratic(pred: Any, target: Any) -> Array:
    """C = mean over examples of ½‖pred − target‖².

    Args:
      pred: network outputs, shape ``(n, ...)``.
      target: same shape as ``pred`` (no broadcasting).

    Example:
      >>> quadratic(jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 0.0]]))
      Array(2.5, dtype=float32)
    """
    _checks.same_shape("pred", pred, "target", target)
    return _mean_over_examples(optax.losses.l2_loss(jnp.asarray(pred), jnp.asarray(target)))


def binary_cross_entropy(logits: Any, target: Any) -> Array:
    """C = mean over examples of −Σ_j [y_j ln σ(a_j) + (1 − y_j) ln(1 − σ(a_j))].

    Computed from the logits a with log σ(a) and log σ(−a) = log(1 − σ(a)), so it stays
    finite (and its gradient σ(a) − y exact) for any finite logit.

    Args:
      logits: pre-sigmoid outputs a, shape ``(n,)`` or ``(n, outputs)``.
      target: y in [0, 1], same shape as ``logits``.
    """
    _checks.same_shape("logits", logits, "target", target)
    y = _checks.concrete(target)
    if y is not None and y.size and (np.any(y < 0) or np.any(y > 1) or np.any(np.isnan(y))):
        raise ValueError(
            f"target must lie in [0, 1] for binary cross-entropy, got values in "
            f"[{np.nanmin(y)}, {np.nanmax(y)}]"
        )
    logits = jnp.asarray(logits)
    target = jnp.asarray(target, logits.dtype)
    return _mean_over_examples(optax.losses.sigmoid_binary_cross_entropy(logits, target))


def softmax_cross_entropy(logits: Any, labels: Any) -> Array:
    """C = mean over examples of −ln softmax(a)[y] (the log-likelihood of the true class).

    Args:
      logits: shape ``(n, classes)``.
      labels: ints in [0, classes) of shape ``(n,)``, or one-hot (or probability) rows of
        shape ``(n, classes)``. Integer labels are range-checked when concrete; inside
        ``jit`` they are assumed valid.

    Raises:
      ValueError: labels of neither shape, or outside [0, classes).
      TypeError: non-integer labels of shape ``(n,)``.
    """
    logits = jnp.asarray(logits)
    if logits.ndim < 1:
        raise ValueError(f"logits must have shape (n, classes), got shape {logits.shape}")
    classes = logits.shape[-1]
    labels_shape = np.shape(labels)
    if labels_shape == logits.shape:
        per_example = optax.losses.softmax_cross_entropy(logits, jnp.asarray(labels, logits.dtype))
    elif labels_shape == logits.shape[:-1]:
        dtype = jnp.asarray(labels).dtype
        if not jnp.issubdtype(dtype, jnp.integer):
            raise TypeError(
                f"labels of shape {labels_shape} must be integer class indices, got "
                f"dtype {dtype}; pass one-hot rows of shape {logits.shape} for "
                f"probabilities"
            )
        check_labels(labels, classes)
        per_example = optax.losses.softmax_cross_entropy_with_integer_labels(
            logits, jnp.asarray(labels)
        )
    else:
        raise ValueError(
            f"labels must have shape {logits.shape[:-1]} (class indices) or "
            f"{logits.shape} (one-hot), got shape {labels_shape}"
        )
    return jnp.mean(per_example)


def check_labels(labels: Any, classes: int, *, name: str = "labels") -> None:
    """Raises ValueError if concrete integer ``labels`` fall outside [0, classes)."""
    y = _checks.concrete(labels)
    if y is not None and y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError(
            f"{name} must be class indices in [0, {classes}), got values in [{y.min()}, {y.max()}]"
        )


def _penalty_terms(params: Params, lam: Any, n: Any, mask: Any) -> Any:
    _checks.in_range("lam", lam, 0.0)
    _checks.in_range("n", n, 0.0, low_open=True)
    mask = weight_mask(params) if mask is None else mask
    leaves = jax.tree.leaves(params)
    flags = jax.tree.leaves(mask)
    if len(leaves) != len(flags):
        raise ValueError(
            f"mask must have one bool per leaf of params ({len(leaves)}), got {len(flags)}"
        )
    return [w for w, keep in zip(leaves, flags) if keep]


def l2_penalty(params: Params, lam: float, n: float, mask: Any = None) -> Array:
    """λ/(2n) Σ_w w² over the weights; gradient (λ/n)w for weights, 0 for biases (notes 000).

    Erratum (notes 000): the notes write the gradient as (λ/n) Σ_w w; each weight's own
    gradient is (λ/n) w, which gives the weight-decay update w ← (1 − ηλ/n)w − η∂L₀/∂w.

    Args:
      params: any pytree of arrays.
      lam: λ ≥ 0 (may be traced).
      n: the number of training examples, > 0.
      mask: optional pytree of bools selecting the penalised leaves; default
        :func:`jaxnn.base.weight_mask` (leaves with ndim ≥ 2).
    """
    weights = _penalty_terms(params, lam, n, mask)
    total = sum((jnp.sum(jnp.square(w)) for w in weights), jnp.zeros(()))
    return lam / (2.0 * n) * total


def l1_penalty(params: Params, lam: float, n: float, mask: Any = None) -> Array:
    """λ/n Σ_w |w| over the weights (same arguments as :func:`l2_penalty`).

    Its (sub)gradient is (λ/n) sign(w): a constant pull toward 0 that drives small weights
    to exactly zero only with a proximal step, not with plain gradient steps.
    """
    weights = _penalty_terms(params, lam, n, mask)
    total = sum((jnp.sum(jnp.abs(w)) for w in weights), jnp.zeros(()))
    return lam / n * total


def accuracy(logits: Any, labels: Any) -> Array:
    """Fraction of examples whose predicted class equals the label.

    Multi-class logits ``(n, classes)``: the prediction is argmax; labels are ints ``(n,)``
    or one-hot ``(n, classes)``. Binary logits ``(n,)`` or ``(n, 1)``: the prediction is
    a > 0 (σ(a) > ½); labels are 0/1 of the same shape.
    """
    logits = jnp.asarray(logits)
    labels_shape = np.shape(labels)
    if logits.ndim == 1 or logits.shape[-1] == 1:
        _checks.same_shape("logits", logits, "labels", labels)
        return jnp.mean((logits > 0) == (jnp.asarray(labels) > 0.5))
    if labels_shape == logits.shape:
        labels = jnp.argmax(jnp.asarray(labels), axis=-1)
    elif labels_shape == logits.shape[:-1]:
        check_labels(labels, logits.shape[-1])
    else:
        raise ValueError(
            f"labels must have shape {logits.shape[:-1]} (class indices) or "
            f"{logits.shape} (one-hot), got shape {labels_shape}"
        )
    return jnp.mean(jnp.argmax(logits, axis=-1) == jnp.asarray(labels))
