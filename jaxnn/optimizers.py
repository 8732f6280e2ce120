"""Optimisers under their textbook names, as optax ``GradientTransformation``s.

Notation: g = ∇E(w) at step τ, η_τ the learning rate (a float or a schedule from
:mod:`jaxnn.schedules`), Δw the update added to w.

==========  ==============================================================  ============
name        update                                                          built from
==========  ==============================================================  ============
sgd         Δw = −η_τ g                                                     scale_by_learning_rate
momentum    Δw ← −η_τ g + μ Δw   (seed 001: the step accumulates η_τ g)     … + trace(μ)
nesterov    v ← μ v − η_τ g,  Δw = μ v − η_τ g   (look-ahead form)          … + trace(μ, nesterov)
adagrad     G ← G + g²,  Δw = −η_τ g / (√G + ε),  G₀ = 0                     scale_by_adagrad (here)
rmsprop     s ← ρ s + (1 − ρ) g²,  Δw = −η_τ g / (√s + ε),  s₀ = 0           scale_by_rms(...)
adam        m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,                          scale_by_adam
            Δw = −η_τ m̂ / (√v̂ + ε),  m̂ = m/(1−β₁^τ), v̂ = v/(1−β₂^τ)
==========  ==============================================================  ============

The seed's momentum scales the gradient *before* accumulating it:
``chain(scale_by_learning_rate(η), trace(μ))``. optax's ``sgd(η, momentum=μ)`` accumulates
the raw gradient and scales afterwards, Δw = −η_τ(g + μ m). The two agree while η is
constant and part ways under a schedule: after a drop in η, the seed's form keeps
moving with the old, larger steps stored in Δw. On a constant gradient both tend to
Δw = −η/(1 − μ) g.

Options common to every optimiser (keyword-only):

* ``weight_decay`` — the coefficient κ of w ← (1 − η_τ κ) w − η_τ ∂L₀/∂w (seed 000, with
  κ = λ/n), on weights only (``mask``, default :func:`jaxnn.base.weight_mask`). *Coupled*
  (default): κw is added to the gradient before everything else, exactly the gradient of
  the L2 penalty λ/(2n)Σw². *Decoupled* (``decoupled=True``, adaptive methods; AdamW):
  κw is added to the adaptive direction, so the decay is not rescaled by 1/(√v̂ + ε).
  For sgd both are the same update.
* ``l1`` — proximal L1 step of strength κ₁ = λ₁/n after the update:
  w ← sign(w)·max(|w| − η_τ κ₁, 0) (soft-thresholding), which sets small weights to
  exactly zero. The plain subgradient alternative is :func:`jaxnn.losses.l1_penalty`.
* ``clip_norm`` — rescale g to global norm at most c (``clip_by_global_norm``), first.
* ``clip_value`` — clip every entry of g to [−c, c] (``clip``), first.

Every optimiser is wrapped in ``optax.inject_hyperparams``: its numeric hyperparameters
(lr, mu, the clipping bounds, ...) live in the optimiser state, ``opt_state.hyperparams``,
so they may be traced values (a sweep vmaps over them) and the learning rate of every
step can be read.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnn import _checks
from jaxnn.base import weight_mask

__all__ = [
    "LR",
    "NAMES",
    "ScaleByAdagradState",
    "Schedule",
    "SwitchState",
    "adagrad",
    "adam",
    "get",
    "learning_rate",
    "momentum",
    "nesterov",
    "proximal_l1",
    "rmsprop",
    "scale_by_adagrad",
    "sgd",
    "switch",
]

Schedule = Callable[[Any], Any]
LR = Any  # float, traced scalar, or schedule
Scalar = Any  # a float or a traced scalar (a sweep passes hyperparameters traced)


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


def _assemble(
    lr,
    *,
    before_lr=(),
    after_lr=(),
    weight_decay=0.0,
    decoupled=False,
    l1=0.0,
    clip_norm=None,
    clip_value=None,
    mask=None,
    use_decay=True,
    use_l1=True,
):
    """clip → [coupled decay] → before_lr → [decoupled decay] → −η → after_lr → [prox L1]."""
    mask = weight_mask if mask is None else mask
    parts = []
    if clip_value is not None:
        parts.append(optax.clip(clip_value))
    if clip_norm is not None:
        parts.append(optax.clip_by_global_norm(clip_norm))
    decay = [optax.add_decayed_weights(weight_decay, mask)] if use_decay else []
    parts += ([] if decoupled else decay) + list(before_lr) + (decay if decoupled else [])
    parts.append(optax.scale_by_learning_rate(lr))
    parts += list(after_lr)
    if use_l1:
        parts.append(proximal_l1(l1, lr, mask))
    return optax.chain(*parts)


# Options that fix the chain's structure: Python values, never traced. (Whether there is
# clipping is structure too; a clipping bound that is given is a number, and may be
# traced: clip_norm=None stays out of the numeric hyperparameters.)
_STATIC = ("decoupled", "mask", "use_decay", "use_l1", "nesterov")


def _maybe_nonzero(value: Any) -> bool:
    """False only for a concrete zero: a traced value may be non-zero at run time."""
    arr = _checks.concrete(value)
    return arr is None or float(arr) != 0.0


def _wrap(factory, *, lr, weight_decay, l1, decoupled, clip_norm, clip_value, mask, **hyper):
    if not callable(lr):
        _checks.in_range("lr", lr, 0.0)
    _checks.in_range("weight_decay", weight_decay, 0.0)
    _checks.in_range("l1", l1, 0.0)
    for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
        if value is not None:
            _checks.in_range(name, value, 0.0, low_open=True)
    static = [n for n in _STATIC if n in inspect.signature(factory).parameters]
    kwargs = dict(
        lr=lr,
        weight_decay=weight_decay,
        l1=l1,
        decoupled=decoupled,
        clip_norm=clip_norm,
        clip_value=clip_value,
        mask=mask,
        use_decay=_maybe_nonzero(weight_decay),
        use_l1=_maybe_nonzero(l1),
        **hyper,
    )
    opt = optax.inject_hyperparams(factory, static_args=static)(**kwargs)
    return opt._replace(update=_shared_update(factory, static, kwargs, opt.update))


#: Update functions shared by optimisers of the same structure (at most this many kept).
_SHARED_UPDATES_MAX = 64
_shared_updates: dict = {}


def _shared_update(factory, static, kwargs, update):
    """The update function of the first optimiser built with this structure: ``factory``
    and its static options (structure flags, clipping bounds, the mask, which
    hyperparameters are schedules, and those schedules), whatever the numeric values.

    ``inject_hyperparams`` reads every numeric hyperparameter from the optimiser state, so
    two optimisers that differ only in numbers have interchangeable updates. Sharing the
    function object lets :func:`jaxnn.train.fit`, whose compiled programs are keyed by the
    update function, run momentum(0.1, 0.5) and momentum(0.3, 0.9) through one program.
    """
    parts = []
    for name, value in sorted(kwargs.items()):
        if name in static or isinstance(value, bool) or value is None:
            parts.append((name, "static", value))
        elif callable(value):
            parts.append((name, "schedule", value))
        elif isinstance(value, (int, float)) or hasattr(value, "dtype"):
            parts.append((name, "numeric"))
        else:
            parts.append((name, "static", value))
    key = (factory, tuple(parts))
    try:
        hash(key)
    except TypeError:  # an unhashable static option (a mask given as a pytree): no sharing
        return update
    if key not in _shared_updates:
        if len(_shared_updates) >= _SHARED_UPDATES_MAX:
            _shared_updates.pop(next(iter(_shared_updates)))
        _shared_updates[key] = update
    return _shared_updates[key]


def _unit(name, value):
    return _checks.in_range(name, value, 0.0, 1.0, high_open=True)


_COMMON = (
    "weight_decay",
    "l1",
    "decoupled",
    "clip_norm",
    "clip_value",
    "mask",
    "use_decay",
    "use_l1",
)


def _factory(core: Callable[..., dict], names: tuple[str, ...]) -> Callable[..., Any]:
    """An ``inject_hyperparams`` factory with the explicit signature (lr, *names, *common).

    ``core(**hyper)`` returns the optimiser's own blocks (``before_lr``/``after_lr``);
    the options shared by every optimiser are assembled around them by ``_assemble``.
    """

    def factory(**kw):
        common = {k: kw.pop(k) for k in _COMMON}
        lr = kw.pop("lr")
        return _assemble(lr, **core(**kw), **common)

    factory.__signature__ = inspect.Signature(
        [
            inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for n in ("lr", *names, *_COMMON)
        ]
    )
    return factory


_sgd = _factory(lambda: {}, ())
_momentum = _factory(
    lambda mu, nesterov: {"after_lr": [optax.trace(mu, nesterov=nesterov)]}, ("mu", "nesterov")
)
_adagrad = _factory(lambda eps: {"before_lr": [scale_by_adagrad(eps)]}, ("eps",))
_rmsprop = _factory(
    lambda decay, eps: {
        "before_lr": [optax.scale_by_rms(decay, eps, initial_scale=0.0, eps_in_sqrt=False)]
    },
    ("decay", "eps"),
)
_adam = _factory(
    lambda b1, b2, eps: {"before_lr": [optax.scale_by_adam(b1, b2, eps, eps_root=0.0)]},
    ("b1", "b2", "eps"),
)


def sgd(
    lr: LR,
    *,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    decoupled: bool = False,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """Plain gradient descent, Δw = −η_τ g (plus the common options in the module doc)."""
    return _wrap(
        _sgd,
        lr=lr,
        weight_decay=weight_decay,
        l1=l1,
        decoupled=decoupled,
        clip_norm=clip_norm,
        clip_value=clip_value,
        mask=mask,
    )


def _no_decoupled(name, decoupled):
    if decoupled:
        raise ValueError(
            f"decoupled=True is offered for the adaptive methods (adagrad, "
            f"rmsprop, adam); {name} applies seed 000's coupled decay, which for "
            f"plain sgd is the same update"
        )


def momentum(
    lr: LR,
    mu: Scalar = 0.9,
    *,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    decoupled: bool = False,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """Heavy ball in seed 001's form: Δw ← −η_τ g + μ Δw, w ← w + Δw; 0 ≤ μ < 1."""
    _unit("mu", mu)
    _no_decoupled("momentum", decoupled)
    return _wrap(
        _momentum,
        nesterov=False,
        lr=lr,
        mu=mu,
        weight_decay=weight_decay,
        l1=l1,
        decoupled=decoupled,
        clip_norm=clip_norm,
        clip_value=clip_value,
        mask=mask,
    )


