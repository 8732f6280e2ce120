"""Shared plumbing of the matrix-free tools: blocks, operators, random starting vectors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxnn.base import Params, PRNGKey
from jaxnn.curvature import Curvature
from jaxnn.curvature import operator as matvec  # a loss_fn's HVP or a Curvature's matvec

__all__ = [
    "Tree",
    "block",
    "dtype",
    "flat",
    "matvec",
    "negated",
    "probe",
    "random_tree",
    "random_unit",
    "restricted",
    "size",
    "start",
]

Tree = Any


def block(mask: Any, params: Params) -> Tree | None:
    """``mask`` as a pytree of 0/1 arrays shaped like params (None: everything)."""
    if mask is None:
        return None
    if callable(mask):
        flat, treedef = jax.tree_util.tree_flatten_with_path(params)
        picks = [bool(mask(jax.tree_util.keystr(path))) for path, _ in flat]
        mask = jax.tree.unflatten(treedef, picks)
    try:
        ones = jax.tree.map(
            lambda m, p: jnp.broadcast_to(jnp.asarray(m, p.dtype), p.shape), mask, params
        )
    except (ValueError, TypeError):
        raise ValueError(
            "mask must be a pytree shaped like params (a bool per leaf or per "
            "entry) or a function path -> bool"
        ) from None
    if not any(bool(jnp.any(m)) for m in jax.tree.leaves(ones)):
        raise ValueError("mask selects no parameter")
    return ones


def restricted(matvec: Callable, params: Params, block: Tree | None) -> Callable:
    """v ↦ A_BB v = B A B v (B the 0/1 block), or v ↦ A v without a block."""
    if block is None:
        return functools.partial(matvec, params)
    return lambda v: optax.tree.mul(block, matvec(params, optax.tree.mul(block, v)))


def random_tree(key: PRNGKey, like: Tree, rademacher: bool = False) -> Tree:
    """Independent N(0, 1) (or ±1) entries in a pytree shaped like ``like``, drawn as one
    flat vector of all P entries and cut into the leaves: one random-number kernel for the
    whole tree (XLA:CPU compiles each kernel separately, and one per leaf would make
    every program that draws a probe that much slower to build)."""
    flat, unravel = ravel_pytree(like)
    if rademacher:
        return unravel(jax.random.rademacher(key, flat.shape, flat.dtype))
    return unravel(jax.random.normal(key, flat.shape, flat.dtype))


def random_unit(key: PRNGKey, params: Params, block: Tree | None, rademacher: bool = False) -> Tree:
    v = random_tree(key, params, rademacher)
    if block is not None:
        v = optax.tree.mul(block, v)
    return optax.tree.scale(1.0 / optax.tree.norm(v), v)


def probe(key: PRNGKey, params: Params, block: Tree | None) -> Tree:
    """A Rademacher probe (independent ±1 entries) shaped like params, 0 outside the block."""
    z = random_tree(key, params, rademacher=True)
    return z if block is None else optax.tree.mul(block, z)


def flat(op: Callable[[Tree], Tree], like: Tree) -> Callable:
    """``op`` (pytree to pytree, shaped like ``like``) as a map of flat vectors of P entries."""
    unravel = ravel_pytree(like)[1]
    return lambda x: ravel_pytree(op(unravel(x)))[0]


def size(params: Params, block: Tree | None) -> int:
    if block is None:
        return sum(int(np.size(p)) for p in jax.tree.leaves(params))
    return int(sum(jnp.sum(b) for b in jax.tree.leaves(block)))


def start(start: Any, params: Params, block: Tree | None, rademacher: bool = False) -> Tree:
    """The unit starting vector: random from a key (normal, or Rademacher), or ``start``
    normalised."""
    if hasattr(start, "dtype") and jnp.issubdtype(start.dtype, jax.dtypes.prng_key):
        return random_unit(start, params, block, rademacher)
    return optax.tree.scale(1.0 / optax.tree.norm(start), start)


def dtype(params: Params) -> Any:
    return jnp.result_type(*jax.tree.leaves(params))


@functools.lru_cache(maxsize=64)
def negated(matvec: Callable) -> Curvature:
    return Curvature(lambda p, v: optax.tree.scale(-1.0, matvec(p, v)))
