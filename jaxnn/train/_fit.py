"""``fit``: every step of a training run in one compiled ``lax.scan``."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, NotRequired, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import _checks, datasets
from jaxnn.base import Array, Params, PRNGKey, State
from jaxnn.train._hooks import Hook, HookHistory
from jaxnn.train._objective import StepInfo, as_objective, build_step
from jaxnn.train._resume import blank, concat, restore, save

__all__ = ["Execution", "FitResult", "History", "fit"]


class History(TypedDict):
    """What :func:`fit` records, a dict with these keys (``result.history["loss"]``).

    Keys:
      loss: (steps,) the training objective of each step's minibatch, at the params
        before the step (NaN after a divergence).
      grad_norm: (steps,) ‖∇E‖ of each step.
      lr: (steps,) the learning rate η_τ the step used.
      eval: with ``eval_data``: ``{"step": (evals,), "loss": (evals,), ...}``, the held-out
        loss and, for the cross-entropy losses, ``accuracy``, every ``eval_every`` steps
        and at the end (the last entry is the final params).
      hooks: ``{name: HookHistory}``, each hook's records.
    """

    loss: Array
    grad_norm: Array
    lr: Array
    eval: NotRequired[dict[str, Array]]
    hooks: dict[str, HookHistory]


class FitResult(NamedTuple):
    """The outcome of :func:`fit`.

    Fields:
      params, state, opt_state: after the last step taken (frozen at a divergence).
      history: a :class:`History`: per-step arrays ``loss``, ``grad_norm``, ``lr`` (shape
        (steps,)); ``eval`` when evaluating; ``hooks`` = {name: HookHistory}.
      diverged: bool array; ``diverged_at``: int array, the divergent step or −1.
    """

    params: Params
    state: State
    opt_state: Any
    history: History
    diverged: Array
    diverged_at: Array


class _Config(NamedTuple):
    """Everything static about a run: it selects the compiled program."""

    n: int
    batch_size: int
    shuffle: bool
    chunk: int
    blowup: float
    eval_every: int
    hooks: tuple  # ((name, Hook), ...)
    ragged: bool  # whether a call's chunk can run past the stop step (its tail then idles)


class _Carry(NamedTuple):
    step: Array
    params: Any
    state: Any
    opt_state: Any
    perm: Array
    first_loss: Array
    diverged_at: Array
    hook_states: tuple


def _all_finite(tree: Any) -> Array:
    """Whether every floating-point entry of ``tree`` is finite (a bool scalar)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


