"""Running a function of (hparams, key) at every point of a grid as one compiled program."""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnn import _checks, optimizers, train
from jaxnn.base import Params, PRNGKey
from jaxnn.sweep._dead_axes import TRACER_ERRORS, check_run, trace_run, traced_error
from jaxnn.sweep._devices import RUNS_AXIS, device_count, pick_chunk, resolve_devices
from jaxnn.sweep._grid import Grid, Points, as_grid, grid

__all__ = ["SweepResult", "lr_sweep", "sweep"]


class SweepResult(NamedTuple):
    """The outcome of :func:`sweep`, every array on the host (NumPy).

    Fields:
      grid: the :class:`Grid` (or :class:`Points`); run k is ``grid.point(k)``.
      runs: the runs' :class:`~jaxnn.train.FitResult`, every leaf stacked on a leading axis
        of K = ``grid.size`` (``runs.history["loss"]`` has shape (K, steps)); ``params``,
        ``state`` and ``opt_state`` are None with ``keep_params=False``.
      final_loss: (K,) the training loss of each run's last step; NaN for a diverged run.
      diverged: (K,) bool; ``diverged_at``: (K,) the divergent step, or −1.
      compile_seconds: tracing and compiling the one program of the sweep (about 0 when an
        earlier sweep of the same ``run``, axes and chunk size compiled it).
      seconds: running every chunk (compile excluded).
      chunk_size: points per compiled call; ``devices``: how many devices shared them.
    """

    grid: Grid | Points
    runs: train.FitResult
    final_loss: np.ndarray
    diverged: np.ndarray
    diverged_at: np.ndarray
    compile_seconds: float
    seconds: float
    chunk_size: int
    devices: int

    def reshaped(self, values: Any) -> np.ndarray:
        """``values`` with its leading axis of K unflattened into the grid's shape, e.g.
        ``result.reshaped(result.final_loss)[i, j]`` is point (lr_i, mu_j)."""
        values = np.asarray(values)
        return values.reshape(self.grid.shape + values.shape[1:])


def _concatenate(parts: tuple, k: int) -> Any:
    """The first ``k`` rows of the chunks' results, on the host; PRNG-key leaves (a Flax NNX
    module's RNG streams) as key arrays of the same implementation."""
    if jnp.issubdtype(parts[0].dtype, jax.dtypes.prng_key):
        data = np.concatenate([np.asarray(jax.random.key_data(p)) for p in parts])[:k]
        return jax.random.wrap_key_data(jnp.asarray(data), impl=jax.random.key_impl(parts[0]))
    return np.concatenate(parts)[:k]


def _nbytes(tree: Any) -> int:
    # s.dtype.itemsize: also for PRNG-key leaves (a Flax NNX module's RNG streams)
    return sum(math.prod(s.shape) * s.dtype.itemsize for s in jax.tree.leaves(tree))


def _strip(result: train.FitResult) -> train.FitResult:
    return result._replace(params=None, state=None, opt_state=None)


def _shardings(devices: tuple | Mesh) -> tuple[Any, Any]:
    """(split over the runs axis, replicated) shardings over ``devices`` or a mesh."""
    if isinstance(devices, Mesh):
        return NamedSharding(devices, PartitionSpec(RUNS_AXIS)), NamedSharding(
            devices, PartitionSpec()
        )
    if len(devices) == 1:
        one = jax.sharding.SingleDeviceSharding(devices[0])
        return one, one
    mesh = Mesh(np.array(devices), (RUNS_AXIS,))
    return NamedSharding(mesh, PartitionSpec("runs")), NamedSharding(mesh, PartitionSpec())


