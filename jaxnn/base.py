"""Types shared across jaxnn, and the one pytree convention it relies on.

Params, model state and optimiser state are plain pytrees (dicts and lists of arrays).
The type aliases below are documentation, not runtime checks.

**What is a weight.** Penalties (L1, L2) and weight decay act on weights only, never on
biases or normalisation scales and shifts. jaxnn calls a leaf a *weight* when it has two
or more dimensions (a ``(fan_in, fan_out)`` matrix, a convolution kernel) and a *bias*
otherwise. The rule needs no names, so it holds for jaxnn's models and for hand-written,
Flax or Equinox parameter trees alike; pass an explicit mask where it does not fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "Activation",
    "Array",
    "DType",
    "Initializer",
    "PRNGKey",
    "Params",
    "Shape",
    "State",
    "weight_mask",
]

Array = jax.Array
PRNGKey = jax.Array
Params = Any  # a pytree of arrays
State = Any  # a pytree of arrays (batch-norm running averages; {} when none)
Shape = tuple[int, ...]
DType = Any
Initializer = Callable[..., Array]  # (key, shape, dtype=jnp.float32) -> Array
Activation = Callable[[Array], Array]


def weight_mask(params: Params) -> Any:
    """Marks the weights of a pytree: True for leaves with ``ndim >= 2``, False otherwise.

    Args:
      params: any pytree of arrays.

    Returns:
      A pytree of the same structure with a Python bool per leaf, usable as an optax mask.

    Example:
      >>> weight_mask([{"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}])
      [{'b': False, 'w': True}]
    """
    return jax.tree.map(lambda leaf: jnp.ndim(leaf) >= 2, params)