@functools.lru_cache(maxsize=32)
def _runner(objective: Callable, update: Callable, cfg: _Config) -> Callable:
    """The jitted chunk of ``cfg.chunk`` steps, cached so that repeated fits reuse it: it
    depends on the optimiser through its ``update`` function alone (the numbers live in the
    optimiser state, which is an argument)."""
    step_fn = build_step(objective, update)
    float_dtype = jnp.result_type(float)

    def take_batch(carry, data, shuffle_key):
        if not cfg.shuffle:
            return data, carry.perm
        per_epoch = cfg.n // cfg.batch_size
        epoch, pos = carry.step // per_epoch, carry.step % per_epoch
        perm = jax.lax.cond(
            pos == 0,
            lambda: datasets.permutation(jax.random.fold_in(shuffle_key, epoch), cfg.n),
            lambda: carry.perm,
        )
        idx = jax.lax.dynamic_slice_in_dim(perm, pos * cfg.batch_size, cfg.batch_size)
        return jax.tree.map(lambda a: a[idx], data), perm

    def train_step(carry, data, shuffle_key, step_key):
        t = carry.step
        batch, perm = take_batch(carry, data, shuffle_key)
        params, state, opt_state, info = step_fn(
            carry.params, carry.state, carry.opt_state, batch, jax.random.fold_in(step_key, t)
        )
        first = jnp.where(t == 0, info.loss, carry.first_loss)
        bad = (
            ~jnp.isfinite(info.loss)
            | ~jnp.isfinite(info.grad_norm)
            | ((first > 0) & (info.loss > cfg.blowup * first))
            | ~_all_finite(params)
        )
        live = carry.diverged_at < 0
        ok = live & ~bad
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        nan = jnp.asarray(jnp.nan, float_dtype)
        record = StepInfo(*(jnp.where(live, jnp.asarray(v, float_dtype), nan) for v in info))
        new = carry._replace(
            params=keep(params, carry.params),
            state=keep(state, carry.state),
            opt_state=keep(opt_state, carry.opt_state),
            perm=perm,
            first_loss=first.astype(float_dtype),
            diverged_at=jnp.where(live & bad, t, carry.diverged_at),
        )
        return new, record

    def body(carry, _, data, eval_data, shuffle_key, step_key, stop):
        t = carry.step
        active = t < stop if cfg.ragged else True
        hook_states, hook_records = [], []
        for (_, hook), hs in zip(cfg.hooks, carry.hook_states):
            args = (carry.params, carry.state, t) + (
                (carry.opt_state,) if hook.with_opt_state else ()
            )
            shapes = jax.eval_shape(hook.update, hs, *args)
            hs, rec = jax.lax.cond(
                active & (t % hook.every == 0),
                lambda hs=hs, hook=hook, args=args: hook.update(hs, *args),
                lambda hs=hs, shapes=shapes: (hs, blank(shapes[1])),
            )
            hook_states.append(hs)
            hook_records.append(rec)
        evals = None
        if eval_data is not None:
            shapes = jax.eval_shape(objective.evaluate, carry.params, carry.state, eval_data)
            evals = jax.lax.cond(
                active & (t % cfg.eval_every == 0),
                lambda: objective.evaluate(carry.params, carry.state, eval_data),
                lambda: blank(shapes),
            )
        carry = carry._replace(hook_states=tuple(hook_states))
        if cfg.ragged:
            nan = jnp.asarray(jnp.nan, float_dtype)
            carry, record = jax.lax.cond(
                active,
                lambda c: train_step(c, data, shuffle_key, step_key),
                lambda c: (c, StepInfo(nan, nan, nan)),
                carry,
            )
        else:  # every step of every call is taken: no branch around the step
            carry, record = train_step(carry, data, shuffle_key, step_key)
        return carry._replace(step=jnp.where(active, t + 1, t)), (
            record,
            evals,
            tuple(hook_records),
        )

    @jax.jit
    def run(carry, data, eval_data, shuffle_key, step_key, stop):
        fn = functools.partial(
            body,
            data=data,
            eval_data=eval_data,
            shuffle_key=shuffle_key,
            step_key=step_key,
            stop=stop,
        )
        return jax.lax.scan(fn, carry, None, length=cfg.chunk)

    return run


def _num_rows(data: Any) -> int:
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data has no arrays; pass data=(x, y) or data=None")
    rows = {int(np.shape(a)[0]) if np.ndim(a) else -1 for a in leaves}
    if len(rows) != 1 or -1 in rows:
        raise ValueError(
            f"every array in data must have the same number of rows (leading "
            f"axis), got shapes {[np.shape(a) for a in leaves]}"
        )
    return rows.pop()


def _normalize_hooks(hooks: Any) -> tuple:
    items = (
        hooks.items()
        if isinstance(hooks, dict)
        else ((f"hook_{i}", h) for i, h in enumerate(hooks))
    )
    out = []
    for name, hook in items:
        if not isinstance(hook, Hook):
            raise TypeError(
                f"hooks[{name!r}] must be a jaxnn.train.Hook, got {type(hook).__name__}"
            )
        _checks.positive_int(f"hooks[{name!r}].every", hook.every)
        out.append((str(name), hook))
    return tuple(out)


def _plan(data, epochs, steps, batch_size):
    """Returns (n, batch_size, shuffle, total steps) after checking the arguments."""
    if (epochs is None) == (steps is None):
        raise ValueError(
            f"give exactly one of epochs and steps, got epochs={epochs!r}, steps={steps!r}"
        )
    if data is None:
        if steps is None or batch_size is not None:
            raise ValueError(
                "data=None (an objective that ignores its batch) needs steps=... and no batch_size"
            )
        return 0, 0, False, _checks.positive_int("steps", steps)
    n = _num_rows(data)
    bs = n if batch_size is None else _checks.positive_int("batch_size", batch_size)
    if bs > n:
        raise ValueError(f"batch_size must be at most the {n} rows of data, got {bs}")
    per_epoch = n // bs
    total = (
        _checks.positive_int("epochs", epochs) * per_epoch
        if steps is None
        else _checks.positive_int("steps", steps)
    )
    return n, bs, bs < n, total


