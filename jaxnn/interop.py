"""Flax and Equinox models as jaxnn :class:`~jaxnn.Model` s, their state threaded.

Each adapter returns ``Model(init, apply)``, the pair of pure functions jaxnn's own
:func:`~jaxnn.mlp` and :func:`~jaxnn.cnn` return:

* ``init(key) -> (params, state)``: the model built from ``key`` (so a sweep can seed its
  init inside ``run``), split into the arrays ``fit`` trains and the rest it threads;
* ``apply(params, state, x, *, train, key=None) -> (logits, new_state)``: training mode
  (batch statistics, updated running averages, dropout drawn from ``key``) or inference
  mode (running averages, no dropout, state returned unchanged).

So ``train.objective(model, loss)`` trains it with :func:`~jaxnn.fit` and
:func:`~jaxnn.sweep.sweep`, and ``curvature.objective_loss(objective, state, batch)`` is
its loss in inference mode — the function of the params alone whose Hessian
:mod:`jaxnn.hessian` and :mod:`jaxnn.spectral` analyse.

=========  ==================================  ====================================
library    params                              state
=========  ==================================  ====================================
Flax NNX   ``nnx.split(module, nnx.Param,      every other variable: ``BatchStat``
           ...)``                              running averages, RNG streams
Flax Linen the ``"params"`` collection         every other collection
                                               (``"batch_stats"``), ``mutable`` in
                                               training
Equinox    ``eqx.partition(model,              the ``eqx.nn.State`` of
           eqx.is_inexact_array)``             ``eqx.nn.make_with_state``
=========  ==================================  ====================================

The libraries are imported only when an adapter is called; neither is a dependency of
jaxnn (the ``test`` extra installs both).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import _checks
from jaxnn.base import Array, Params, PRNGKey, State
from jaxnn.model import Model

__all__ = ["from_equinox", "from_linen", "from_nnx"]


def _require(package: str, adapter: str) -> Any:
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ImportError(
            f"interop.{adapter} needs {package.split('.')[0]}: pip install "
            f"{package.split('.')[0]} (or jaxnn[test], which brings flax and equinox); "
            f"importing it failed with: {error}"
        ) from error


def _check_train(train: Any) -> None:
    if not isinstance(train, bool):
        raise TypeError(f"train must be a Python bool (it selects the program), got {train!r}")


# ---------------------------------------------------------------------------------------
# Flax NNX
# ---------------------------------------------------------------------------------------


def from_nnx(make: Callable[[Any], Any]) -> Model:
    """A Flax NNX module as a jaxnn ``Model``.

    ``init(key)`` builds ``make(nnx.Rngs(key))`` and splits it with
    ``nnx.split(module, nnx.Param, ...)``: the ``nnx.Param`` variables are the params,
    every other variable (``nnx.BatchStat`` running averages, the RNG streams of
    ``nnx.Dropout``) the state. ``apply`` merges them back, sets the mode with
    ``module.train()`` or ``module.eval()`` (NNX's switch of ``use_running_average`` and
    ``deterministic`` on every submodule), sets the key of every RNG stream in the state
    to ``key`` when one is given (the stream's counter is kept, so its draws differ from
    step to step), calls ``module(x)`` and splits again for the new state.

    Args:
      make: ``make(rngs) -> nnx.Module``, e.g. ``lambda rngs: CNN(rngs=rngs)``, or the
        module class itself when its constructor takes ``rngs`` alone.

    Raises:
      TypeError: ``make`` does not return an ``nnx.Module``.
      ValueError: the module has no ``nnx.Param`` (nothing to train).
    """
    nnx = _require("flax.nnx", "from_nnx")
    if not callable(make):
        raise TypeError(f"make must be a function make(rngs) -> nnx.Module, got {make!r}")
    structure: dict[str, Any] = {}

    def init_fn(key: PRNGKey) -> tuple[Params, State]:
        module = make(nnx.Rngs(_checks.prng_key("key", key)))
        if not isinstance(module, nnx.Module):
            raise TypeError(f"make(rngs) must return an nnx.Module, got {type(module).__name__}")
        graphdef, params, state = nnx.split(module, nnx.Param, ...)
        if not jax.tree.leaves(params):
            raise ValueError(
                f"{type(module).__name__} has no nnx.Param variables: nothing to train "
                "(declare trainable arrays as nnx.Param)"
            )
        structure["graphdef"] = graphdef
        return params, state

    def apply_fn(
        params: Params, state: State, x: Any, *, train: bool, key: PRNGKey | None = None
    ) -> tuple[Array, State]:
        _check_train(train)
        if "graphdef" not in structure:
            raise ValueError("call this model's init before apply (it records the structure)")
        if train and key is not None:  # the module's RNG streams drawn from this key
            typed = _checks.prng_key("key", key)
            state = jax.tree.map(
                lambda v: v.replace(typed) if isinstance(v, nnx.RngKey) else v,
                state,
                is_leaf=lambda v: isinstance(v, nnx.RngKey),
            )
        module = nnx.merge(structure["graphdef"], params, state)
        module.train() if train else module.eval()
        out = module(x)
        if not train:
            return out, state
        _, _, new_state = nnx.split(module, nnx.Param, ...)
        return out, new_state

    return Model(init_fn, apply_fn)


# ---------------------------------------------------------------------------------------
# Flax Linen
# ---------------------------------------------------------------------------------------


def from_linen(module: Any, example_x: Any, *, train_kwarg: str | None = "train") -> Model:
    """A Flax Linen module as a jaxnn ``Model``.

    ``init(key)`` runs ``module.init({"params": k1, "dropout": k2}, example_x, ...)``; the
    ``"params"`` collection is the params, every other collection (``"batch_stats"``)
    the state. In training, ``apply`` runs ``module.apply(variables, x, train=True,
    rngs={"dropout": key}, mutable=[those collections])`` and returns the updated
    collections as the new state; in inference, ``train=False`` and nothing mutable.

    Args:
      module: a ``flax.linen.Module``.
      example_x: an input of the shape the model takes (its batch size does not matter),
        for ``module.init`` to trace the shapes.
      train_kwarg: the keyword of the module's ``__call__`` that selects training mode
        (passed True or False), or None for a module without one.

    Raises:
      TypeError: ``module`` is not a Linen module.
      ValueError: in training the module uses a collection its ``init`` did not create
        (the adapter cannot find that state), naming the collection.
    """
    linen = _require("flax.linen", "from_linen")
    flax_errors = _require("flax.errors", "from_linen")
    if not isinstance(module, linen.Module):
        raise TypeError(f"module must be a flax.linen.Module, got {type(module).__name__}")
    if train_kwarg is not None:
        parameters = inspect.signature(type(module).__call__).parameters
        if train_kwarg not in parameters:
            raise ValueError(
                f"train_kwarg={train_kwarg!r}, but {type(module).__name__}.__call__ takes "
                f"{', '.join(list(parameters)[1:])}: name its training-mode argument, or "
                "pass train_kwarg=None"
            )

    def mode(train: bool) -> dict:
        return {} if train_kwarg is None else {train_kwarg: train}

    def init_fn(key: PRNGKey) -> tuple[Params, State]:
        params_key, dropout_key = jax.random.split(_checks.prng_key("key", key))
        variables = module.init(
            {"params": params_key, "dropout": dropout_key}, example_x, **mode(False)
        )
        variables = dict(variables)
        return variables.pop("params"), variables

    def apply_fn(
        params: Params, state: State, x: Any, *, train: bool, key: PRNGKey | None = None
    ) -> tuple[Array, State]:
        _check_train(train)
        variables = {"params": params, **state}
        if not train:
            return module.apply(variables, x, **mode(False)), state
        rngs = {} if key is None else {"dropout": _checks.prng_key("key", key)}
        try:
            out, updated = module.apply(variables, x, **mode(True), rngs=rngs, mutable=list(state))
        except (flax_errors.ModifyScopeVariableError, flax_errors.ScopeCollectionNotFound) as error:
            raise ValueError(
                f"{type(module).__name__} uses a collection in training that its init "
                f"did not create, so the adapter cannot find that state (collections: "
                f"{sorted(state) or 'none'}): {error}"
            ) from error
        return out, {**state, **updated}

    return Model(init_fn, apply_fn)


# ---------------------------------------------------------------------------------------
# Equinox
# ---------------------------------------------------------------------------------------


def from_equinox(make: Callable[[Any], Any], *, axis_name: str = "batch") -> Model:
    """An Equinox model (written for one example) as a jaxnn ``Model`` over batches.

    ``init(key)`` builds ``make(key)``: a model, or ``(model, state)`` from
    ``eqx.nn.make_with_state``. ``eqx.partition(model, eqx.is_inexact_array)`` splits the
    floating-point arrays (the params) from the rest (kept with the adapter); the
    ``eqx.nn.State`` is the state. ``apply`` recombines them, sets the mode with
    ``eqx.nn.inference_mode`` and vmaps the model over the batch with ``axis_name`` (the
    name ``eqx.nn.BatchNorm(..., axis_name=...)`` reduces over), one dropout key per
    example when ``key`` is given and the model's ``__call__`` takes ``key``.

    Args:
      make: ``make(key) -> model`` or ``-> (model, state)``.
      axis_name: the batch axis' name, as the model's BatchNorm layers give it.

    Raises:
      ValueError: the model has stateful layers (BatchNorm) but ``make`` returned no
        ``eqx.nn.State``, so the adapter cannot find their running averages.
    """
    eqx = _require("equinox", "from_equinox")
    if not callable(make):
        raise TypeError(f"make must be a function make(key) -> model, got {make!r}")
    structure: dict[str, Any] = {}

    def init_fn(key: PRNGKey) -> tuple[Params, State]:
        built = make(_checks.prng_key("key", key))
        model, state = built if isinstance(built, tuple) else (built, None)
        if not isinstance(model, eqx.Module):
            raise TypeError(f"make(key) must return an eqx.Module, got {type(model).__name__}")
        stateful = [
            type(m).__name__
            for m in jax.tree.leaves(model, is_leaf=lambda m: isinstance(m, eqx.nn.StatefulLayer))
            if isinstance(m, eqx.nn.StatefulLayer)
        ]
        if stateful and not isinstance(state, eqx.nn.State):
            raise ValueError(
                f"{type(model).__name__} has stateful layers ({', '.join(sorted(set(stateful)))}) "
                "but make(key) returned no eqx.nn.State, so the adapter cannot find their "
                "state: build the model with eqx.nn.make_with_state(Model)(..., key=key) "
                "and return (model, state)"
            )
        # a StateIndex holds its layer's initial state: kept with the structure, not trained
        params, static = eqx.partition(
            model, eqx.is_inexact_array, is_leaf=lambda m: isinstance(m, eqx.nn.StateIndex)
        )
        structure["static"] = static
        structure["stateful"] = state is not None
        structure["takes_key"] = "key" in inspect.signature(type(model).__call__).parameters
        return params, ({} if state is None else state)

    def apply_fn(
        params: Params, state: State, x: Any, *, train: bool, key: PRNGKey | None = None
    ) -> tuple[Array, State]:
        _check_train(train)
        if "static" not in structure:
            raise ValueError("call this model's init before apply (it records the structure)")
        model = eqx.nn.inference_mode(eqx.combine(params, structure["static"]), not train)
        x = jnp.asarray(x)
        use_keys = train and key is not None and structure["takes_key"]
        keys = jax.random.split(_checks.prng_key("key", key), x.shape[0]) if use_keys else None

        if structure["stateful"]:
            # a clone: Equinox marks a State used once it is passed to a layer, and the
            # caller (fit's guard, a second apply) may still read the original
            leaves, treedef = jax.tree.flatten(state)
            fresh = jax.tree.unflatten(treedef, leaves)

            def one(xi, ki):
                return model(xi, fresh, key=ki) if use_keys else model(xi, fresh)

            out, new_state = jax.vmap(
                one, in_axes=(0, 0 if use_keys else None), out_axes=(0, None), axis_name=axis_name
            )(x, keys)
            return out, (new_state if train else state)

        def plain(xi, ki):
            return model(xi, key=ki) if use_keys else model(xi)

        return jax.vmap(plain, in_axes=(0, 0 if use_keys else None), axis_name=axis_name)(
            x, keys
        ), state

    return Model(init_fn, apply_fn)