@functools.lru_cache(maxsize=16)
def _compiled(
    run: Callable,
    devices: tuple | Mesh,
    seeded: bool,
    keep_params: bool,
    signature: tuple,
    chunk: int,
    key_dtype: Any,
) -> Any:
    """The compiled ``jit(vmap(run))`` for chunks of ``chunk`` points, its batch axis split
    over ``devices``, and the arrays ``run`` closes over (its data), which the program
    takes as arguments so that they keep their sharding — a dataset placed on a mesh's
    ``"data"`` axis stays split there — instead of being embedded as constants; cached,
    so a repeated sweep of the same run reuses it."""
    closed, shapes = trace_run(run, signature, key_dtype)
    jaxpr, tree = closed.jaxpr, jax.tree.structure(shapes)
    spread, same = _shardings(devices)
    consts = [_placed(c, devices, same) for c in closed.consts]

    def batched(hparams, keys, consts):
        program = jax_core.jaxpr_as_fun(jax_core.ClosedJaxpr(jaxpr, consts))
        args = jax.tree.leaves((hparams, keys))
        axes = [0] * len(hparams) + [0 if seeded else None] * (len(args) - len(hparams))
        out = jax.tree.unflatten(tree, jax.vmap(program, in_axes=axes)(*args))
        return out if keep_params else _strip(out)

    hparams = {n: jax.ShapeDtypeStruct((chunk,), d, sharding=spread) for n, d in signature}
    keys = jax.ShapeDtypeStruct(
        (chunk,) if seeded else (), key_dtype, sharding=spread if seeded else same
    )
    const_shapes = [jax.ShapeDtypeStruct(c.shape, c.dtype, sharding=c.sharding) for c in consts]
    try:
        compiled = (
            jax.jit(batched, out_shardings=spread).lower(hparams, keys, const_shapes).compile()
        )
    except TRACER_ERRORS as e:
        raise traced_error(e) from None
    return compiled, consts


def _placed(value: Any, devices: tuple | Mesh, same: Any) -> Any:
    """A constant of ``run`` on the sweep's devices: as it is when already placed over
    exactly those devices (a dataset sharded on the mesh), else replicated."""
    device_set = set(devices.devices.flat) if isinstance(devices, Mesh) else set(devices)
    sharding = getattr(value, "sharding", None)
    if sharding is not None and set(sharding.device_set) == device_set:
        return value
    return jax.device_put(value, same)


def _final_loss(loss: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    last = (
        loss[:, -1].astype(float)
        if loss.ndim == 2 and loss.shape[1]
        else np.full(len(loss), np.nan)
    )
    return np.where(diverged, np.nan, last)


def sweep(
    run: Callable[[dict, PRNGKey], train.FitResult],
    grid: Grid | Mapping,
    *,
    key: PRNGKey,
    chunk_size: int | None = None,
    devices: Sequence[Any] | Mesh | None = None,
    keep_params: bool = True,
    progress: bool | None = None,
) -> SweepResult:
    """Runs ``run(hparams, key)`` at every point of ``grid`` as one vmapped program.

    Args:
      run: ``run(hparams, key) -> FitResult``; ``hparams`` maps every axis name to a traced
        scalar (``seed`` as int32, the rest in JAX's default float dtype).
      grid: a :class:`Grid` from :func:`grid`, or a dict of axes passed to it; or
        :class:`Points` from :func:`zipped`, one run per point.
      key: PRNG key; the run at a point gets ``fold_in(key, seed)`` with a ``seed`` axis,
        else ``key`` (see the module doc).
      chunk_size: points per compiled call, rounded up to a multiple of the device count;
        default: as many as fit the memory budget (module doc), all of them when they fit.
      devices: the devices to shard the runs over (default ``jax.devices()``; one device:
        plain vmap), or a ``jax.sharding.Mesh`` with an axis named ``"runs"`` that splits
        the runs while its other axes serve the run's own arrays — e.g. a 2-D mesh
        ``("runs", "data")`` for runs of a data-parallel model whose dataset is placed
        with :func:`jaxnn.sharding.shard_batch` on ``"data"``, so every device works.
      keep_params: False drops every run's params, state and optimiser state (they never
        leave the device), keeping the histories and divergence flags.
      progress: a bar over chunks (default: with several chunks and stderr a terminal).

    Returns:
      A :class:`SweepResult`. Run k equals ``run(grid.point(k) as arrays, its key)`` called
      on its own, up to floating-point reassociation.

    Raises:
      ValueError, TypeError: a bad grid (see :func:`grid`), an axis that ``run`` never reads,
        a ``run`` that needs concrete hyperparameters or returns no FitResult.
    """
    if not callable(run):
        raise TypeError(f"run must be a function run(hparams, key) -> FitResult, got {run!r}")
    layout = as_grid(grid)
    key = _checks.prng_key("key", key)
    keep_params = bool(keep_params)
    devices = resolve_devices(devices)
    seeded = "seed" in layout.axes
    floating = jnp.result_type(float)
    dtypes = {n: jnp.dtype(jnp.int32 if n == "seed" else floating) for n in layout.names}
    signature = tuple(dtypes.items())
    start = time.perf_counter()
    out = check_run(run, signature, key.dtype, seeded)

    k = layout.size
    chunk = pick_chunk(chunk_size, k, devices, _nbytes(out))
    padded = -(-k // chunk) * chunk
    index = np.minimum(np.arange(padded), k - 1)  # pad by repeating the last point
    points = {n: np.asarray(v[index], dtypes[n]) for n, v in layout.points().items()}
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, points["seed"]) if seeded else key
    compiled, consts = _compiled(run, devices, seeded, keep_params, signature, chunk, key.dtype)
    compile_seconds = time.perf_counter() - start
    spread, same = _shardings(devices)

    if progress is None:
        progress = padded > chunk and sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=k, unit="run", desc="sweep", leave=False)
    start = time.perf_counter()
    parts, running = [], None
    for lo in range(0, padded + chunk, chunk):
        if lo < padded:  # start this chunk before fetching the previous one's results
            hp = jax.device_put({n: v[lo : lo + chunk] for n, v in points.items()}, spread)
            ks = (
                jax.device_put(keys[lo : lo + chunk], spread)
                if seeded
                else jax.device_put(keys, same)
            )
            running, done = compiled(hp, ks, consts), running
        else:
            done = running
        if done is not None:
            parts.append(jax.device_get(done))
            if bar is not None:
                bar.update(min(lo, k) - bar.n)
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    runs = jax.tree.map(lambda *xs: _concatenate(xs, k), *parts)
    diverged = np.asarray(runs.diverged, bool)
    return SweepResult(
        layout,
        runs,
        _final_loss(np.asarray(runs.history["loss"]), diverged),
        diverged,
        np.asarray(runs.diverged_at),
        compile_seconds,
        seconds,
        chunk,
        device_count(devices),
    )


