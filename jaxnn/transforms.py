"""Optimiser building blocks that optax does not have in the notes' form.

* :func:`scale_by_adagrad` — AdaGrad's G ← G + g², u = g/(√G + ε) with G₀ = 0 (optax's
  ``scale_by_rss`` starts G at a positive value and puts ε inside the root).
* :func:`proximal_l1` — the proximal step of an L1 penalty: soft-thresholding, which sets
  weights exactly to zero.
* :func:`switch` — one of several optimisers chosen by an index that may be traced, so a
  sweep over optimisers is one compiled program.

The named optimisers of :mod:`jaxnn.optimizers` are chains of these and of optax's own
blocks.

References:
  Duchi, Hazan and Singer, "Adaptive subgradient methods for online learning and
  stochastic optimization", JMLR 12 (2011), https://jmlr.org/papers/v12/duchi11a.html.
  Parikh and Boyd, "Proximal algorithms", Foundations and Trends in Optimization 1
  (2014), §6.5.2, https://doi.org/10.1561/2400000003.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnn import _checks
from jaxnn.base import weight_mask

__all__ = ["ScaleByAdagradState", "SwitchState", "proximal_l1", "scale_by_adagrad", "switch"]


class ScaleByAdagradState(NamedTuple):
    """Running sum of squared gradients G (a pytree like the params)."""

    sum_of_squares: Any


def scale_by_adagrad(eps: float = 1e-8) -> optax.GradientTransformation:
    """u = g / (√G + ε) with G ← G + g² and G₀ = 0.

    Written here because optax's ``scale_by_rss`` computes g/√(G + ε) (ε inside the root)
    and starts from G₀ = 0.1, which is a different update from the textbook one.
    """

    def init_fn(params):
        return ScaleByAdagradState(jax.tree.map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        del params
        total = jax.tree.map(lambda g, s: s + jnp.square(g), updates, state.sum_of_squares)
        updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, total)
        return updates, ScaleByAdagradState(total)

    return optax.GradientTransformation(init_fn, update_fn)


def proximal_l1(strength: Any, lr: Any, mask: Any = None) -> optax.GradientTransformation:
    """Soft-thresholding after the step: w⁺ = sign(w + u)·max(|w + u| − η κ₁, 0).

    Returns the update w⁺ − w, so that ``optax.apply_updates`` lands on w⁺ (exactly 0 where
    the threshold wins). Acts on the leaves selected by ``mask`` (default: weights).
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("proximal_l1 needs params: call update(grads, state, params)")
        flags = weight_mask(params) if mask is None else (mask(params) if callable(mask) else mask)
        threshold = lr * strength

        def prox(u, w, on):
            if not on:
                return u
            z = w + u
            return jnp.sign(z) * jnp.maximum(jnp.abs(z) - threshold, 0.0) - w

        return jax.tree.map(prox, updates, params, flags), state

    return optax.GradientTransformation(init_fn, update_fn)


class SwitchState(NamedTuple):
    """The state of :func:`switch`: the chosen ``index`` and every optimiser's state."""

    index: Any
    states: tuple


def switch(index: Any, choices: Any) -> optax.GradientTransformation:
    """Runs ``choices[index]``: the optimiser as a value, so that a sweep can vmap over it.

    The state holds ``index`` and the state of every choice (each initialised on the
    params); ``update`` is ``lax.switch(index, ...)`` over the choices, branch i updating
    state i and passing the others through. Every choice of the same structure gives one
    program, whatever ``index`` is: a sweep over (optimiser, η) compiles once. Under
    ``vmap`` with a batched index XLA computes every branch and selects, so each step costs
    the arithmetic of all the choices (small beside a model's forward and backward pass).

    Args:
      index: an int in [0, len(choices)), or a traced int (then assumed in range;
        ``lax.switch`` clamps it).
      choices: a sequence of optax GradientTransformations (e.g. from :func:`get`).
    """
    choices = tuple(choices)
    if not choices or not all(isinstance(c, optax.GradientTransformation) for c in choices):
        raise TypeError(
            f"choices must be a non-empty sequence of optax GradientTransformations, "
            f"got {choices!r:.120}"
        )
    value = _checks.concrete(index)
    if value is not None and (
        value.ndim or not float(value).is_integer() or not 0 <= value < len(choices)
    ):
        raise ValueError(
            f"index must be an int in [0, {len(choices)}) choosing among the "
            f"{len(choices)} choices, got {index!r}"
        )

    def init_fn(params):
        return SwitchState(jnp.asarray(index, jnp.int32), tuple(c.init(params) for c in choices))

    def update_fn(updates, state, params=None):
        def branch(i):
            def run(updates, states, params):
                new, s = choices[i].update(updates, states[i], params)
                return new, (*states[:i], s, *states[i + 1 :])

            return run

        new, states = jax.lax.switch(
            state.index, [branch(i) for i in range(len(choices))], updates, state.states, params
        )
        return new, SwitchState(state.index, states)

    return optax.GradientTransformation(init_fn, update_fn)
