"""Training: a pure step, objectives, and ``fit``, which runs every step in one compiled scan.

* :func:`objective` turns a model and a loss into ``objective(params, state, batch, key)
  -> (loss, new_state)``, the one function the rest of jaxnn differentiates.
* :func:`make_step` composes it with an optax optimiser into a pure step.
* :func:`fit` runs epochs × minibatches (reshuffled every epoch from a key) inside
  ``lax.scan`` under ``jit``: no Python in the hot loop. It records the loss, the gradient
  norm ‖∇E‖ and the learning rate η_τ of every step, evaluates on held-out data every k
  steps, runs :class:`Hook`s, guards against divergence, shows progress and checkpoints.

Minibatch SGD (seed 003): at step τ, with B_τ the τ-th minibatch of the current epoch's
permutation, w ← w + Δw(∇ (1/|B_τ|) Σ_{x∈B_τ} E_x(w)); full-batch gradient descent is the
case batch_size = n.

**Divergence guard.** A step τ is *divergent* when its loss or gradient norm is not finite,
when its loss exceeds ``blowup`` × the first step's loss (default 10⁴: a step size just
above 2/λmax grows the error by |1 − ηλmax| per step, geometrically but finitely for
hundreds of steps), or when the update would make a parameter non-finite. From that step
on the parameters, model state and optimiser state are frozen; the result reports
``diverged=True`` and ``diverged_at=τ``, and later history entries are NaN.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import _checks, losses, optimizers
from jaxnn import checkpoint as ckpt
from jaxnn.base import Array, Params, PRNGKey, State
from jaxnn.model import Model, hidden_stats

__all__ = [
    "FitResult",
    "Hook",
    "HookHistory",
    "Objective",
    "StepInfo",
    "fit",
    "layer_grad_norms",
    "layer_grad_norms_hook",
    "layer_stats_hook",
    "make_step",
    "objective",
]


class StepInfo(NamedTuple):
    """What one step measured: the loss at the step's params, ‖∇E‖, and η_τ."""

    loss: Array
    grad_norm: Array
    lr: Array


class Hook(NamedTuple):
    """A measurement carried through the scan and run every ``every`` steps.

    Fields:
      init: ``init(params) -> hook_state``.
      update: ``update(hook_state, params, state, step) -> (hook_state, record)``, called
        with the params *before* step ``step`` is taken. ``record`` is a pytree of arrays of
        fixed shape; ``fit`` stacks the records on a leading axis.
      every: run at steps 0, every, 2·every, ...
    """

    init: Callable[[Params], Any]
    update: Callable[[Any, Params, State, Array], tuple[Any, Any]]
    every: int = 1


class HookHistory(NamedTuple):
    """A hook's records: ``step`` (calls,) and ``record`` (leaves stacked as (calls, ...))."""

    step: Array
    record: Any


class FitResult(NamedTuple):
    """The outcome of :func:`fit`.

    Fields:
      params, state, opt_state: after the last step taken (frozen at a divergence).
      history: dict with per-step arrays ``loss``, ``grad_norm``, ``lr`` (shape (steps,));
        ``eval`` = {"step", "loss", ...metrics} when evaluating (the last entry is the final
        params); ``hooks`` = {name: HookHistory}.
      diverged: bool array; ``diverged_at``: int array, the divergent step or −1.
    """

    params: Params
    state: State
    opt_state: Any
    history: dict
    diverged: Array
    diverged_at: Array


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
    return _step(objective, optimizer.update)


def _step(objective: Callable, update: Callable) -> Callable:
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


