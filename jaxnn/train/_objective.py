"""Objectives: a model and a loss as ``objective(params, state, batch, key)``, and a step."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from jaxnn import _checks, losses, optimizers
from jaxnn.base import Array, Params, PRNGKey, State
from jaxnn.model import Model

__all__ = ["Objective", "StepInfo", "as_objective", "build_step", "make_step", "objective"]


class StepInfo(NamedTuple):
    """What one step measured: the loss at the step's params, ‖∇E‖, and η_τ."""

    loss: Array
    grad_norm: Array
    lr: Array


class Objective:
    """``objective(params, state, batch, key) -> (loss, new_state)`` built from a model.

    The training loss is ``loss(logits, y) + penalty(params)`` on ``batch = (x, y)``, with
    the model in training mode (batch statistics, dropout with ``key``).
    :meth:`evaluate` gives the data loss (no penalty) and, for the cross-entropy losses,
    the accuracy, with the model in inference mode.
    """

    def __init__(self, model: Model | Callable, loss: Callable, penalty: Callable | None):
        if not (isinstance(model, Model) or callable(model)):
            raise TypeError(
                f"model must be a jaxnn Model or a function forward(params, x), got "
                f"{type(model).__name__}"
            )
        if not callable(loss):
            raise TypeError(f"loss must be a function loss(logits, targets), got {loss!r}")
        if penalty is not None and not callable(penalty):
            raise TypeError(f"penalty must be a function penalty(params) or None, got {penalty!r}")
        self.model, self.loss, self.penalty = model, loss, penalty
        self._evaluate_jit = jax.jit(self._evaluate)
        self.classification = loss in (losses.softmax_cross_entropy, losses.binary_cross_entropy)

    def _apply(self, params, state, x, train, key):
        if isinstance(self.model, Model):
            return self.model.apply(params, state, x, train=train, key=key)
        return self.model(params, x), state

    def __call__(
        self, params: Params, state: State, batch: Any, key: PRNGKey
    ) -> tuple[Array, State]:
        return self.value(params, state, batch, train=True, key=key)

    def value(
        self, params: Params, state: State, batch: Any, *, train: bool, key: PRNGKey | None = None
    ) -> tuple[Array, State]:
        """(loss(logits, y) + penalty(params), new state) with the model in training mode
        (batch statistics, dropout with ``key``) or inference mode (``train=False``: running
        averages, no dropout; the state comes back unchanged)."""
        x, y = batch
        logits, new_state = self._apply(params, state, x, train, key)
        value = self.loss(logits, y)
        if self.penalty is not None:
            value = value + self.penalty(params)
        return value, new_state

    def evaluate(self, params: Params, state: State, batch: Any) -> dict[str, Array]:
        """{"loss": data loss, "accuracy": ... (classification losses only)} at inference.

        Called on concrete values, it checks the targets as the loss does (label range,
        shapes) and then runs one compiled program (compiled once per shape of its inputs);
        inside ``jit`` or ``vmap`` it is plain traced code.
        """
        if _checks.is_traced((params, state, batch)):
            return self._evaluate(params, state, batch)
        x, y = batch
        logits = jax.eval_shape(
            lambda p, s, x: self._apply(p, s, x, False, None)[0], params, state, x
        )
        jax.eval_shape(lambda a: self._metrics(a, y), logits)  # the checks on concrete y
        return self._evaluate_jit(params, state, batch)

    def _evaluate(self, params, state, batch):
        x, y = batch
        logits, _ = self._apply(params, state, x, False, None)
        return self._metrics(logits, y)

    def _metrics(self, logits, y):
        out = {"loss": self.loss(logits, y)}
        if self.classification:
            out["accuracy"] = losses.accuracy(logits, y).astype(out["loss"].dtype)
        return out


def objective(
    model: Model | Callable, loss: Callable, penalty: Callable | None = None
) -> Objective:
    """Builds the training objective of ``model`` (a :class:`~jaxnn.Model` or a function
    ``forward(params, x) -> logits``) under ``loss(logits, y)`` plus ``penalty(params)``.

    Example:
      >>> obj = objective(functools.partial(jaxnn.forward, activation="relu"),
      ...                 losses.softmax_cross_entropy,
      ...                 penalty=lambda p: losses.l2_penalty(p, 1.0, 1438))
    """
    return Objective(model, loss, penalty)


def make_step(objective: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """A pure training step: (params, state, opt_state, batch, key) ->
    (params, state, opt_state, StepInfo), with Δw from ``optimizer`` on ∇objective."""
    return build_step(objective, optimizer.update)


def build_step(objective: Callable, update: Callable) -> Callable:
    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def step(params, state, opt_state, batch, key):
        (loss, new_state), grads = grad_fn(params, state, batch, key)
        updates, opt_state = update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (
            params,
            new_state,
            opt_state,
            StepInfo(loss, optax.tree.norm(grads), optimizers.learning_rate(opt_state)),
        )

    return step


# ---------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)  # one adapter per loss, so fit reuses its compiled program
def _adapted(loss: Callable, with_batch: bool) -> Callable:
    if with_batch:
        return lambda params, state, batch, key: (loss(params, batch), state)
    return lambda params, state, batch, key: (loss(params), state)


def as_objective(fn: Callable) -> Callable:
    """``fn`` as ``objective(params, state, batch, key) -> (loss, state)``.

    A function of four required positional arguments is returned as it is; a plain
    ``loss(params, batch)`` becomes ``(loss(params, batch), state)`` and ``loss(params)``
    becomes ``(loss(params), state)`` (the state passed through, the key unused), so a
    stateless loss needs no wrapper.

    Example:
      >>> import jax.numpy as jnp
      >>> objective = as_objective(lambda w: jnp.sum(w**2))
      >>> objective(jnp.ones(3), {}, None, None)
      (Array(3., dtype=float32), {})
    """
    if not callable(fn):
        raise TypeError(f"objective must be a function, got {type(fn).__name__}")
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): take it as it is
        return fn
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is p.empty]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params) or len(required) >= 3:
        return fn
    if len(required) in (1, 2):
        return _adapted(fn, len(required) == 2)
    raise TypeError(
        "objective must be objective(params, state, batch, key) -> (loss, state), "
        "loss(params, batch) or loss(params), got a function of no required argument"
    )