def lr_sweep(
    objective: Callable,
    params: Params | Callable[[PRNGKey], Params],
    data: Any = None,
    *,
    lrs: Any,
    key: PRNGKey,
    optimizer: str | Callable[[Any], Any] = "sgd",
    hyper: Mapping | None = None,
    seeds: int | None = None,
    chunk_size: int | None = None,
    devices: Sequence[Any] | None = None,
    keep_params: bool = False,
    **fit_kwargs: Any,
) -> SweepResult:
    """A sweep over learning rates (and seeds): the common case of :func:`sweep`.

    Run k is ``fit(objective, params_k, opt(η_k), data, key=k_fit, **fit_kwargs)`` with
    ``opt = optimizers.get(optimizer, η, **hyper)`` (or ``optimizer(η)`` for a function)
    and ``(k_init, k_fit) = split(key_k)``; ``params_k`` is ``params`` itself, or
    ``params(k_init)`` when ``params`` is an init function (with ``seeds``, a different
    init per seed).

    Args:
      objective, data, fit_kwargs: as for :func:`jaxnn.train.fit` (``steps`` or ``epochs``,
        ``batch_size``, ``state``, ``eval_data``, ...).
      params: the starting params of every run, or ``init(key) -> params``.
      lrs: the learning rates, e.g. ``log_range(1e-4, 1.0, 64)``.
      key: PRNG key (see :func:`sweep`).
      optimizer: a name from :mod:`jaxnn.optimizers` or a function ``lr -> optimizer``.
      hyper: the optimiser's other hyperparameters, e.g. ``{"mu": 0.9}``.
      seeds: run every η with seeds 0 … seeds − 1 (default: one run per η).
      chunk_size, devices, keep_params: as for :func:`sweep` (params dropped by default).
    """
    hyper = dict(hyper or {})
    if callable(optimizer):
        if hyper:
            raise TypeError(
                "hyper goes with an optimizer name; a function lr -> optimizer sets "
                f"its own hyperparameters, got hyper={hyper!r}"
            )
        make = optimizer
    else:
        _checks.resolve("optimizer", optimizer, {n: n for n in optimizers.NAMES})
        make = lambda lr: optimizers.get(optimizer, lr, **hyper)
    axes = {"lr": lrs}
    if seeds is not None:
        axes["seed"] = range(_checks.positive_int("seeds", seeds))

    def run(hp, run_key):
        init_key, fit_key = jax.random.split(run_key)
        start = params(init_key) if callable(params) else params
        return train.fit(objective, start, make(hp["lr"]), data, key=fit_key, **fit_kwargs)

    return sweep(
        run, grid(**axes), key=key, chunk_size=chunk_size, devices=devices, keep_params=keep_params
    )