class Execution(NamedTuple):
    """How :func:`fit` executes a run, never what it computes: the same numbers either way.

    Fields:
      progress: show a tqdm bar (None: when stderr is a terminal).
      chunk_steps: steps per compiled call; default: the whole run in one call, or 1/50
        of it with a progress bar, or ``checkpoint_every`` when checkpointing.
      checkpoint: file to save params, state, optimiser state, step, guard and history to
        (atomically) every ``checkpoint_every`` steps and at the end.
      checkpoint_every: steps between checkpoints (None: only at the end).
      resume: continue from ``checkpoint`` if it exists (same key and settings required).
      until: stop after this many steps of the run (pause; resume later).
    """

    progress: bool | None = None
    chunk_steps: int | None = None
    checkpoint: str | Path | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    until: int | None = None


def _execution_keywords(fn: Callable) -> Callable:
    """Lets ``fit`` take :class:`Execution`'s fields as keywords too (``progress=False``,
    ``checkpoint=path``, ...), as it did before they were grouped, and ``chunk_size=`` as
    jaxnn 0.1 called ``chunk_steps``."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if "chunk_size" in kwargs:
            kwargs["chunk_steps"] = kwargs.pop("chunk_size")
        given = {k: kwargs.pop(k) for k in Execution._fields if k in kwargs}
        if given:
            if kwargs.get("execution") is not None:
                raise TypeError(f"fit() got execution= and its fields {sorted(given)} as well")
            kwargs["execution"] = Execution(**given)
        return fn(*args, **kwargs)

    return call


@_execution_keywords
def fit(
    objective: Callable,
    params: Params,
    optimizer: optax.GradientTransformation,
    data: Any = None,
    *,
    key: PRNGKey,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    state: State = None,
    hooks: Any = (),
    eval_data: Any = None,
    eval_every: int | None = None,
    blowup: float = 1e4,
    execution: Execution | None = None,
) -> FitResult:
    """Trains ``params`` on ``data`` with ``optimizer``, all steps in one compiled scan.

    Args:
      objective: ``objective(params, state, batch, key) -> (loss, new_state)``, e.g. from
        :func:`objective`; or, for a model without state, a plain ``loss(params, batch)``
        (or ``loss(params)`` with ``data=None``), which :func:`as_objective` adapts.
        Reuse the same objective object across calls and ``fit`` reuses the compiled
        program for every optimiser of the same kind: jaxnn's optimisers that differ only
        in numbers (η, μ, ...) share their update function.
      params: initial parameters (any pytree).
      optimizer: an optax ``GradientTransformation`` (e.g. from :mod:`jaxnn.optimizers`,
        whose learning rate is recorded per step; NaN for others).
      data: a pytree of arrays with a shared leading axis of n rows, e.g. ``(x, y)``; or
        None for an objective that ignores its batch (then give ``steps``).
      key: PRNG key; split into the shuffling key k (epoch e's permutation is
        :func:`jaxnn.datasets.permutation` of ``fold_in(k, e)``) and the per-step key
        passed to the objective (dropout), both depending only on the step number: same
        key, same history, bit for bit.
      epochs, steps: the run's length; give exactly one. An epoch is ⌊n/batch_size⌋ steps.
      batch_size: minibatch size; None means full batch (plain gradient descent).
      state: initial model state (batch-norm running averages); default ``{}``.
      hooks: a dict ``{name: Hook}`` (or a sequence, named ``hook_0``, ...).
      eval_data: held-out ``(x, y)``, evaluated with ``objective.evaluate`` every
        ``eval_every`` steps and once more at the end.
      eval_every: evaluation interval in steps (default: once per epoch).
      blowup: the divergence guard's factor on the first loss (see the module doc).
      execution: how the run executes (progress bar, steps per compiled call,
        checkpoints, resuming, pausing): an :class:`Execution`. Its fields are also taken
        as keywords: ``fit(..., checkpoint="run.ckpt", resume=True)``.

    Returns:
      A :class:`FitResult`.
    """
    objective = as_objective(objective)
    progress, chunk_steps, checkpoint, checkpoint_every, resume, until = execution or Execution()
    n, bs, shuffle, total = _plan(data, epochs, steps, batch_size)
    hooks = _normalize_hooks(hooks)
    _checks.in_range("blowup", blowup, 1.0, low_open=True)
    if eval_data is not None and not hasattr(objective, "evaluate"):
        raise TypeError(
            "eval_data needs an objective with an evaluate(params, state, batch) "
            "method, such as one built by jaxnn.train.objective"
        )
    for where, part in (("data", data), ("eval_data", eval_data)):
        for i, leaf in enumerate(jax.tree.leaves(part)):
            _checks.finite(f"{where} (array {i})", leaf)
    stop = total if until is None else _checks.positive_int("until", until)
    if stop > total:
        raise ValueError(f"until must be at most the run's {total} steps, got {until}")
    traced = _checks.is_traced((params, data, key))
    if traced and (checkpoint is not None or progress):
        raise ValueError(
            "checkpoint and progress need concrete values: they are not "
            "available when fit runs inside jit or vmap"
        )
    if progress is None:
        progress = (not traced) and sys.stderr.isatty()
    per_epoch = n // bs if bs else total
    eval_every = (
        _checks.positive_int("eval_every", eval_every) if eval_every is not None else per_epoch
    )
    if checkpoint_every is not None:
        _checks.positive_int("checkpoint_every", checkpoint_every)
        if checkpoint is None:
            raise ValueError("checkpoint_every needs checkpoint=PATH")
    chunk = (
        chunk_steps or checkpoint_every or (max(1, math.ceil(total / 50)) if progress else total)
    )
    chunk = _checks.positive_int("chunk_steps", chunk)
    cfg = _Config(n, bs, shuffle, chunk, float(blowup), eval_every, hooks, ragged=True)
    shuffle_key, step_key = jax.random.split(key)
    float_dtype = jnp.result_type(float)
    state = {} if state is None else state
    carry = _Carry(
        jnp.asarray(0, jnp.int32),
        params,
        state,
        optimizer.init(params),
        jnp.arange(n if shuffle else 0, dtype=jnp.int32),
        jnp.asarray(jnp.nan, float_dtype),
        jnp.asarray(-1, jnp.int32),
        tuple(h.init(params) for _, h in hooks),
    )
    args = (data, eval_data, shuffle_key, step_key)
    start, chunks = 0, []
    if checkpoint is not None and resume and Path(checkpoint).exists():
        run = _runner(objective, optimizer.update, cfg)  # either variant: the same shapes
        ys_shape = jax.eval_shape(run, carry, *args, jnp.int32(stop))[1]
        carry, prefix, start = restore(checkpoint, carry, ys_shape, total, key)
        chunks.append(prefix)
    # the calls end at the stop step exactly unless the last one runs past it
    cfg = cfg._replace(ragged=(stop - start) % chunk != 0)
    run = _runner(objective, optimizer.update, cfg)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=stop, initial=start, unit="step", desc="fit", leave=False)
    done = start
    while done < stop:
        carry, ys = run(carry, *args, jnp.int32(stop))
        chunks.append(ys)
        done = min(done + chunk, stop)
        if bar is not None:
            bar.update(done - bar.n)
        if checkpoint is not None and (
            (checkpoint_every is None and done == stop)
            or (checkpoint_every and (done % checkpoint_every == 0 or done == stop))
        ):
            save(checkpoint, carry, chunks, done, total, key)
    if bar is not None:
        bar.close()
    return _result(objective, carry, chunks, done, cfg, eval_data)


def _result(objective, carry, chunks, done, cfg, eval_data) -> FitResult:
    """The :class:`FitResult`, assembled (records joined, evaluation and hook steps picked,
    the final evaluation run) by one compiled program per run configuration rather than
    op by op (the objective is hashable: ``_runner`` already keys on it)."""
    return _finish(objective, carry, tuple(chunks), done, cfg, eval_data)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _finish(objective, carry, chunks, done, cfg, eval_data) -> FitResult:
    record, evals, hook_records = concat(list(chunks), done)
    history: History = {
        "loss": record.loss,
        "grad_norm": record.grad_norm,
        "lr": record.lr,
        "hooks": {},
    }
    if eval_data is not None:
        steps = np.arange(0, done, cfg.eval_every)
        final = objective.evaluate(carry.params, carry.state, eval_data)
        history["eval"] = {"step": jnp.asarray(np.append(steps, done))}
        for name, values in evals.items():
            history["eval"][name] = jnp.concatenate([values[steps], final[name][None]])
    for (name, hook), rec in zip(cfg.hooks, hook_records):
        steps = np.arange(0, done, hook.every)
        history["hooks"][name] = HookHistory(
            jnp.asarray(steps), jax.tree.map(lambda r, s=steps: r[s], rec)
        )
    return FitResult(
        carry.params,
        carry.state,
        carry.opt_state,
        history,
        carry.diverged_at >= 0,
        carry.diverged_at,
    )
