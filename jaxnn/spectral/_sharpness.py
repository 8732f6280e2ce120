"""The sharpness λmax of the training loss, recorded during training by a hook."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import _checks, curvature, optimizers, rates
from jaxnn.base import PRNGKey
from jaxnn.curvature import full_precision, hvp
from jaxnn.spectral import _common as common
from jaxnn.spectral._eigen import power
from jaxnn.train import Hook

__all__ = ["Tree", "sharpness_hook"]

Tree = Any


def sharpness_hook(
    objective: Callable,
    batch: Any,
    *,
    every: int = 10,
    iters: int = 20,
    tol: float = 1e-4,
    key: PRNGKey,
    lr: float | None = None,
    mu: float = 0.0,
    nesterov: bool = False,
    preconditioned: bool = False,
):
    """A :class:`jaxnn.train.Hook` recording the sharpness λ of the training loss on
    ``batch`` every ``every`` steps (Cohen et al. 2021, edge of stability).

    λ is the Rayleigh quotient of up to ``iters`` power iterations (stopping at relative
    change ``tol``), warm-started from the previous call's eigenvector, carried in the
    hook's state: after the first call a few products with H suffice while λmax drifts.
    Power iteration finds the eigenvalue of largest |λ|, which is λmax whenever λmax >
    |λmin| (the usual case in training; a record with ``sharpness`` < 0 says it was not).
    The record holds ``sharpness`` and ``iterations``, and with ``lr`` the threshold it is
    compared with: 2/η, 2(1 + μ)/η for heavy-ball momentum μ, 2(1 + μ)/((1 + 2μ)η) for
    Nesterov (:func:`jaxnn.rates.max_stable_lr` read as a bound on λ).

    ``preconditioned=True`` (AdaGrad, RMSProp, Adam) measures the effective sharpness
    λmax(D^{-1/2} H D^{-1/2}) instead, D read from the optimiser state at that step
    (:func:`jaxnn.optimizers.preconditioner`: the D of the last step), and records the
    threshold always: 2/η for AdaGrad and RMSProp, (2 + 2β₁)/((1 − β₁)η) for Adam, with η
    the ``lr`` given or else the optimiser's last learning rate and β₁ its own. Before the
    first step (no D yet) the record is NaN.
    """
    every = _checks.positive_int("every", every)
    iters = _checks.positive_int("iters", iters)
    key = _checks.prng_key("key", key)
    threshold = None if lr is None else float(rates.max_stable_lr(float(lr), mu, nesterov))

    def init(params):
        return common.random_unit(key, params, None)

    def loss_of(state, step):
        return lambda p: objective(p, state, batch, jax.random.fold_in(key, step))[0]

    def update(v, params, state, step):
        op = functools.partial(hvp, loss_of(state, step), params)
        result = power(op, v, None, tol, iters)
        record = {"sharpness": result.eigenvalue, "iterations": result.iterations}
        if threshold is not None:
            record["threshold"] = jnp.asarray(threshold, common.dtype(params))
        return result.eigenvector, record

    def update_preconditioned(v, params, state, step, opt_state):
        kind, _, hyper = optimizers.adaptive(opt_state)
        d = optimizers.preconditioner(opt_state)
        ready = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(d)]))
        d = jax.tree.map(lambda x: jnp.where(ready, x, 1.0), d)
        matvec = curvature.preconditioned(loss_of(state, step), d).matvec
        result = power(functools.partial(matvec, params), v, None, tol, iters)
        nan = jnp.asarray(jnp.nan, common.dtype(params))
        eta = optimizers.learning_rate(opt_state) if lr is None else lr
        bound = rates.max_stable_lr(eta, hyper["b1"], ema=True) if kind == "adam" else 2.0 / eta
        record = {
            "sharpness": jnp.where(ready, result.eigenvalue, nan),
            "iterations": result.iterations,
            "threshold": jnp.asarray(bound, common.dtype(params)),
        }
        return jax.tree.map(
            lambda new, old: jnp.where(ready, new, old), result.eigenvector, v
        ), record

    if preconditioned:
        return Hook(init, full_precision(update_preconditioned), every, with_opt_state=True)
    return Hook(init, full_precision(update), every)