def nesterov(
    lr: LR,
    mu: Scalar = 0.9,
    *,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    decoupled: bool = False,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """Nesterov momentum: v ← μv − η_τ g, Δw = μv − η_τ g (the gradient is taken at w and
    the step looks ahead along the new velocity); 0 ≤ μ < 1."""
    _unit("mu", mu)
    _no_decoupled("nesterov", decoupled)
    return _wrap(
        _momentum,
        nesterov=True,
        lr=lr,
        mu=mu,
        weight_decay=weight_decay,
        l1=l1,
        decoupled=decoupled,
        clip_norm=clip_norm,
        clip_value=clip_value,
        mask=mask,
    )


def adagrad(
    lr: LR,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    decoupled: bool = False,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """AdaGrad: G ← G + g², Δw = −η_τ g/(√G + ε), G₀ = 0 (Duchi et al. 2011)."""
    _checks.in_range("eps", eps, 0.0)
    return _wrap(
        _adagrad,
        lr=lr,
        eps=eps,
        weight_decay=weight_decay,
        l1=l1,
        decoupled=decoupled,
        clip_norm=clip_norm,
        clip_value=clip_value,
        mask=mask,
    )


def rmsprop(
    lr: LR,
    decay: float = 0.9,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    decoupled: bool = False,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """RMSProp: s ← ρs + (1−ρ)g², Δw = −η_τ g/(√s + ε), s₀ = 0 (Tieleman & Hinton 2012)."""
    _unit("decay", decay)
    _checks.in_range("eps", eps, 0.0)
    return _wrap(
        _rmsprop,
        lr=lr,
        decay=decay,
        eps=eps,
        weight_decay=weight_decay,
        l1=l1,
        decoupled=decoupled,
        clip_norm=clip_norm,
        clip_value=clip_value,
        mask=mask,
    )


def adam(
    lr: LR,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    decoupled: bool = False,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """Adam with bias-corrected moments and ε outside the root (Kingma & Ba 2015);
    ``decoupled=True`` with ``weight_decay`` is AdamW (Loshchilov & Hutter 2019)."""
    _unit("b1", b1)
    _unit("b2", b2)
    _checks.in_range("eps", eps, 0.0)
    return _wrap(
        _adam,
        lr=lr,
        b1=b1,
        b2=b2,
        eps=eps,
        weight_decay=weight_decay,
        l1=l1,
        decoupled=decoupled,
        clip_norm=clip_norm,
        clip_value=clip_value,
        mask=mask,
    )


_OPTIMIZERS = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
}

NAMES = tuple(_OPTIMIZERS)


def get(name: str, lr: LR, **hyper: Any) -> optax.GradientTransformation:
    """Builds the optimiser called ``name`` with learning rate ``lr`` and ``hyper``.

    Raises:
      ValueError: unknown name (the valid ones are listed) or bad hyperparameter value.
      TypeError: a hyperparameter the optimiser does not take (the valid ones are listed).
    """
    fn = _checks.resolve("optimizer", name, _OPTIMIZERS)
    _checks.keywords("optimizer", name, fn, hyper, skip=("lr",))
    return fn(lr, **hyper)


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


def learning_rate(opt_state: Any) -> Any:
    """The learning rate of the last step, read from an ``inject_hyperparams`` state (for
    :func:`switch`, the chosen optimiser's).

    Returns NaN for optimisers that do not expose it (plain optax transformations).
    """
    if isinstance(opt_state, SwitchState):
        rates = [jnp.asarray(learning_rate(s), jnp.result_type(float)) for s in opt_state.states]
        return jnp.stack(rates)[opt_state.index]
    for s in jax.tree.leaves(
        opt_state, is_leaf=lambda x: hasattr(x, "hyperparams") or isinstance(x, SwitchState)
    ):
        if isinstance(s, SwitchState):
            return learning_rate(s)
        if hasattr(s, "hyperparams"):
            for key in ("lr", "learning_rate"):
                if key in s.hyperparams:
                    return s.hyperparams[key]
    return jnp.asarray(jnp.nan)
