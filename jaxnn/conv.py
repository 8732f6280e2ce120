"""Convolutional networks as pure functions: :func:`cnn` returns a :class:`~jaxnn.Model`.

A network with ``channels = (c_1, ..., c_L)`` has L convolutional blocks and a dense
output layer. Block l maps z^(l−1) (shape ``(batch, *spatial, c_(l−1))``, z^0 = x) to

  a^l = z^(l−1) ⋆ W^l (+ b^l),   z^l = pool(h(norm(a^l))),

where ⋆ is the cross-correlation of deep-learning libraries,
  (z ⋆ W)[n, s, o] = Σ_{t, i} z[n, s + t − p, i] W[t, i, o]
(t runs over the kernel window, p is the padding offset: (k − 1)//2 for "SAME", 0 for
"VALID"), computed by ``lax.conv_general_dilated`` on accelerators and as one matrix
product of shifted copies of z on CPU (the same sum; see ``_conv``); W^l has shape
``(*kernel, c_(l−1), c_l)`` (1 to 3 spatial axes: HWIO for images, WIO for signals). The
optional batch norm normalises each channel over the batch and spatial axes, ``pool``
takes the maximum or mean over non-overlapping windows of ``pool_size``, and the output
layer is logits = flatten(z^L) W + b. The initialisers are jaxnn's, by name, with
fan-in = (kernel size) × c_(l−1) (the receptive field times the input channels, as
``jax.nn.initializers`` counts it) — so ``"he"`` keeps the variance of a ReLU network's
activations as for an MLP (He et al. 2015, whose derivation is for convolutions).

Example:
  >>> net = cnn(input_shape=(8, 8, 1), channels=(8, 16), classes=10)
  >>> params, state = net.init(jax.random.key(0))
  >>> net.apply(params, state, jnp.ones((5, 8, 8, 1)), train=False)[0].shape
  (5, 10)
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _checks, activations, initializers, normalization
from jaxnn.base import Activation, Array, DType, Initializer, Params, PRNGKey, State
from jaxnn.model import Model

__all__ = ["POOLS", "cnn", "output_shapes"]

#: The pooling operations :func:`cnn` takes by name (``None``: no pooling).
POOLS = ("max", "avg")

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def _check_config(
    input_shape: Any, channels: Any, classes: Any, kernel: Any, pool: Any, pool_size: Any
) -> tuple[tuple[int, ...], tuple[int, ...], int, tuple[int, ...], int]:
    shape = tuple(input_shape) if isinstance(input_shape, Sequence) else ()
    if not 2 <= len(shape) <= 4 or not all(
        isinstance(s, int | np.integer) and s >= 1 for s in shape
    ):
        raise ValueError(
            f"input_shape must be (*spatial, channels) with 1 to 3 spatial axes of positive "
            f"ints, e.g. (28, 28, 1) for images or (40, 1) for signals, got {input_shape!r}"
        )
    shape = tuple(int(s) for s in shape)
    if (
        not isinstance(channels, Sequence)
        or not channels
        or not all(isinstance(c, int | np.integer) and c >= 1 for c in channels)
    ):
        raise ValueError(
            f"channels must be a non-empty sequence of positive ints (one per convolution), "
            f"got {channels!r}"
        )
    classes = _checks.positive_int("classes", classes)
    d = len(shape) - 1
    kernel = (kernel,) * d if isinstance(kernel, int | np.integer) else tuple(kernel)
    if len(kernel) != d or not all(isinstance(k, int | np.integer) and k >= 1 for k in kernel):
        raise ValueError(
            f"kernel must be a positive int or {d} positive ints (one per spatial axis of "
            f"input_shape={shape}), got {kernel!r}"
        )
    if pool is not None and pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)} or None, got {pool!r}")
    pool_size = _checks.positive_int("pool_size", pool_size)
    return shape, tuple(int(c) for c in channels), classes, tuple(int(k) for k in kernel), pool_size


def output_shapes(
    input_shape: Sequence[int],
    channels: Sequence[int],
    *,
    kernel: int | Sequence[int] = 3,
    padding: str = "SAME",
    pool: str | None = "max",
    pool_size: int = 2,
) -> list[tuple[int, ...]]:
    """The shape ``(*spatial, c_l)`` of each block's output z^l (without the batch axis).

    A "SAME" convolution keeps the spatial size s; a "VALID" one gives s − k + 1; a pool
    then gives ⌊s / pool_size⌋.

    Raises:
      ValueError: a block's output would have a spatial size below 1, naming the block.
    """
    shape, channels, _, kernel, pool_size = _check_config(
        input_shape, channels, 1, kernel, pool, pool_size
    )
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    spatial, shapes = shape[:-1], []
    for l, c in enumerate(channels):
        if padding == "VALID":
            spatial = tuple(s - k + 1 for s, k in zip(spatial, kernel))
        if pool is not None:
            spatial = tuple(s // pool_size for s in spatial)
        if min(spatial) < 1:
            raise ValueError(
                f"input_shape={shape} is too small for {len(channels)} blocks: block {l} "
                f"(kernel {kernel}, padding {padding!r}, pool {pool!r} of {pool_size}) would "
                f"leave spatial size {spatial}; use fewer channels entries, a larger input, "
                f"pool=None or padding='SAME'"
            )
        shapes.append((*spatial, c))
    return shapes


def _conv(z: Array, w: Array, padding: str) -> Array:
    """z ⋆ w (module docstring), z and w promoted to a common dtype as ``z @ w`` would be.

    Two lowerings of the same sum, picked per platform when the program is lowered
    (``lax.platform_dependent``): on accelerators ``lax.conv_general_dilated`` (cuDNN and
    its kin); on CPU the products of the k shifted copies of z with the kernel's slices,
    one matrix product (the "im2col" form), because XLA:CPU's convolution is much slower
    inside the loop of a training scan than outside it (``benchmarks/cnn.py``, numbers
    in docs/speed.md).
    """
    dtype = jnp.result_type(z, w)
    z, w = z.astype(dtype), w.astype(dtype)
    return jax.lax.platform_dependent(
        z,
        w,
        cpu=functools.partial(_conv_shifted, padding=padding),
        default=functools.partial(_conv_general, padding=padding),
    )


def _conv_general(z: Array, w: Array, padding: str) -> Array:
    axes = _SPATIAL[z.ndim - 2]
    numbers = jax.lax.conv_dimension_numbers(
        z.shape, w.shape, (f"N{axes}C", f"{axes}IO", f"N{axes}C")
    )
    return jax.lax.conv_general_dilated(
        z, w, window_strides=(1,) * (z.ndim - 2), padding=padding, dimension_numbers=numbers
    )


def _conv_shifted(z: Array, w: Array, padding: str) -> Array:
    kernel = w.shape[:-2]
    if padding == "SAME":  # XLA's SAME at stride 1: (k − 1)//2 before, the rest after
        z = jnp.pad(z, [(0, 0), *[((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel], (0, 0)])
    out = [s - k + 1 for s, k in zip(z.shape[1:-1], kernel)]
    shifted = [
        z[(slice(None), *(slice(t_i, t_i + o_i) for t_i, o_i in zip(t, out)), slice(None))]
        for t in itertools.product(*map(range, kernel))
    ]
    columns = jnp.stack(shifted, axis=-2)  # (batch, *out, window, c_in)
    return jnp.einsum("...ki,kio->...o", columns, w.reshape(-1, *w.shape[-2:]))


def _pool(z: Array, kind: str, size: int) -> Array:
    window = (1, *(size,) * (z.ndim - 2), 1)
    if kind == "max":
        return jax.lax.reduce_window(z, -jnp.inf, jax.lax.max, window, window, "VALID")
    total = jax.lax.reduce_window(z, 0.0, jax.lax.add, window, window, "VALID")
    return total / size ** (z.ndim - 2)


def cnn(
    *,
    input_shape: Sequence[int],
    channels: Sequence[int],
    classes: int,
    kernel: int | Sequence[int] = 3,
    activation: str | Activation = "relu",
    init: str | Initializer = "he",
    bias_init: str | Initializer = "zeros",
    padding: str = "SAME",
    pool: str | None = "max",
    pool_size: int = 2,
    batch_norm: bool = False,
    bn_alpha: float = 0.9,
    norm_delta: float = 1e-5,
    dtype: DType = jnp.float32,
) -> Model:
    """A convolutional network: L blocks conv → (batch norm) → h → pool, then a dense layer.

    Block l computes z^l = pool(h(norm(z^(l−1) ⋆ W^l + b^l))) (module docstring); with
    batch norm the bias is left out (the batch mean removes it; β takes its place), and
    the running averages per channel are kept in ``state["batch_norm"]``. The logits are
    flatten(z^L) W + b.

    Args:
      input_shape: ``(*spatial, channels)`` of one example, 1 to 3 spatial axes:
        ``(H, W, C)`` for images, ``(length, C)`` for signals such as MNIST-1D.
      channels: ``(c_1, ..., c_L)``, the output channels of each convolution.
      classes: K, the number of logits.
      kernel: the window of every convolution, an int (the same on each axis) or one int
        per spatial axis.
      activation, init, bias_init: as in :func:`~jaxnn.mlp`, by name or function;
        kernels' fan-in is (kernel size) × (input channels).
      padding: "SAME" (output keeps the spatial size) or "VALID" (no padding).
      pool: "max", "avg" or None, over non-overlapping windows of ``pool_size`` per axis.
      batch_norm, bn_alpha, norm_delta: as in :func:`~jaxnn.mlp`, per channel.
      dtype: parameter dtype.

    Returns:
      ``Model(init, apply)``. Params are a list with one ``{"w", "b"}`` dict per block
      (``{"w", "gamma", "beta"}`` with batch norm) and one ``{"w": (flat, K), "b": (K,)}``
      for the output layer. ``apply(params, state, x, *, train, key=None)`` takes x of
      shape ``(batch, *input_shape)`` or flat ``(batch, prod(input_shape))`` (a dataset
      of flat rows, reshaped), and ignores ``key`` (a CNN without dropout draws nothing).

    Raises:
      ValueError: a bad configuration (naming the argument), an input too small for the
        blocks (:func:`output_shapes`), or an ``x`` whose shape does not match
        ``input_shape``.

    References: LeCun et al. 1998 (convolutional networks); He et al. 2015 (the
    initialisation); Ioffe & Szegedy 2015 (batch norm per channel).
    """
    shape, channels, classes, kernel, pool_size = _check_config(
        input_shape, channels, classes, kernel, pool, pool_size
    )
    shapes = output_shapes(
        shape, channels, kernel=kernel, padding=padding, pool=pool, pool_size=pool_size
    )
    h = activations.get(activation)
    w_init, b_init = initializers.get(init), initializers.get(bias_init)
    if not isinstance(batch_norm, bool):
        raise TypeError(f"batch_norm must be a bool, got {batch_norm!r}")
    _checks.in_range("bn_alpha", bn_alpha, 0.0, 1.0, high_open=True)
    _checks.in_range("norm_delta", norm_delta, 0.0, low_open=True)
    flat = math.prod(shapes[-1])
    inputs = (shape[-1], *channels[:-1])
    block_keys = {"w", "gamma", "beta"} if batch_norm else {"w", "b"}

    def init_fn(key: PRNGKey) -> tuple[Params, State]:
        keys = jax.random.split(_checks.prng_key("key", key), 2 * len(channels) + 2)
        params: list[dict[str, Array]] = []
        running = []
        for l, (c_in, c_out) in enumerate(zip(inputs, channels)):
            layer = {"w": w_init(keys[2 * l], (*kernel, c_in, c_out), dtype)}
            if batch_norm:
                affine, stats = normalization.init_batch_norm(c_out, dtype)
                layer.update(affine)
                running.append(stats)
            else:
                layer["b"] = b_init(keys[2 * l + 1], (c_out,), dtype)
            params.append(layer)
        params.append(
            {
                "w": w_init(keys[-2], (flat, classes), dtype),
                "b": b_init(keys[-1], (classes,), dtype),
            }
        )
        return params, ({"batch_norm": running} if batch_norm else {})

    def apply_fn(
        params: Params, state: State, x: Any, *, train: bool, key: PRNGKey | None = None
    ) -> tuple[Array, State]:
        del key  # no dropout: nothing random
        if not isinstance(train, bool):
            raise TypeError(f"train must be a Python bool (it selects the program), got {train!r}")
        _check_params(params)
        z = _check_input(x, shape)
        new_running = []
        for l, layer in enumerate(params[:-1]):
            a = _conv(z, layer["w"], padding)
            if batch_norm:
                a, stats = normalization.batch_norm(
                    a,
                    layer["gamma"],
                    layer["beta"],
                    state["batch_norm"][l],
                    train=train,
                    alpha=bn_alpha,
                    delta=norm_delta,
                )
                new_running.append(stats)
            else:
                a = a + layer["b"]
            z = h(a)
            if pool is not None:
                z = _pool(z, pool, pool_size)
        logits = z.reshape(z.shape[0], -1) @ params[-1]["w"] + params[-1]["b"]
        return logits, ({"batch_norm": new_running} if batch_norm and train else state)

    def _check_params(params: Any) -> None:
        if not isinstance(params, list | tuple):
            raise TypeError(
                f"params must be the list of layers this model's init returns, got "
                f"{type(params).__name__}"
            )
        if len(params) != len(channels) + 1:
            raise ValueError(
                f"params has {len(params)} layers, but this model has {len(channels) + 1}"
            )
        for l, layer in enumerate(params):
            want = block_keys if l < len(channels) else {"w", "b"}
            if not isinstance(layer, dict) or set(layer) != want:
                raise ValueError(
                    f"params[{l}] must have entries {sorted(want)}, got "
                    f"{sorted(layer) if isinstance(layer, dict) else type(layer).__name__}: "
                    f"pass params from this model's init"
                )
            w = layer["w"]
            expected = (*kernel, inputs[l], channels[l]) if l < len(channels) else (flat, classes)
            if tuple(jnp.shape(w)) != expected:
                raise ValueError(
                    f"params[{l}]['w'] has shape {tuple(jnp.shape(w))}, but this model's "
                    f"layer {l} expects {expected}"
                )

    return Model(init_fn, apply_fn)


def _check_input(x: Any, shape: tuple[int, ...]) -> Array:
    """``x`` as ``(batch, *shape)``: given so, or flat ``(batch, prod(shape))``."""
    x = jnp.asarray(x)
    if x.ndim == 2 and x.shape[1] == math.prod(shape):
        x = x.reshape(x.shape[0], *shape)
    if x.shape[1:] != shape or x.ndim != len(shape) + 1:
        raise ValueError(
            f"x has shape {x.shape}, but this CNN takes (batch, *input_shape) = "
            f"(batch, {', '.join(map(str, shape))}) or flat (batch, {math.prod(shape)})"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x must hold floating-point values, got dtype {x.dtype}")
    return x
