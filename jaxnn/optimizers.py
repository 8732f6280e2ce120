"""Optimisers under their textbook names, as optax ``GradientTransformation``s.

Notation: g = ∇E(w) at step τ, η_τ the learning rate (a float or a schedule from
:mod:`jaxnn.schedules`), Δw the update added to w.

==========  ==============================================================  ============
name        update                                                          built from
==========  ==============================================================  ============
sgd         Δw = −η_τ g                                                     scale_by_learning_rate
momentum    Δw ← −η_τ g + μ Δw   (notes 001: the step accumulates η_τ g)     … + trace(μ)
nesterov    v ← μ v − η_τ g,  Δw = μ v − η_τ g   (look-ahead form)          … + trace(μ, nesterov)
adagrad     G ← G + g²,  Δw = −η_τ g / (√G + ε),  G₀ = 0                     scale_by_adagrad (here)
rmsprop     s ← ρ s + (1 − ρ) g²,  Δw = −η_τ g / (√s + ε),  s₀ = 0           scale_by_rms(...)
adam        m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,                          scale_by_adam
            Δw = −η_τ m̂ / (√v̂ + ε),  m̂ = m/(1−β₁^τ), v̂ = v/(1−β₂^τ)
==========  ==============================================================  ============

The notes' momentum scales the gradient *before* accumulating it:
``chain(scale_by_learning_rate(η), trace(μ))``. optax's ``sgd(η, momentum=μ)`` accumulates
the raw gradient and scales afterwards, Δw = −η_τ(g + μ m). The two agree while η is
constant and part ways under a schedule: after a drop in η, the notes' form keeps
moving with the old, larger steps stored in Δw. On a constant gradient both tend to
Δw = −η/(1 − μ) g.

Options common to every optimiser (keyword-only):

* ``weight_decay`` — the coefficient κ of w ← (1 − η_τ κ) w − η_τ ∂L₀/∂w (notes 000, with
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

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxnn import _checks, _shared_updates
from jaxnn.base import weight_mask
from jaxnn.transforms import (
    ScaleByAdagradState,
    SwitchState,
    proximal_l1,
    scale_by_adagrad,
    switch,
)

__all__ = [
    "LR",
    "NAMES",
    "ScaleByAdagradState",
    "Schedule",
    "SwitchState",
    "adagrad",
    "adam",
    "adaptive",
    "get",
    "learning_rate",
    "momentum",
    "nesterov",
    "preconditioner",
    "proximal_l1",
    "rmsprop",
    "scale_by_adagrad",
    "sgd",
    "switch",
]

Schedule = Callable[[Any], Any]
LR = Any  # float, traced scalar, or schedule
Scalar = Any  # a float or a traced scalar (a sweep passes hyperparameters traced)


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
    return opt._replace(
        update=_dtype_stable(_shared_updates.shared(factory, static, kwargs, opt.update))
    )


@functools.cache
def _dtype_stable(update: Callable) -> Callable:
    """``update`` with the state keeping the dtypes it had and Δw the gradient's dtype.

    A strongly typed float64 hyperparameter (a sweep's axis under ``jax_enable_x64``)
    would otherwise promote a float32 model's momentum or moments to float64 after one
    step, and a training loop's carry must keep its types.
    """

    def stable(updates, state, params=None):
        new_updates, new_state = update(updates, state, params)
        new_state = jax.tree.map(lambda new, old: new.astype(old.dtype), new_state, state)
        new_updates = jax.tree.map(lambda new, g: new.astype(g.dtype), new_updates, updates)
        return new_updates, new_state

    return stable


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
            f"rmsprop, adam); {name} applies notes 000's coupled decay, which for "
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
    """Heavy ball in notes 001's form: Δw ← −η_τ g + μ Δw, w ← w + Δw; 0 ≤ μ < 1."""
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


def _adaptive_states(state: Any, hyper: dict, found: list) -> None:
    """Collects (kind, state, hyperparams) for every adaptive scaling inside ``state``."""
    if isinstance(state, SwitchState):
        raise ValueError(
            "opt_state is a switch state: its chosen optimiser is a traced index; pass the "
            "chosen optimiser's state, opt_state.states[i]"
        )
    if hasattr(state, "hyperparams") and hasattr(state, "inner_state"):
        _adaptive_states(state.inner_state, {**hyper, **state.hyperparams}, found)
    elif isinstance(state, ScaleByAdagradState):
        found.append(("adagrad", state, hyper))
    elif isinstance(state, optax.ScaleByRmsState):
        found.append(("rmsprop", state, hyper))
    elif isinstance(state, optax.ScaleByAdamState):
        found.append(("adam", state, hyper))
    elif isinstance(state, (tuple, list)):
        for s in state:
            _adaptive_states(s, hyper, found)
    elif isinstance(state, dict):
        for s in state.values():
            _adaptive_states(s, hyper, found)


def preconditioner(opt_state: Any, *, eps: Any = None, b2: Any = None) -> Any:
    """The diagonal D with which an adaptive optimiser steps: Δw = −η D⁻¹ m.

    ==========  ==========================  ============================================
    optimiser   D                           m
    ==========  ==========================  ============================================
    adagrad     √G + ε                      g
    rmsprop     √s + ε                      g
    adam        √(v / (1 − β₂^τ)) + ε       m̂ = m / (1 − β₁^τ), the corrected first moment
    ==========  ==========================  ============================================

    read from ``opt_state`` after τ ≥ 1 steps, with ε and the bias correction exactly as
    the step used them: D is the preconditioner of the *last* step. The effective
    sharpness λmax(D^{-1/2} H D^{-1/2}) (:func:`jaxnn.spectral.preconditioned`) is then
    compared with 2/η (AdaGrad, RMSProp) or (2 + 2β₁)/((1 − β₁)η) (Adam;
    :func:`jaxnn.rates.max_stable_lr` with ``ema=True``): Cohen et al., "Adaptive gradient
    methods at the edge of stability" (2022), https://arxiv.org/abs/2207.14484.

    Args:
      opt_state: the state of :func:`adagrad`, :func:`rmsprop` or :func:`adam` (or of an
        optax chain holding ``scale_by_adam``/``scale_by_rms`` or jaxnn's
        ``scale_by_adagrad``).
      eps, b2: override ε and β₂; needed only for plain optax states, which do not record
        their hyperparameters (jaxnn's optimisers do).

    Returns:
      A pytree shaped like the params. jit-compatible.

    Raises:
      ValueError: a state with no adaptive scaling (SGD, momentum), with more than one,
        a ``switch`` state, an Adam state before its first step, or missing ε/β₂.
    """
    kind, state, hyper = adaptive(opt_state)
    eps = hyper.get("eps") if eps is None else eps
    if eps is None:
        raise ValueError(f"the {kind} state does not record eps: pass eps=...")
    if kind == "adagrad":
        return jax.tree.map(lambda g: jnp.sqrt(g) + eps, state.sum_of_squares)
    if kind == "rmsprop":
        return jax.tree.map(lambda s: jnp.sqrt(s) + eps, state.nu)
    b2 = hyper.get("b2") if b2 is None else b2
    if b2 is None:
        raise ValueError("the adam state does not record b2: pass b2=...")
    count = _checks.concrete(state.count)
    if count is not None and int(count) == 0:
        raise ValueError("the adam state has taken no step yet: D needs τ ≥ 1 (v̂ = v/(1 − β₂^τ))")
    correction = 1.0 - jnp.asarray(b2) ** state.count
    return jax.tree.map(lambda v: jnp.sqrt(v / correction) + eps, state.nu)


def adaptive(opt_state: Any) -> tuple[str, Any, dict]:
    """The one adaptive scaling in ``opt_state``: its kind ("adagrad", "rmsprop" or
    "adam"), its state and the hyperparameters recorded around it."""
    found: list = []
    _adaptive_states(opt_state, {}, found)
    if not found:
        raise ValueError(
            f"opt_state has no preconditioner: it must be the state of adagrad, rmsprop or "
            f"adam (got {type(opt_state).__name__}; SGD and momentum step with D = I)"
        )
    if len(found) > 1:
        raise ValueError(
            f"opt_state holds {len(found)} adaptive scalings ({[k for k, _, _ in found]}); "
            "pass the state of one optimiser"
        )
    return found[0]
