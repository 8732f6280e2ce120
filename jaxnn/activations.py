"""Activation functions h(a), by name.

All come from ``jax.nn`` except ``identity``:

* ``sigmoid``  σ(a) = 1 / (1 + e^(−a)),  σ'(a) = σ(a)(1 − σ(a))   (notes 001)
* ``tanh``     tanh(a),                   tanh'(a) = 1 − tanh²(a)  (notes 000)
* ``relu``     max(0, a)
* ``identity`` a
* ``softmax``  z_j = e^(a_j) / Σ_k e^(a_k) over the last axis      (notes 001)

Example:
  >>> get("tanh")(jnp.array([0.0, 1.0]))
  Array([0.       , 0.7615942], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxnn import _checks
from jaxnn.base import Activation, Array

__all__ = ["NAMES", "get", "identity", "relu", "sigmoid", "softmax", "tanh"]

sigmoid = jax.nn.sigmoid
tanh = jnp.tanh
relu = jax.nn.relu
softmax = jax.nn.softmax


def identity(a: Array) -> Array:
    """h(a) = a: the linear activation (and the output layer's default)."""
    return a


_ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "identity": identity,
    "softmax": softmax,
}

NAMES = tuple(_ACTIVATIONS)


def get(name: str | Callable[[Array], Array]) -> Activation:
    """Returns the activation called ``name``; a callable is returned unchanged.

    Raises:
      ValueError: for an unknown name (the message lists the valid ones).
      TypeError: for anything that is neither a name nor a callable.
    """
    return _checks.resolve("activation", name, _ACTIVATIONS)
