"""Multilayer perceptrons as pure functions: init and forward, plain and stateful.

A network with ``sizes = (d_0, d_1, ..., d_L)`` has L layers. Layer l computes the
pre-activation a^l = z^(l−1) W^l + b^l (W^l of shape ``(d_(l−1), d_l)``) and, for every
layer but the last, the activation z^l = h(a^l); z^0 = x. The last layer's
pre-activation a^L is returned as the logits: losses apply σ or softmax themselves.

Two paths:

* **plain** — :func:`init_mlp` and :func:`forward`: params are a list of
  ``{"w": (fan_in, fan_out), "b": (fan_out,)}`` dicts, one per layer. This is the path
  for Hessian analysis and the initialisation studies.
* **stateful** — :func:`mlp` returns a :class:`Model` of two pure functions, ``init`` and
  ``apply``, with optional batch norm, layer norm and inverted dropout on hidden layers.

Example:
  >>> params = init_mlp(jax.random.key(0), [64, 32, 10], init="he")
  >>> forward(params, jnp.ones((5, 64)), activation="relu").shape
  (5, 10)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _checks, activations, initializers, normalization
from jaxnn.base import Activation, Array, DType, Initializer, Params, PRNGKey, State

__all__ = [
    "HiddenStats",
    "Model",
    "Propagation",
    "dropout",
    "forward",
    "hidden_stats",
    "init_mlp",
    "mlp",
    "signal_propagation",
]


def _check_sizes(sizes: Any) -> tuple[int, ...]:
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must list at least two widths (inputs and outputs), got sizes={sizes}"
        )
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"sizes must be positive ints, got sizes={sizes} (sizes[{i}]={s!r})")
    return sizes


def init_mlp(
    key: PRNGKey,
    sizes: Sequence[int],
    init: str | Initializer = "lecun",
    bias_init: str | Initializer = "zeros",
    dtype: DType = jnp.float32,
) -> Params:
    """Draws the parameters of an MLP with layer widths ``sizes``.

    Args:
      key: a PRNG key; layer l uses the l-th of ``split(key, L)``, split again into its
        weight and bias keys.
      sizes: ``(d_0, ..., d_L)``, at least two positive ints.
      init: the weights' initialiser: a name from :mod:`jaxnn.initializers` or a function
        ``(key, shape, dtype) -> Array``.
      bias_init: the biases' initialiser (same forms; shape ``(fan_out,)``).
      dtype: parameter dtype.

    Returns:
      A list of L dicts ``{"w": (d_(l−1), d_l), "b": (d_l,)}``.
    """
    sizes = _check_sizes(sizes)
    w_init, b_init = initializers.get(init), initializers.get(bias_init)
    params = []
    for layer_key, fan_in, fan_out in zip(
        jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:]
    ):
        w_key, b_key = jax.random.split(layer_key)
        params.append(
            {"w": w_init(w_key, (fan_in, fan_out), dtype), "b": b_init(b_key, (fan_out,), dtype)}
        )
    return params


def _check_params(params: Any) -> None:
    if not isinstance(params, (list, tuple)) or not params:
        raise TypeError(
            f"params must be a non-empty list of layer dicts, got {type(params).__name__}"
        )
    prev = None
    for l, layer in enumerate(params):
        if not isinstance(layer, dict) or "w" not in layer:
            raise TypeError(f"params[{l}] must be a dict with a 'w' entry, got {layer!r:.80}")
        shape = jnp.shape(layer["w"])
        if len(shape) != 2:
            raise ValueError(f"params[{l}]['w'] must have shape (fan_in, fan_out), got {shape}")
        if prev is not None and shape[0] != prev:
            raise ValueError(
                f"params[{l}]['w'] has fan_in {shape[0]}, but layer {l - 1} has {prev} outputs"
            )
        prev = shape[1]


def _check_input(params: Params, x: Any, name: str = "x") -> Array:
    x = jnp.asarray(x)
    width = jnp.shape(params[0]["w"])[0]
    if x.ndim < 1 or x.shape[-1] != width:
        raise ValueError(
            f"{name} must have shape (..., {width}) to match the first layer's "
            f"fan_in, got {name}.shape={x.shape}"
        )
    return x


def _layers(params: Params, x: Array, h: Activation) -> tuple[Array, list, list]:
    """Returns the logits and the lists of hidden pre-activations a^l and activations z^l."""
    pre, post = [], []
    z = x
    for layer in params[:-1]:
        a = z @ layer["w"] + layer["b"]
        z = h(a)
        pre.append(a)
        post.append(z)
    return z @ params[-1]["w"] + params[-1]["b"], pre, post


def forward(
    params: Params, x: Any, activation: str | Activation = "tanh", return_hidden: bool = False
) -> Array | tuple[Array, list[Array]]:
    """Runs the MLP: z^0 = x, z^l = h(z^(l−1) W^l + b^l), logits a^L = z^(L−1) W^L + b^L.

    Args:
      params: from :func:`init_mlp`.
      x: inputs, shape ``(..., d_0)`` (a single example or a batch).
      activation: the hidden layers' h, a name or a function.
      return_hidden: also return every hidden layer's activations.

    Returns:
      The logits, shape ``(..., d_L)``; with ``return_hidden``, ``(logits, hidden)`` where
      ``hidden`` lists z^1, ..., z^(L−1).

    Raises:
      ValueError: if the last axis of ``x`` does not match the first layer's fan-in.
    """
    _check_params(params)
    x = _check_input(params, x)
    logits, _, hidden = _layers(params, x, activations.get(activation))
    return (logits, hidden) if return_hidden else logits


class HiddenStats(NamedTuple):
    """Per-hidden-layer statistics over all examples and units; each field has shape (L−1,).

    Fields:
      pre_mean, pre_std: mean and std of the pre-activations a^l.
      pre_second_moment: E[(a^l)²], what variance-preserving inits keep constant.
      mean, std: mean and std of the activations z^l = h(a^l).
      saturated: fraction of units with |z^l| > ``saturation`` (tanh's flat tails).
    """

    pre_mean: Array
    pre_std: Array
    pre_second_moment: Array
    mean: Array
    std: Array
    saturated: Array


def hidden_stats(
    params: Params, x: Any, activation: str | Activation = "tanh", saturation: float = 0.99
) -> HiddenStats:
    """Statistics of every hidden layer on inputs ``x``: the initialisation studies' view.

    With weights of variance v and fan-in M, Var[a^l] = M·v·E[(z^(l−1))²] (plus the bias
    variance): the std shrinks layer by layer when M·v·E[h'²] < 1 (``small``), saturates
    tanh when it is ≫ 1 (``normal``), and stays put near 1 (``lecun`` for tanh, ``he``
    for ReLU, whose E[relu(a)²] = E[a²]/2 is restored by the factor 2).
    """
    _check_params(params)
    x = _check_input(params, x)
    _, pre, post = _layers(params, x, activations.get(activation))
    if not pre:
        raise ValueError("params has no hidden layer: hidden_stats needs sizes of length >= 3")
    stack = lambda f, xs: jnp.stack([f(v) for v in xs])
    return HiddenStats(
        pre_mean=stack(jnp.mean, pre),
        pre_std=stack(jnp.std, pre),
        pre_second_moment=stack(lambda a: jnp.mean(jnp.square(a)), pre),
        mean=stack(jnp.mean, post),
        std=stack(jnp.std, post),
        saturated=stack(lambda z: jnp.mean(jnp.abs(z) > saturation), post),
    )


class Propagation(NamedTuple):
    """What :func:`signal_propagation` predicts per hidden layer; each field has shape (L,).

    Fields:
      pre_second_moment: q_l = E[(a^l)²].
      mean, std: of the activations h(a^l), a^l ~ N(0, q_l).
    """

    pre_second_moment: Any
    mean: Any
    std: Any


def signal_propagation(
    depth: int,
    fan_in: int,
    variance: float,
    activation: str | Activation = "tanh",
    input_second_moment: float = 1.0,
) -> Propagation:
    """The layer-by-layer statistics of a deep network at initialisation, in the limit of
    wide layers (mean-field signal propagation).

    With zero biases and weights of variance v, a unit's pre-activation sums ``fan_in`` = M
    independent terms, so it is Gaussian with second moment q_l = M·v·E[h(a^(l−1))²]
    (q_1 = M·v·E[x²]), and E[h(a)²] = E_u[h(√q u)²], u ~ N(0, 1). For ReLU the integral
    is q/2 (He's factor 2); for tanh, q_{l+1} < M·v·q_l away from tanh's linear range,
    which is why a variance-preserving init keeps a tanh net's variance only
    approximately. Expectations over u are computed by the trapezoid rule on 4,001 points
    over |u| ≤ 10, with h evaluated in JAX's default float (to about 10⁻⁶ in float32).

    Args:
      depth: hidden layers L.
      fan_in: M, the width of the layer below (the input width for the first layer).
      variance: v, the weights' variance (e.g. 1/M for ``lecun``, 2/M for ``he``).
      activation: a name or function (elementwise).
      input_second_moment: E[x²] of the inputs.

    Returns:
      A :class:`Propagation` of shape (depth,) arrays (NumPy).

    References: Poole et al., "Exponential expressivity in deep neural networks through
    transient chaos" (2016); He et al., "Delving deep into rectifiers" (2015), §2.2.
    """
    depth = _checks.positive_int("depth", depth)
    fan_in = _checks.positive_int("fan_in", fan_in)
    _checks.in_range("variance", variance, 0.0)
    _checks.in_range("input_second_moment", input_second_moment, 0.0)
    h = activations.get(activation)
    u = np.linspace(-10.0, 10.0, 4001)
    weight = np.exp(-0.5 * u**2) / np.sqrt(2 * np.pi)

    def expect(values):
        return float(np.trapezoid(values * weight, u))

    q, second = [], float(input_second_moment)
    means, stds = [], []
    for _ in range(depth):
        q.append(fan_in * float(variance) * second)
        out = np.asarray(h(jnp.asarray(np.sqrt(q[-1]) * u)), np.float64)
        mean, second = expect(out), expect(out**2)
        means.append(mean)
        stds.append(np.sqrt(max(second - mean**2, 0.0)))
    return Propagation(np.array(q), np.array(means), np.array(stds))


def dropout(x: Array, rate: float | Array, *, key: PRNGKey) -> Array:
    """Inverted dropout (training only): each unit is kept with probability p = 1 − rate.

    Output: x · m / p with m ~ Bernoulli(p) per unit, so E[output] = x and inference needs
    no change (identity). ``rate`` may be traced; it must then lie in [0, 1), unchecked.

    Erratum (notes 002): the notes divide by "the dropout probability" in training and
    multiplies by it at test time; with keep probability p = 1 − rate, inverted dropout
    divides by p in training and does nothing at test time (classic dropout instead
    multiplies by p at test time).
    """
    _checks.in_range("rate", rate, 0.0, 1.0, high_open=True)
    keep = 1.0 - jnp.asarray(rate, x.dtype)
    mask = jax.random.bernoulli(key, keep, x.shape)
    return jnp.where(mask, x / keep, jnp.zeros_like(x))


_inverted_dropout = dropout  # `mlp` takes an argument of the same name


class Model(NamedTuple):
    """A model as two pure functions.

    Fields:
      init: ``init(key) -> (params, state)``.
      apply: ``apply(params, state, x, *, train, key=None) -> (logits, new_state)``.
    """

    init: Callable[[PRNGKey], tuple[Params, State]]
    apply: Callable[..., tuple[Array, State]]


def mlp(
    sizes: Sequence[int],
    *,
    activation: str | Activation = "tanh",
    init: str | Initializer = "lecun",
    bias_init: str | Initializer = "zeros",
    batch_norm: bool = False,
    layer_norm: bool = False,
    dropout: float | Array = 0.0,
    bn_alpha: float = 0.9,
    norm_delta: float = 1e-5,
    dtype: DType = jnp.float32,
) -> Model:
    """An MLP with optional batch norm, layer norm and inverted dropout on hidden layers.

    Hidden layer l computes a^l = z^(l−1) W^l (+ b^l), then normalises it (batch or layer
    norm, with learnable γ, β), applies h, then dropout in training:
      z^l = dropout(h(norm(a^l))).
    With batch norm the bias b^l is left out: the batch mean removes it exactly, and β
    takes its place (a redundant bias would only add a zero Hessian eigenvalue).
    The output layer is plain: logits = z^(L−1) W^L + b^L.

    Args:
      sizes: ``(d_0, ..., d_L)``, at least two positive ints (static).
      activation, init, bias_init: as in :func:`init_mlp` and :func:`forward`.
      batch_norm: normalise hidden pre-activations over the batch (running averages kept
        in ``state["batch_norm"]``, one ``{"mean", "var"}`` per hidden layer).
      layer_norm: normalise hidden pre-activations per example (no state).
      dropout: probability of dropping a hidden unit in training, 0 ≤ rate < 1; may be a
        traced value (a dropout sweep), in which case dropout is always on in training.
      bn_alpha: batch norm's running-average factor α in [0, 1).
      norm_delta: δ > 0 added to variances by batch and layer norm.
      dtype: parameter dtype.

    Returns:
      ``Model(init, apply)``; ``apply`` requires a PRNG ``key`` when ``train=True`` and
      dropout is on, and returns the state unchanged at inference.
    """
    sizes = _check_sizes(sizes)
    h = activations.get(activation)
    for name in (init, bias_init):
        initializers.get(name)  # unknown names fail here, not at init time
    if batch_norm and layer_norm:
        raise ValueError("batch_norm and layer_norm are alternatives: set at most one of them")
    _checks.in_range("dropout", dropout, 0.0, 1.0, high_open=True)
    _checks.in_range("bn_alpha", bn_alpha, 0.0, 1.0, high_open=True)
    _checks.in_range("norm_delta", norm_delta, 0.0, low_open=True)
    rate = _checks.concrete(dropout)
    use_dropout = rate is None or float(rate) > 0.0
    n_hidden = len(sizes) - 2
    hidden_keys = (
        {"w", "gamma", "beta"}
        if batch_norm
        else {"w", "b", "gamma", "beta"}
        if layer_norm
        else {"w", "b"}
    )

    def init_fn(key: PRNGKey) -> tuple[Params, State]:
        params = init_mlp(key, sizes, init, bias_init, dtype)
        if not (batch_norm or layer_norm):
            return params, {}
        running = []
        for l in range(n_hidden):
            affine, stats = normalization.init_batch_norm(sizes[l + 1], dtype)
            keep = {"w": params[l]["w"]} if batch_norm else params[l]
            params[l] = {**keep, **affine}
            running.append(stats)
        return params, ({"batch_norm": running} if batch_norm else {})

    def apply_fn(
        params: Params, state: State, x: Any, *, train: bool, key: PRNGKey | None = None
    ) -> tuple[Array, State]:
        if not isinstance(train, bool):
            raise TypeError(f"train must be a Python bool (it selects the program), got {train!r}")
        _check_params(params)
        if len(params) != len(sizes) - 1:
            raise ValueError(
                f"params has {len(params)} layers, but this model has {len(sizes) - 1}"
            )
        for l, layer in enumerate(params):
            want = hidden_keys if l < n_hidden else {"w", "b"}
            if set(layer) != want:
                raise ValueError(
                    f"params[{l}] has entries {sorted(layer)}, but this model's layer "
                    f"{l} has {sorted(want)}: pass params from this model's init"
                )
        x = _check_input(params, x)
        drop = train and use_dropout
        if drop and key is None:
            raise ValueError(
                f"apply(..., train=True) with dropout={dropout} needs a PRNG key: pass key=..."
            )
        keys: Any = jax.random.split(key, max(n_hidden, 1)) if drop and key is not None else None
        z, new_running = x, []
        for l, layer in enumerate(params[:-1]):
            a = z @ layer["w"]
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
                if layer_norm:
                    a = normalization.layer_norm(a, layer["gamma"], layer["beta"], delta=norm_delta)
            z = h(a)
            if drop:
                z = _inverted_dropout(z, dropout, key=keys[l])
        logits = z @ params[-1]["w"] + params[-1]["b"]
        return logits, ({"batch_norm": new_running} if batch_norm and train else state)

    return Model(init_fn, apply_fn)