class _Config(NamedTuple):
    """Everything static about a run: it selects the compiled program."""

    n: int
    batch_size: int
    shuffle: bool
    chunk: int
    blowup: float
    eval_every: int
    hooks: tuple  # ((name, Hook), ...)


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
    """Whether every float entry of ``tree`` is finite, as Σ x·0 = 0: x·0 is 0 for a finite
    x and NaN for ±inf or NaN, so the sum is exactly 0 or NaN (never an overflow). One
    float sum a leaf compiles to far less code on XLA:CPU than isfinite-and-all reductions
    (a third of a small fit's compile time)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    if not leaves:
        return jnp.asarray(True)
    return jnp.asarray(sum(jnp.sum(x * 0) for x in leaves) == 0)


def _blank(shape_tree: Any) -> Any:
    """NaN (floats) or zeros (other dtypes) shaped like an eval_shape result."""
    return jax.tree.map(
        lambda s: jnp.full(
            s.shape, jnp.nan if jnp.issubdtype(s.dtype, jnp.inexact) else 0, s.dtype
        ),
        shape_tree,
    )


@functools.lru_cache(maxsize=32)
def _runner(objective: Callable, update: Callable, cfg: _Config) -> Callable:
    """The jitted chunk of ``cfg.chunk`` steps, cached so that repeated fits reuse it: it
    depends on the optimiser through its ``update`` function alone (the numbers live in the
    optimiser state, which is an argument)."""
    step_fn = _step(objective, update)
    float_dtype = jnp.result_type(float)

    def take_batch(carry, data, shuffle_key):
        if not cfg.shuffle:
            return data, carry.perm
        per_epoch = cfg.n // cfg.batch_size
        epoch, pos = carry.step // per_epoch, carry.step % per_epoch
        perm = jax.lax.cond(
            pos == 0,
            lambda: jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), cfg.n).astype(
                jnp.int32
            ),
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
        active = t < stop
        hook_states, hook_records = [], []
        for (_, hook), hs in zip(cfg.hooks, carry.hook_states):
            shapes = jax.eval_shape(hook.update, hs, carry.params, carry.state, t)
            hs, rec = jax.lax.cond(
                active & (t % hook.every == 0),
                lambda hs=hs, hook=hook: hook.update(hs, carry.params, carry.state, t),
                lambda hs=hs, shapes=shapes: (hs, _blank(shapes[1])),
            )
            hook_states.append(hs)
            hook_records.append(rec)
        evals = None
        if eval_data is not None:
            shapes = jax.eval_shape(objective.evaluate, carry.params, carry.state, eval_data)
            evals = jax.lax.cond(
                active & (t % cfg.eval_every == 0),
                lambda: objective.evaluate(carry.params, carry.state, eval_data),
                lambda: _blank(shapes),
            )
        carry = carry._replace(hook_states=tuple(hook_states))
        nan = jnp.asarray(jnp.nan, float_dtype)
        carry, record = jax.lax.cond(
            active,
            lambda c: train_step(c, data, shuffle_key, step_key),
            lambda c: (c, StepInfo(nan, nan, nan)),
            carry,
        )
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
    progress: bool | None = None,
    chunk_size: int | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    until: int | None = None,
) -> FitResult:
    """Trains ``params`` on ``data`` with ``optimizer``, all steps in one compiled scan.

    Args:
      objective: ``objective(params, state, batch, key) -> (loss, new_state)``, e.g. from
        :func:`objective`. Reuse the same objective object across calls and ``fit`` reuses
        the compiled program for every optimiser of the same kind: jaxnn's optimisers that
        differ only in numbers (η, μ, ...) share their update function.
      params: initial parameters (any pytree).
      optimizer: an optax ``GradientTransformation`` (e.g. from :mod:`jaxnn.optimizers`,
        whose learning rate is recorded per step; NaN for others).
      data: a pytree of arrays with a shared leading axis of n rows, e.g. ``(x, y)``; or
        None for an objective that ignores its batch (then give ``steps``).
      key: PRNG key; split into the shuffling key (epoch e's permutation comes from
        ``fold_in(k, e)``) and the per-step key passed to the objective (dropout), both
        depending only on the step number: same key, same history, bit for bit.
      epochs, steps: the run's length; give exactly one. An epoch is ⌊n/batch_size⌋ steps.
      batch_size: minibatch size; None means full batch (plain gradient descent).
      state: initial model state (batch-norm running averages); default ``{}``.
      hooks: a dict ``{name: Hook}`` (or a sequence, named ``hook_0``, ...).
      eval_data: held-out ``(x, y)``, evaluated with ``objective.evaluate`` every
        ``eval_every`` steps and once more at the end.
      eval_every: evaluation interval in steps (default: once per epoch).
      blowup: the divergence guard's factor on the first loss (see the module doc).
      progress: show a tqdm bar (default: when stderr is a terminal).
      chunk_size: steps per compiled call; default: the whole run in one call, or 1/50 of
        it with a progress bar, or ``checkpoint_every`` when checkpointing.
      checkpoint: file to save params, state, optimiser state, step, guard and history to
        (atomically) every ``checkpoint_every`` steps and at the end.
      resume: continue from ``checkpoint`` if it exists (same key and settings required).
      until: stop after this many steps of the ``total`` (pause; resume later).

    Returns:
      A :class:`FitResult`.
    """
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
    chunk = chunk_size or checkpoint_every or (max(1, math.ceil(total / 50)) if progress else total)
    chunk = _checks.positive_int("chunk_size", chunk)
    cfg = _Config(n, bs, shuffle, chunk, float(blowup), eval_every, hooks)
    run = _runner(objective, optimizer.update, cfg)
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
        ys_shape = jax.eval_shape(run, carry, *args, jnp.int32(stop))[1]
        carry, prefix, start = _restore(checkpoint, carry, ys_shape, total, key)
        chunks.append(prefix)
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
            _save(checkpoint, carry, chunks, done, total, key)
    if bar is not None:
        bar.close()
    return _result(objective, carry, chunks, done, cfg, eval_data)


def _concat(chunks: list, length: int) -> Any:
    """The per-step records of the first ``length`` steps, from the chunks' outputs."""
    if not chunks:
        return None
    joined = (
        chunks[0]
        if len(chunks) == 1
        else jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *chunks)
    )
    return jax.tree.map(lambda x: x if x.shape[0] == length else x[:length], joined)


