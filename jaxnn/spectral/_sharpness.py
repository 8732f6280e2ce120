"""The sharpness λmax of the training loss, recorded during training by a hook."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import _checks, rates
from jaxnn.base import PRNGKey
from jaxnn.curvature import hvp
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
    """
    every = _checks.positive_int("every", every)
    iters = _checks.positive_int("iters", iters)
    key = _checks.prng_key("key", key)
    threshold = None if lr is None else float(rates.max_stable_lr(float(lr), mu, nesterov))

    def init(params):
        return common.random_unit(key, params, None)

    def update(v, params, state, step):
        op = functools.partial(
            hvp, lambda p: objective(p, state, batch, jax.random.fold_in(key, step))[0], params
        )
        result = power(op, v, None, tol, iters)
        record = {"sharpness": result.eigenvalue, "iterations": result.iterations}
        if threshold is not None:
            record["threshold"] = jnp.asarray(threshold, common.dtype(params))
        return result.eigenvector, record

    return Hook(init, update, every)
