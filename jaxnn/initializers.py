"""Weight initialisers, by name, with the ``jax.nn.initializers`` signature.

Each initialiser is a function ``init(key, shape, dtype=jnp.float32) -> Array``. For a
weight matrix, ``shape = (fan_in, fan_out)``: M = fan_in inputs to each unit, N = fan_out
units in the layer (for higher-rank kernels the fans follow ``jax.nn.initializers``:
the last two axes, times the receptive field).

=========  ==================================  =======================================
name       distribution                        variance
=========  ==================================  =======================================
zeros      0                                   0
small      N(0, 0.01²)                         1e-4                        (seed 002)
normal     N(0, 1)                             1                       (seeds 000, 002)
lecun      N(0, 1/M)                           1/M                         (seed 000)
xavier     U[−1/√M, +1/√M]                     1/(3M)                      (seed 001)
glorot     U[−√6/√(M+N), +√6/√(M+N)]           2/(M+N)     (Glorot & Bengio 2010)
he         N(0, 2/M)                           2/M            (He et al. 2015; seed 001)
=========  ==================================  =======================================

"N" is a plain normal: jaxnn draws what ``variance_scaling(..., distribution="normal")``
draws (bit for bit), not the *truncated* normal of ``lecun_normal``/``he_normal``.

**Compilation.** XLA:CPU takes 0.3 to 1 s to compile one random draw, and a draw of each
new shape is a new program, so an MLP's init would compile once per layer shape. Outside
``jit`` (a concrete key of JAX's default partitionable threefry), :func:`standard` draws
the n numbers of a shape as the first n of a draw of 2^⌈log₂ n⌉, compiled once per power of
two and dtype: threefry computes entry i from the key and i alone, so these are the very
numbers ``jax.random.normal(key, shape)`` returns. The scaling by σ is then done on the
host in the same IEEE arithmetic. Under ``jit`` or ``vmap`` every draw is the plain
``jax.random`` call.

Erratum (seed 001): the seed prints the normalised Xavier bound as 6/√(N+M). The
published bound, used here under the name ``glorot``, is √6/√(N+M), so that the uniform
distribution has variance (√6)²/(3(N+M)) = 2/(N+M).

``zeros``, ``small`` and ``normal`` need no fans, so they also serve as bias initialisers
(shape ``(fan_out,)``); the others raise a ValueError for shapes of rank < 2.

Example:
  >>> w = get("he")(jax.random.key(0), (784, 256))
  >>> w.shape, w.dtype
  ((784, 256), dtype('float32'))
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
from jaxnn.base import Array, DType, Initializer, PRNGKey, Shape

__all__ = [
    "NAMES",
    "fans",
    "gaussian",
    "get",
    "glorot",
    "glorot_bound",
    "he",
    "lecun",
    "normal",
    "scaled",
    "small",
    "xavier",
    "xavier_bound",
    "zeros",
]


def _check_shape(shape: Any) -> Shape:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"shape must be a tuple of non-negative ints, got {shape!r}")
    return shape


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
        or not jax.config.jax_threefry_partitionable
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
    shape = _check_shape(shape)
    n = math.prod(shape)
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    if n == 0 or not _host_arithmetic(key, dtype):
        if kind == "normal":
            return jax.random.normal(key, shape, dtype)
        return jax.random.uniform(key, shape, dtype, -1.0, 1.0)
    size = max(_SMALLEST_BUCKET, 1 << (n - 1).bit_length())
    return np.asarray(_bucket_draw(kind, size, dtype)(key))[:n].reshape(shape)


def _scale(draw: Any, factor: Any, dtype: Any) -> Array:
    """``draw · factor`` in ``dtype``: on the host for a host draw and concrete factor."""
    value = _checks.concrete(factor)
    if isinstance(draw, np.ndarray) and value is not None:
        return jax.device_put(draw * np.asarray(value, dtype))
    return jnp.asarray(draw) * jnp.asarray(factor, dtype)


def gaussian(std: float) -> Initializer:
    """N(0, std²): a plain (untruncated) normal with standard deviation ``std``.

    ``std`` may be a traced value (a sweep over init scales); a concrete negative or NaN
    ``std`` raises ValueError.
    """
    _checks.in_range("std", std, 0.0)

    def init(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
        return _scale(standard("normal", key, shape, dtype), std, dtype)

    return init


def scaled(initializer: str | Initializer, scale: float) -> Initializer:
    """Multiplies every draw of ``initializer`` by ``scale`` (so its std by |scale|).

    ``scale`` may be traced, which is how a sweep vmaps over initialisation scales while
    the network's structure stays fixed. A concrete negative or NaN scale raises ValueError.
    """
    _checks.in_range("scale", scale, 0.0)
    inner = get(initializer)

    def init(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
        return inner(key, shape, dtype) * jnp.asarray(scale, dtype)

    return init


def fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel: the last two axes times the receptive field (the
    product of the others), as ``jax.nn.initializers`` counts them."""
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _fan_based(name: str, scale: float, mode: str, distribution: str) -> Initializer:
    """Variance ``scale / fan`` (``mode``: "fan_in" or "fan_avg"), normal or uniform: what
    ``jax.nn.initializers.variance_scaling(scale, mode, distribution)`` draws, with a jaxnn
    error for rank-1 shapes. The uniform is U[−√(3v), √(3v)], whose variance is v."""

    def init(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
        shape = _check_shape(shape)
        if len(shape) < 2:
            raise ValueError(
                f"initializer {name!r} scales by the layer's fan-in, so shape must be "
                f"(fan_in, fan_out), got shape={shape}; for biases use 'zeros', 'small' or "
                f"'normal'"
            )
        fan_in, fan_out = fans(shape)
        dtype = jax.dtypes.canonicalize_dtype(dtype)
        variance = np.asarray(
            scale / (fan_in if mode == "fan_in" else (fan_in + fan_out) / 2), dtype
        )
        if distribution == "normal":
            return _scale(standard("normal", key, shape, dtype), np.sqrt(variance), dtype)
        return _scale(standard("uniform", key, shape, dtype), np.sqrt(3 * variance), dtype)

    init.__name__ = name
    init.__doc__ = f"The {name!r} initialiser; see the table in jaxnn.initializers."
    return init


def zeros(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """All zeros: every unit computes the same function (no symmetry breaking).

    Outside ``jit`` the zeros are made on the host and copied over (no program to compile
    per shape); under ``jit`` they are ``jnp.zeros``.
    """
    shape = _check_shape(shape)
    if _checks.is_traced(key):
        return jnp.zeros(shape, dtype)
    return jax.device_put(np.zeros(shape, jax.dtypes.canonicalize_dtype(dtype)))


small = gaussian(0.01)
normal = gaussian(1.0)
lecun = _fan_based("lecun", 1.0, "fan_in", "normal")
xavier = _fan_based("xavier", 1.0 / 3.0, "fan_in", "uniform")
glorot = _fan_based("glorot", 1.0, "fan_avg", "uniform")
he = _fan_based("he", 2.0, "fan_in", "normal")


def glorot_bound(fan_in: int, fan_out: int) -> float:
    """ε = √6 / √(fan_in + fan_out): the half-width of the ``glorot`` uniform."""
    return math.sqrt(6.0) / math.sqrt(fan_in + fan_out)


def xavier_bound(fan_in: int) -> float:
    """ε = 1 / √fan_in: the half-width of the seed's ``xavier`` uniform."""
    return 1.0 / math.sqrt(fan_in)


_INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "small": small,
    "normal": normal,
    "lecun": lecun,
    "xavier": xavier,
    "glorot": glorot,
    "he": he,
}

NAMES = tuple(_INITIALIZERS)


def get(name: str | Initializer) -> Initializer:
    """Returns the initialiser called ``name``; a callable is returned unchanged.

    Raises:
      ValueError: for an unknown name (the message lists the valid ones).
      TypeError: for anything that is neither a name nor a callable.
    """
    return _checks.resolve("initializer", name, _INITIALIZERS)
