"""Weight initialisers, by name, with the ``jax.nn.initializers`` signature.

Each initialiser is a function ``init(key, shape, dtype=jnp.float32) -> Array``. For a
weight matrix, ``shape = (fan_in, fan_out)``: M = fan_in inputs to each unit, N = fan_out
units in the layer (for higher-rank kernels the fans follow ``jax.nn.initializers``:
the last two axes, times the receptive field).

=========  ==================================  =======================================
name       distribution                        variance
=========  ==================================  =======================================
zeros      0                                   0
small      N(0, 0.01²)                         1e-4                        (notes 002)
normal     N(0, 1)                             1                       (notes 000, 002)
lecun      N(0, 1/M)                           1/M                         (notes 000)
xavier     U[−1/√M, +1/√M]                     1/(3M)                      (notes 001)
glorot     U[−√6/√(M+N), +√6/√(M+N)]           2/(M+N)     (Glorot & Bengio 2010)
he         N(0, 2/M)                           2/M            (He et al. 2015; notes 001)
=========  ==================================  =======================================

"N" is a plain normal: jaxnn draws what ``variance_scaling(..., distribution="normal")``
draws (bit for bit), not the *truncated* normal of ``lecun_normal``/``he_normal``.

Outside ``jit``, the draws come from one compiled program per power-of-two size
(:mod:`jaxnn._draws`), bit for bit the numbers ``jax.random`` returns.

Erratum (notes 001): the notes print the normalised Xavier bound as 6/√(N+M). The
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

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _checks, _draws
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


def gaussian(std: float) -> Initializer:
    """N(0, std²): a plain (untruncated) normal with standard deviation ``std``.

    ``std`` may be a traced value (a sweep over init scales); a concrete negative or NaN
    ``std`` raises ValueError.
    """
    _checks.in_range("std", std, 0.0)

    def init(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
        return _draws.scale(_draws.standard("normal", key, shape, dtype), std, dtype)

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


def _fan_based(
    name: str, key: PRNGKey, shape: Shape, dtype: DType, scale: float, mode: str, distribution: str
) -> Array:
    """Variance ``scale / fan`` (``mode``: "fan_in" or "fan_avg"), normal or uniform: what
    ``jax.nn.initializers.variance_scaling(scale, mode, distribution)`` draws, with a jaxnn
    error for rank-1 shapes. The uniform is U[−√(3v), √(3v)], whose variance is v."""
    shape = _checks.shape("shape", shape)
    if len(shape) < 2:
        raise ValueError(
            f"initializer {name!r} scales by the layer's fan-in, so shape must be "
            f"(fan_in, fan_out), got shape={shape}; for biases use 'zeros', 'small' or "
            f"'normal'"
        )
    fan_in, fan_out = fans(shape)
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    variance = np.asarray(scale / (fan_in if mode == "fan_in" else (fan_in + fan_out) / 2), dtype)
    if distribution == "normal":
        return _draws.scale(_draws.standard("normal", key, shape, dtype), np.sqrt(variance), dtype)
    return _draws.scale(_draws.standard("uniform", key, shape, dtype), np.sqrt(3 * variance), dtype)


def zeros(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """All zeros: every unit computes the same function (no symmetry breaking).

    Outside ``jit`` the zeros are made on the host and copied over (no program to compile
    per shape); under ``jit`` they are ``jnp.zeros``.
    """
    shape = _checks.shape("shape", shape)
    if _checks.is_traced(key):
        return jnp.zeros(shape, dtype)
    return jax.device_put(np.zeros(shape, jax.dtypes.canonicalize_dtype(dtype)))


def small(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """w ~ N(0, 0.01²): small random weights (notes 002), any shape (biases too).

    The same numbers as ``jax.nn.initializers.normal(0.01)``.
    """
    return _draws.scale(_draws.standard("normal", key, shape, dtype), 0.01, dtype)


def normal(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """w ~ N(0, 1): the notes' "standard normal" weights (notes 000, 002), any shape.

    Not ``jax.nn.initializers.normal()``, whose default standard deviation is 0.01 (that is
    :func:`small`): here the standard deviation is 1, so a unit with M inputs of unit
    variance has a weighted input of variance M, which saturates tanh and sigmoid units
    for any sizable M (the notes' argument for scaling by 1/√M).

    Example:
      >>> import jax
      >>> float(normal(jax.random.key(0), (1000, 100)).std()) > 0.9
      True
    """
    return _draws.scale(_draws.standard("normal", key, shape, dtype), 1.0, dtype)


def lecun(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """w ~ N(0, 1/M), M = fan_in: a weighted input keeps the variance of one input (notes 000).

    A plain normal: the same numbers as ``jax.nn.initializers.variance_scaling(1.0,
    "fan_in", "normal")``, not the truncated normal of ``jax.nn.initializers.lecun_normal``.

    Args:
      key: PRNG key (typed or legacy).
      shape: ``(fan_in, fan_out)`` (or a kernel whose last two axes are those, times the
        receptive field).
      dtype: a floating dtype.

    Reference: LeCun, Bottou, Orr and Müller, "Efficient BackProp" (1998), §4.6,
    https://doi.org/10.1007/3-540-49430-8_2.
    """
    return _fan_based("lecun", key, shape, dtype, 1.0, "fan_in", "normal")


def xavier(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """w ~ U[−1/√M, +1/√M], M = fan_in: the notes' "Xavier" uniform, variance 1/(3M) (notes 001).

    Not ``jax.nn.initializers.xavier_uniform``, which is Glorot's U[±√6/√(M+N)] (that is
    :func:`glorot` here): the notes call the fan-in form "Xavier", and jaxnn keeps their
    name for their formula. :func:`xavier_bound` gives the half-width 1/√M.

    Args:
      key: PRNG key (typed or legacy).
      shape: ``(fan_in, fan_out)``.
      dtype: a floating dtype.
    """
    return _fan_based("xavier", key, shape, dtype, 1.0 / 3.0, "fan_in", "uniform")


def glorot(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """w ~ U[−√6/√(M+N), +√6/√(M+N)], M = fan_in, N = fan_out: variance 2/(M+N).

    The normalised initialisation of Glorot and Bengio, keeping the variance of both the
    forward signal and the backward gradient; the same numbers as
    ``jax.nn.initializers.glorot_uniform`` (``xavier_uniform``). Erratum (notes 001): the
    notes print the bound as 6/√(N+M). :func:`glorot_bound` gives the half-width.

    Args:
      key: PRNG key (typed or legacy).
      shape: ``(fan_in, fan_out)``.
      dtype: a floating dtype.

    Reference: Glorot and Bengio, "Understanding the difficulty of training deep
    feedforward neural networks" (2010), https://proceedings.mlr.press/v9/glorot10a.html.
    """
    return _fan_based("glorot", key, shape, dtype, 1.0, "fan_avg", "uniform")


def he(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """w ~ N(0, 2/M), M = fan_in: variance-preserving for ReLU units (notes 001).

    A ReLU zeroes half of its inputs, so keeping E[a²] from layer to layer needs twice
    LeCun's variance. A plain normal: the numbers of
    ``jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")``, not the truncated
    normal of ``jax.nn.initializers.he_normal``.

    Args:
      key: PRNG key (typed or legacy).
      shape: ``(fan_in, fan_out)``.
      dtype: a floating dtype.

    Example:
      >>> import jax
      >>> w = he(jax.random.key(0), (784, 256))
      >>> round(float(w.std()) * (784 / 2) ** 0.5, 1)
      1.0

    Reference: He, Zhang, Ren and Sun, "Delving deep into rectifiers" (2015),
    https://arxiv.org/abs/1502.01852.
    """
    return _fan_based("he", key, shape, dtype, 2.0, "fan_in", "normal")


def glorot_bound(fan_in: int, fan_out: int) -> float:
    """ε = √6 / √(fan_in + fan_out): the half-width of the ``glorot`` uniform."""
    return math.sqrt(6.0) / math.sqrt(fan_in + fan_out)


def xavier_bound(fan_in: int) -> float:
    """ε = 1 / √fan_in: the half-width of the notes' ``xavier`` uniform."""
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
