"""Hooks: measurements run inside ``fit``'s scan every k steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnn import _checks
from jaxnn.base import Array, Params, PRNGKey, State
from jaxnn.model import hidden_stats

__all__ = ["Hook", "HookHistory", "layer_grad_norms", "layer_grad_norms_hook", "layer_stats_hook"]


class Hook(NamedTuple):
    """A measurement carried through the scan and run every ``every`` steps.

    Fields:
      init: ``init(params) -> hook_state``.
      update: ``update(hook_state, params, state, step) -> (hook_state, record)``, called
        with the params *before* step ``step`` is taken. ``record`` is a pytree of arrays of
        fixed shape; ``fit`` stacks the records on a leading axis.
      every: run at steps 0, every, 2·every, ...
      with_opt_state: when True, ``update`` also receives the optimiser state of that
        moment (after step ``step`` − 1) as a fifth argument, e.g. to read an adaptive
        optimiser's preconditioner.
    """

    init: Callable[[Params], Any]
    update: Callable[..., tuple[Any, Any]]
    every: int = 1
    with_opt_state: bool = False


class HookHistory(NamedTuple):
    """A hook's records: ``step`` (calls,) and ``record`` (leaves stacked as (calls, ...))."""

    step: Array
    record: Any


def layer_stats_hook(
    x: Any, activation: str | Callable = "tanh", every: int = 1, saturation: float = 0.99
) -> Hook:
    """Per-hidden-layer activation statistics on probe inputs ``x`` (plain-path params).

    The record is :class:`jaxnn.model.HiddenStats`: pre-activation mean/std/E[a²],
    activation mean/std and the fraction of |z| > ``saturation``, each of shape (L−1,).
    """
    x = jnp.asarray(x)

    def update(hook_state, params, state, step):
        return hook_state, hidden_stats(params, x, activation, saturation)

    return Hook(lambda params: (), update, _checks.positive_int("every", every))


def layer_grad_norms(
    objective: Callable, params: Params, state: State, batch: Any, *, key: PRNGKey | None = None
) -> Array:
    """‖∂E/∂θ_l‖ for every top-level entry θ_l of the params (every layer of a jaxnn MLP),
    E = ``objective(params, state, batch, key)``; shape (L,). Wrap it in ``jax.jit`` (with
    ``objective`` bound) to compute it as one program rather than op by op."""
    grads, _ = jax.grad(objective, has_aux=True)(params, state, batch, key)
    layers = grads if isinstance(grads, (list, tuple)) else [grads[k] for k in sorted(grads)]
    return jnp.stack([optax.tree.norm(g) for g in layers])


def layer_grad_norms_hook(objective: Callable, batch: Any, every: int = 1, *, key: PRNGKey) -> Hook:
    """:func:`layer_grad_norms` on a fixed ``batch`` (with ``fold_in(key, step)``): how
    gradients vanish or explode with depth. Record shape (L,). ``key`` is required (typed or
    legacy); the objective's dropout, if any, draws from it."""
    key = _checks.prng_key("key", key)

    def update(hook_state, params, state, step):
        return hook_state, layer_grad_norms(
            objective, params, state, batch, key=jax.random.fold_in(key, step)
        )

    return Hook(lambda params: (), update, _checks.positive_int("every", every))
