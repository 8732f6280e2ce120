"""Random draws that compile once per power-of-two size (plumbing for the initialisers).

XLA:CPU compiles a random draw of each new shape as a new program, so an MLP's init would
compile once per layer shape. Outside ``jit`` (a concrete key of JAX's default
partitionable threefry), :func:`standard` draws the n numbers of a shape as the first n of
a draw of 2^⌈log₂ n⌉, compiled once per power of two and dtype: threefry computes entry i
from the key and i alone, so these are the very numbers ``jax.random.normal(key, shape)``
returns. :func:`scale` then multiplies by σ on the host in the same IEEE arithmetic. Under
``jit`` or ``vmap`` every draw is the plain ``jax.random`` call. What it saves is measured
in ``benchmarks/README.md``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _checks
from jaxnn.base import Array, DType, PRNGKey, Shape

__all__ = ["scale", "standard"]


#: Draws smaller than this are padded up to it (one program for every small bias).
_SMALLEST_BUCKET = 256


@functools.cache
def _bucket_draw(kind: str, size: int, dtype: Any) -> Callable[[PRNGKey], Array]:
    """The compiled draw of ``size`` standard numbers of ``kind`` and ``dtype``."""
    if kind == "normal":
        return jax.jit(lambda key: jax.random.normal(key, (size,), dtype))
    return jax.jit(lambda key: jax.random.uniform(key, (size,), dtype, -1.0, 1.0))


def _host_arithmetic(key: Any, dtype: Any) -> bool:
    """Whether :func:`standard` may draw by power-of-two sizes and scale on the host: a
    concrete threefry key of the partitionable kind, float32 or float64 numbers."""
    if (
        _checks.is_traced(key)
        or not jax.config.values["jax_threefry_partitionable"]
        or jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
    ):
        return False
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if len(jnp.shape(key)) != (0 if typed else 1):
        return False
    return str(jax.random.key_impl(key)) == "threefry2x32"


def standard(kind: str, key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Any:
    """Standard draws: ``jax.random.normal(key, shape, dtype)`` for ``kind="normal"``,
    ``jax.random.uniform(key, shape, dtype, -1, 1)`` for ``kind="uniform"``, bit for bit.

    With a concrete key (see the module doc) the numbers come back as a host NumPy array,
    from a program compiled once per power of two; otherwise as the ``jax.random`` call's
    array.
    """
    shape = _checks.shape("shape", shape)
    n = math.prod(shape)
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    if n == 0 or not _host_arithmetic(key, dtype):
        if kind == "normal":
            return jax.random.normal(key, shape, dtype)
        return jax.random.uniform(key, shape, dtype, -1.0, 1.0)
    size = max(_SMALLEST_BUCKET, 1 << (n - 1).bit_length())
    return np.asarray(_bucket_draw(kind, size, dtype)(key))[:n].reshape(shape)


def scale(draw: Any, factor: Any, dtype: Any) -> Array:
    """``draw · factor`` in ``dtype``: on the host for a host draw and concrete factor."""
    value = _checks.concrete(factor)
    if isinstance(draw, np.ndarray) and value is not None:
        return jax.device_put(draw * np.asarray(value, dtype))
    return jnp.asarray(draw) * jnp.asarray(factor, dtype)