def _result(objective, carry, chunks, done, cfg, eval_data) -> FitResult:
    """The :class:`FitResult`, assembled (records joined, evaluation and hook steps picked,
    the final evaluation run) by one compiled program per run configuration rather than
    op by op (the objective is hashable: ``_runner`` already keys on it)."""
    return _assemble(objective, carry, tuple(chunks), done, cfg, eval_data)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _assemble(objective, carry, chunks, done, cfg, eval_data) -> FitResult:
    record, evals, hook_records = _concat(list(chunks), done)
    history = {"loss": record.loss, "grad_norm": record.grad_norm, "lr": record.lr}
    if eval_data is not None:
        steps = np.arange(0, done, cfg.eval_every)
        final = objective.evaluate(carry.params, carry.state, eval_data)
        history["eval"] = {"step": jnp.asarray(np.append(steps, done))}
        for name, values in evals.items():
            history["eval"][name] = jnp.concatenate([values[steps], final[name][None]])
    history["hooks"] = {}
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


def _padded_history(chunks: list, done: int, ys_shape: Any, total: int) -> Any:
    """The records of steps [0, done) in arrays of length ``total`` (NaN/0 after)."""
    full = jax.tree.map(
        lambda s: np.asarray(_blank(jax.ShapeDtypeStruct((total, *s.shape[1:]), s.dtype))),
        ys_shape,
    )
    so_far = _concat(chunks, done)
    if so_far is not None:
        full = jax.tree.map(lambda f, s: np.concatenate([np.asarray(s), f[done:]]), full, so_far)
    return full


def _save(path, carry, chunks, done, total, key):
    ys_shape = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), chunks[0])
    history = _padded_history(chunks, done, ys_shape, total)
    ckpt.save(
        path,
        {"carry": carry, "history": history},
        metadata={
            "step": int(done),
            "total": int(total),
            "key": np.asarray(jax.random.key_data(key)).tolist(),
        },
    )


def _restore(path, carry, ys_shape, total, key):
    like_history = _padded_history([], 0, ys_shape, total)
    tree, meta = ckpt.load(path, {"carry": carry, "history": like_history})
    if meta.get("key") != np.asarray(jax.random.key_data(key)).tolist():
        raise ValueError(
            f"{path} was written by a run with a different key; resuming it "
            f"with this key would not reproduce that run"
        )
    if meta.get("total") != total:
        raise ValueError(
            f"{path} was written by a run of {meta.get('total')} steps, this run has {total}"
        )
    done = int(meta["step"])
    carry = jax.tree.map(jnp.asarray, tree["carry"])
    prefix = jax.tree.map(lambda h: jnp.asarray(h[:done]), tree["history"])
    return carry, prefix, done


# ---------------------------------------------------------------------------------------
# hooks the seeds' studies need
# ---------------------------------------------------------------------------------------


def layer_stats_hook(
    x: Any, activation: str | Callable = "tanh", every: int = 1, saturation: float = 0.99
) -> Hook:
    """Per-hidden-layer activation statistics on probe inputs ``x`` (plain-path params).

    The record is :class:`jaxnn.model.HiddenStats`: pre-activation mean/std/E[a²],
    activation mean/std and the fraction of |z| > ``saturation``, each of shape (L−1,).
    """
    x = jnp.asarray(x)

    def update(hook_state, params, state, step):
        return hook_state, hidden_stats(params, x, activation, saturation)

    return Hook(lambda params: (), update, _checks.positive_int("every", every))


def layer_grad_norms(
    objective: Callable, params: Params, state: State, batch: Any, *, key: PRNGKey | None = None
) -> Array:
    """‖∂E/∂θ_l‖ for every top-level entry θ_l of the params (every layer of a jaxnn MLP),
    E = ``objective(params, state, batch, key)``; shape (L,). Wrap it in ``jax.jit`` (with
    ``objective`` bound) to compute it as one program rather than op by op."""
    grads, _ = jax.grad(objective, has_aux=True)(params, state, batch, key)
    layers = grads if isinstance(grads, (list, tuple)) else [grads[k] for k in sorted(grads)]
    return jnp.stack([optax.tree.norm(g) for g in layers])


def layer_grad_norms_hook(objective: Callable, batch: Any, every: int = 1, *, key: PRNGKey) -> Hook:
    """:func:`layer_grad_norms` on a fixed ``batch`` (with ``fold_in(key, step)``): how
    gradients vanish or explode with depth. Record shape (L,). ``key`` is required (typed or
    legacy); the objective's dropout, if any, draws from it."""
    key = _checks.prng_key("key", key)

    def update(hook_state, params, state, step):
        return hook_state, layer_grad_norms(
            objective, params, state, batch, key=jax.random.fold_in(key, step)
        )

    return Hook(lambda params: (), update, _checks.positive_int("every", every))
