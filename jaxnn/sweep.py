"""Sweeps: many training runs over a grid of hyperparameters as one compiled program.

A sweep runs ``run(hparams, key) -> FitResult`` at every point of a :class:`Grid`::

    def run(hp, key):
      params = jaxnn.init_mlp(jax.random.fold_in(key, 1), sizes)
      opt = optimizers.momentum(hp["lr"], hp["mu"])
      return train.fit(objective, params, opt, data, key=key, steps=500, batch_size=128)

    result = sweep(run, grid(lr=log_range(1e-4, 1.0, 64), mu=[0.0, 0.5, 0.9],
                             seed=range(4)), key=jax.random.key(0))

``hparams`` maps each axis name to the point's value as a traced scalar, so the optimiser
and the model must take their hyperparameters as values (jaxnn's optimisers do, through
``optax.inject_hyperparams``; ``jaxnn.mlp`` takes a traced dropout rate): changing a value
never recompiles.

How the K points run:

* **vmap**: the points are a leading batch axis of every array of every run, all under one
  ``jit(vmap(run))``, compiled once for the whole sweep.
* **keys**: with a ``seed`` axis the run at point k gets ``fold_in(key, seed_k)`` (and
  ``hparams["seed"]``); without one every run gets ``key`` itself, so all runs start from
  the same init and see the same minibatches: a learning-rate sweep compares like with
  like, and XLA computes the first layer of all K runs, whose inputs they share, as one
  matrix product.
* **devices**: with D > 1 devices the batch axis is sharded over a 1-D ``Mesh`` named
  ``"runs"`` (``NamedSharding(mesh, P("runs"))``): each device runs K/D points, and the
  grid is padded to a multiple of D by repeating its last point (the copies are dropped
  from the result). On one device it is plain vmap. The same code runs on a multi-GPU or
  TPU host. XLA:CPU is one device that runs a batched matrix product on one core;
  :func:`use_cpu_devices` splits the host into several devices per core so that the
  sharded sweep keeps every core busy.
* **chunks**: the points run ``chunk_size`` at a time, every chunk through the same
  compiled program, and each chunk's results go to host memory while the next one runs
  (at most two chunks on the device): a 10,000-point grid runs in bounded device memory.
  The default chunk fits :data:`CHUNK_BYTES` per device (or a quarter of an
  accelerator's memory) at an estimated 8 × the size of one run's outputs (params,
  optimiser state, history) per run.
* **caching**: the compiled programs of the last 16 sweeps are kept; sweeping the same
  ``run`` function again over axes of the same names and chunk size reuses its program
  (new values, no recompilation).

Points may also be given one by one: :func:`zipped` pairs its axes value by value instead
of multiplying them (a learning rate chosen per seed, say), and every sweep of the same
``run`` over zipped points of one size reuses its compiled program.

Grid values are concrete, so they are checked before anything is traced: empty axes,
non-finite or repeated values, learning rates ≤ 0, momenta and dropout rates outside
[0, 1), negative penalties, negative seeds; and an axis that ``run`` never reads (the
traced program does not depend on it: a sweep axis that changes nothing is a mistake).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnn import _checks, hessian, optimizers, train
from jaxnn.base import Params, PRNGKey

#: Default device-memory budget of one chunk, per device, where the device does not report
#: its memory (CPU).
CHUNK_BYTES = 2**30

#: XLA:CPU devices per core that :func:`use_cpu_devices` makes by default.
DEVICES_PER_CORE = 8

# Axis names jaxnn knows, with the values they accept: (low, high, low_open, high_open).
_RANGES = {
    "lr": (0.0, None, True, False), "learning_rate": (0.0, None, True, False),
    "mu": (0.0, 1.0, False, True), "momentum": (0.0, 1.0, False, True),
    "dropout": (0.0, 1.0, False, True), "weight_decay": (0.0, None, False, False),
    "l1": (0.0, None, False, False), "l2": (0.0, None, False, False),
    "init_scale": (0.0, None, True, False), "clip_norm": (0.0, None, True, False),
}
_LR_NAMES = ("lr", "learning_rate")
_MU_NAMES = ("mu", "momentum")


# ---------------------------------------------------------------------------------------
# grids
# ---------------------------------------------------------------------------------------

class Grid(NamedTuple):
  """A product grid of hyperparameters.

  Fields:
    axes: name -> 1-D NumPy array of the axis's values, in the order given (``seed``:
      int64, every other axis float64).

  Point k is the C-order (last axis fastest) product index ``np.unravel_index(k, shape)``.
  """
  axes: dict

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(self.axes)

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(len(v) for v in self.axes.values())

  @property
  def size(self) -> int:
    return math.prod(self.shape)

  def points(self) -> dict[str, np.ndarray]:
    """name -> array of shape (K,): every point's value of that axis."""
    mesh = np.meshgrid(*self.axes.values(), indexing="ij")
    return {name: m.reshape(-1) for name, m in zip(self.axes, mesh)}

  def point(self, k: int) -> dict[str, float | int]:
    """The hyperparameters of point ``k`` as Python numbers."""
    index = np.unravel_index(_checks.positive_int("k", k, 0), self.shape)
    return {name: values[i].item() for (name, values), i in zip(self.axes.items(), index)}


def _axis(name: str, values: Any, distinct: bool = True) -> np.ndarray:
  """One axis's values as a checked 1-D array (a scalar is a one-value axis); a product
  grid's axis must not repeat a value (``distinct``)."""
  if isinstance(values, range):
    values = list(values)
  if isinstance(values, (str, bytes)) or values is None:
    raise TypeError(f"grid axis {name!r} must be a sequence of numbers, got {values!r}")
  arr = np.asarray(values)
  if arr.ndim == 0:
    arr = arr.reshape(1)
  if arr.ndim != 1:
    raise ValueError(f"grid axis {name!r} must be a flat sequence of numbers, got shape "
                     f"{arr.shape}")
  if arr.size == 0:
    raise ValueError(f"grid axis {name!r} is empty; give at least one value")
  if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                               or np.issubdtype(arr.dtype, np.floating)):
    raise TypeError(f"grid axis {name!r} must hold real numbers, got {arr.tolist()!r}")
  if name == "seed":
    if not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
      raise ValueError(f"grid axis 'seed' must hold ints >= 0, got {arr.tolist()!r}")
    arr = arr.astype(np.int64)
  else:
    arr = arr.astype(np.float64)
    _checks.finite(f"grid axis {name!r}", arr)
    if name in _RANGES:
      low, high, low_open, high_open = _RANGES[name]
      for v in arr:
        try:
          _checks.in_range(name, float(v), low, high, low_open=low_open,
                           high_open=high_open)
        except ValueError as e:
          raise ValueError(f"grid axis {name!r}: {e}") from None
  if distinct and len(np.unique(arr)) != arr.size:
    raise ValueError(f"grid axis {name!r} repeats a value ({arr.tolist()!r}): the repeated "
                     f"runs would change nothing; give distinct values")
  return arr


def grid(**axes: Any) -> Grid:
  """The product grid of the named axes, e.g. ``grid(lr=[0.01, 0.1], mu=[0, 0.9],
  seed=range(4))`` (16 points).

  Each axis is a sequence of numbers (a single number is a one-value axis). ``seed`` holds
  ints ≥ 0 and selects the run's key (see the module doc); ``lr``/``learning_rate`` must
  be > 0, ``mu``/``momentum`` and ``dropout`` in [0, 1), ``weight_decay``, ``l1``, ``l2``
  ≥ 0 and ``init_scale`` and ``clip_norm`` > 0. Any other name is any finite value.

  Raises:
    ValueError: no axes, an empty axis, a repeated, non-finite or out-of-range value.
    TypeError: an axis that is not a sequence of real numbers.
  """
  if not axes:
    raise ValueError("grid needs at least one axis, e.g. grid(lr=[0.01, 0.1])")
  return Grid({name: _axis(name, values) for name, values in axes.items()})


class Points(NamedTuple):
  """Sweep points given one by one: run k takes the k-th value of every axis (the axes
  are zipped, not multiplied), e.g. a learning rate chosen per seed.

  Fields:
    axes: name -> 1-D NumPy array of K values (``seed``: int64, the rest float64).
  """
  axes: dict

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(self.axes)

  @property
  def shape(self) -> tuple[int, ...]:
    return (self.size,)

  @property
  def size(self) -> int:
    return len(next(iter(self.axes.values())))

  def points(self) -> dict[str, np.ndarray]:
    """name -> array of shape (K,): every point's value of that axis."""
    return dict(self.axes)

  def point(self, k: int) -> dict[str, float | int]:
    """The hyperparameters of point ``k`` as Python numbers."""
    k = _checks.positive_int("k", k, 0)
    return {name: values[k].item() for name, values in self.axes.items()}


def zipped(**axes: Any) -> Points:
  """Sweep points given one by one, e.g. ``zipped(lr=[0.1, 0.2], seed=[0, 1])`` (2 points:
  η = 0.1 with seed 0, η = 0.2 with seed 1). Every axis must have the same length K;
  values are checked as for :func:`grid`, except that they may repeat.

  Raises:
    ValueError: no axes, axes of different lengths, a non-finite or out-of-range value.
    TypeError: an axis that is not a sequence of real numbers.
  """
  if not axes:
    raise ValueError("zipped needs at least one axis, e.g. zipped(lr=[0.01, 0.1])")
  checked = {name: _axis(name, values, distinct=False) for name, values in axes.items()}
  lengths = {name: len(v) for name, v in checked.items()}
  if len(set(lengths.values())) != 1:
    raise ValueError(f"zipped axes must all have the same length (one value per point), "
                     f"got lengths {lengths}")
  return Points(checked)


def log_range(low: float, high: float, num: int) -> np.ndarray:
  """``num`` log-spaced values from ``low`` to ``high`` inclusive: low·(high/low)^(i/(num−1)).

  Raises:
    ValueError: ``low`` ≤ 0 (a log range of learning rates must be positive), ``high`` <
      ``low``, or ``num`` < 1 (``num`` = 1 needs ``low`` = ``high``).
  """
  _checks.in_range("low", low, 0.0, low_open=True)
  _checks.in_range("high", high, float(low))
  num = _checks.positive_int("num", num)
  if num == 1 and high != low:
    raise ValueError(f"num=1 gives one value, but low={low!r} and high={high!r} differ")
  return np.geomspace(float(low), float(high), num)


def _as_grid(value: Any) -> Grid | Points:
  if isinstance(value, (Grid, Points)):
    return value
  if isinstance(value, Mapping):
    return grid(**value)
  raise TypeError(f"grid must be a jaxnn.sweep.Grid (from grid(...)), Points (from "
                  f"zipped(...)) or a dict of axes, got {type(value).__name__}")


# ---------------------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------------------

def use_cpu_devices(n: int | None = None) -> int:
  """Runs XLA:CPU as ``n`` devices (default: :data:`DEVICES_PER_CORE` per core available
  to this process, at most 64).

  XLA:CPU runs a batched matrix product — one small product per run of a vmapped sweep —
  on a single core, and the hundreds of small unfused operations of a training step one
  after another, so on one device a sweep of small models keeps about one core busy. As
  n devices, the sweep's sharding gives each device K/n runs, and the devices' programs
  run side by side. More devices than cores still helped: on 2 cores the 64-rate digits
  sweep ran 1.5× faster on 16 devices than on 2 (benchmarks/lr_sweep.py). Other work is
  unaffected: unsharded programs run on the first device, whose large matrix products
  still use every core.

  Call it before JAX computes anything (right after ``import``), as JAX fixes its devices
  at its first computation; the ``jaxnn sweep`` command does. Setting
  ``XLA_FLAGS=--xla_force_host_platform_device_count=n`` before Python starts does the
  same.

  Returns:
    The number of CPU devices.

  Raises:
    RuntimeError: JAX has already started with a different number of CPU devices.
  """
  if n is None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    n = min(DEVICES_PER_CORE * cores, 64)
  n = _checks.positive_int("n", n)
  try:
    jax.config.update("jax_num_cpu_devices", n)
  except RuntimeError:
    have = len(jax.devices("cpu"))
    if have != n:
      raise RuntimeError(
          f"use_cpu_devices({n}) must run before JAX's first computation; JAX already runs "
          f"the CPU as {have} device(s). Call it right after import, or set "
          f"XLA_FLAGS=--xla_force_host_platform_device_count={n} before starting "
          f"Python") from None
  return n


def _devices(devices: Sequence[Any] | None) -> tuple:
  devices = tuple(jax.devices() if devices is None else devices)
  if not devices or not all(isinstance(d, jax.Device) for d in devices):
    raise TypeError(f"devices must be a non-empty sequence of jax.Device (e.g. "
                    f"jax.devices()), got {devices!r}")
  return devices


def _chunk_size(chunk_size: int | None, k: int, devices: tuple, per_run: int) -> int:
  """Points per compiled call: a multiple of the device count, with the least padding."""
  n_dev = len(devices)
  if chunk_size is not None:
    chunk = _checks.positive_int("chunk_size", chunk_size)
    return -(-chunk // n_dev) * n_dev
  stats = devices[0].memory_stats() or {}
  budget = stats["bytes_limit"] // 4 if "bytes_limit" in stats else CHUNK_BYTES
  per_device = max(1, budget // max(1, 8 * per_run))
  chunks = -(-k // (per_device * n_dev))
  return -(-k // (chunks * n_dev)) * n_dev


# ---------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------

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
  grid: Grid
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


def _traced_error(err: Exception) -> TypeError:
  return TypeError(
      "run(hparams, key) must use hparams as traced JAX scalars (no float(), int(), if or "
      "Python loops on them: each is a batch of values under vmap); tracing failed with: "
      + str(err).strip().splitlines()[0])


_TRACER_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError,
                  jax.errors.TracerArrayConversionError)


def _dead_inputs(closed_jaxpr: Any) -> list[bool]:
  """Which inputs the program's outputs do not depend on (dead-code elimination)."""
  from jax._src.interpreters import partial_eval as pe  # jax has no public DCE

  jaxpr = closed_jaxpr.jaxpr
  _, used = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))
  return [not u for u in used]


@functools.lru_cache(maxsize=16)
def _trace_run(run: Callable, signature: tuple, key_dtype: Any) -> tuple[Any, Any]:
  """``run`` traced once at one point: (its closed jaxpr, its output shapes). The checks
  read the jaxpr, and the compiled sweep vmaps it rather than tracing ``run`` again (the
  jaxpr already holds the derivatives: only batching is left to do)."""
  hparams = {n: jax.ShapeDtypeStruct((), d) for n, d in signature}
  key = jax.ShapeDtypeStruct((), key_dtype)
  try:
    closed, out = jax.make_jaxpr(run, return_shape=True)(hparams, key)
  except _TRACER_ERRORS as e:
    raise _traced_error(e) from None
  except KeyError as e:
    if len(e.args) == 1 and isinstance(e.args[0], str) and e.args[0] not in hparams:
      raise KeyError(f"run(hparams, key) raised KeyError({e.args[0]!r}); the grid's axes "
                     f"are {list(hparams)}") from None
    raise
  if not isinstance(out, train.FitResult):
    raise TypeError(f"run(hparams, key) must return a jaxnn FitResult (from fit), got "
                    f"{type(out).__name__}")
  return closed, out


@functools.lru_cache(maxsize=16)
def _check_run(run: Callable, signature: tuple, key_dtype: Any, seeded: bool) -> Any:
  """Returns the output shapes of ``run`` at one point after checking that it returns a
  FitResult and reads every axis of the grid (cached with the compiled programs)."""
  closed, out = _trace_run(run, signature, key_dtype)
  hparams = dict(signature)
  try:
    dead = _dead_inputs(closed)
  except Exception:  # pragma: no cover - a JAX without this internal: skip the check
    return out
  names = sorted(hparams)  # the order jax flattens a dict in
  unread = [n for n, d in zip(names, dead) if d]
  if seeded and "seed" in unread and not dead[len(names)]:
    unread.remove("seed")  # the seed reaches run through its key
  if unread:
    raise ValueError(
        f"grid axis {unread[0]!r} changes nothing: run(hparams, key) never reads "
        f"hparams[{unread[0]!r}]" + (" or its key" if unread[0] == "seed" else "") +
        f" (the axes it reads: {[n for n in names if n not in unread]}); drop the axis or "
        f"use it in run")
  return out


def _nbytes(tree: Any) -> int:
  return sum(math.prod(s.shape) * jnp.dtype(s.dtype).itemsize for s in jax.tree.leaves(tree))


def _strip(result: train.FitResult) -> train.FitResult:
  return result._replace(params=None, state=None, opt_state=None)


def _shardings(devices: tuple) -> tuple[Any, Any]:
  """(split over the runs axis, replicated) shardings over ``devices``."""
  if len(devices) == 1:
    one = jax.sharding.SingleDeviceSharding(devices[0])
    return one, one
  mesh = Mesh(np.array(devices), ("runs",))
  return NamedSharding(mesh, PartitionSpec("runs")), NamedSharding(mesh, PartitionSpec())


@functools.lru_cache(maxsize=16)
def _compiled(run: Callable, devices: tuple, seeded: bool, keep_params: bool,
              signature: tuple, chunk: int, key_dtype: Any) -> Any:
  """The compiled ``jit(vmap(run))`` for chunks of ``chunk`` points, its batch axis split
  over ``devices``; cached, so a repeated sweep of the same run reuses it."""
  closed, shapes = _trace_run(run, signature, key_dtype)
  program, tree = jax_core.jaxpr_as_fun(closed), jax.tree.structure(shapes)

  def batched(hparams, keys):
    args = jax.tree.leaves((hparams, keys))
    axes = [0] * len(hparams) + [0 if seeded else None] * (len(args) - len(hparams))
    out = jax.tree.unflatten(tree, jax.vmap(program, in_axes=axes)(*args))
    return out if keep_params else _strip(out)

  spread, same = _shardings(devices)
  hparams = {n: jax.ShapeDtypeStruct((chunk,), d, sharding=spread) for n, d in signature}
  keys = jax.ShapeDtypeStruct((chunk,) if seeded else (), key_dtype,
                              sharding=spread if seeded else same)
  try:
    return jax.jit(batched, out_shardings=spread).lower(hparams, keys).compile()
  except _TRACER_ERRORS as e:
    raise _traced_error(e) from None


def _final_loss(loss: np.ndarray, diverged: np.ndarray) -> np.ndarray:
  last = loss[:, -1].astype(float) if loss.ndim == 2 and loss.shape[1] else np.full(
      len(loss), np.nan)
  return np.where(diverged, np.nan, last)


def sweep(run: Callable[[dict, PRNGKey], train.FitResult], grid: Grid | Mapping, *,
          key: PRNGKey, chunk_size: int | None = None, devices: Sequence[Any] | None = None,
          keep_params: bool = True, progress: bool | None = None) -> SweepResult:
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
    devices: the devices to shard over (default ``jax.devices()``); one device: plain vmap.
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
  grid = _as_grid(grid)
  _checks.prng_key("key", key)
  keep_params = bool(keep_params)
  devices = _devices(devices)
  seeded = "seed" in grid.axes
  floating = jnp.result_type(float)
  dtypes = {n: jnp.dtype(jnp.int32 if n == "seed" else floating) for n in grid.names}
  signature = tuple(dtypes.items())
  start = time.perf_counter()
  out = _check_run(run, signature, key.dtype, seeded)

  k = grid.size
  chunk = _chunk_size(chunk_size, k, devices, _nbytes(out))
  padded = -(-k // chunk) * chunk
  index = np.minimum(np.arange(padded), k - 1)  # pad by repeating the last point
  points = {n: np.asarray(v[index], dtypes[n]) for n, v in grid.points().items()}
  keys = jax.vmap(jax.random.fold_in, (None, 0))(key, points["seed"]) if seeded else key
  compiled = _compiled(run, devices, seeded, keep_params, signature, chunk, key.dtype)
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
      hp = jax.device_put({n: v[lo:lo + chunk] for n, v in points.items()}, spread)
      ks = jax.device_put(keys[lo:lo + chunk], spread) if seeded else jax.device_put(keys,
                                                                                     same)
      running, done = compiled(hp, ks), running
    else:
      done = running
    if done is not None:
      parts.append(jax.device_get(done))
      if bar is not None:
        bar.update(min(lo, k) - bar.n)
  seconds = time.perf_counter() - start
  if bar is not None:
    bar.close()
  runs = jax.tree.map(lambda *xs: np.concatenate(xs)[:k], *parts)
  diverged = np.asarray(runs.diverged, bool)
  return SweepResult(grid, runs, _final_loss(np.asarray(runs.history["loss"]), diverged),
                     diverged, np.asarray(runs.diverged_at), compile_seconds, seconds,
                     chunk, len(devices))


# ---------------------------------------------------------------------------------------
# the learning-rate sweep
# ---------------------------------------------------------------------------------------

def lr_sweep(objective: Callable, params: Params | Callable[[PRNGKey], Params],
             data: Any = None, *, lrs: Any, key: PRNGKey,
             optimizer: str | Callable[[Any], Any] = "sgd", hyper: Mapping | None = None,
             seeds: int | None = None, chunk_size: int | None = None,
             devices: Sequence[Any] | None = None, keep_params: bool = False,
             **fit_kwargs: Any) -> SweepResult:
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
      raise TypeError("hyper goes with an optimizer name; a function lr -> optimizer sets "
                      f"its own hyperparameters, got hyper={hyper!r}")
    make = optimizer
  else:
    _checks.resolve("optimizer", optimizer, {n: n for n in optimizers.NAMES})
    make = lambda lr: optimizers.get(optimizer, lr, **hyper)  # noqa: E731
  axes = {"lr": lrs}
  if seeds is not None:
    axes["seed"] = range(_checks.positive_int("seeds", seeds))

  def run(hp, run_key):
    init_key, fit_key = jax.random.split(run_key)
    start = params(init_key) if callable(params) else params
    return train.fit(objective, start, make(hp["lr"]), data, key=fit_key, **fit_kwargs)

  return sweep(run, grid(**axes), key=key, chunk_size=chunk_size, devices=devices,
               keep_params=keep_params)


class LRReport(NamedTuple):
  """The two stability edges of a learning-rate sweep, per group of the other axes.

  A run is *unstable* when its loss rises above its first value within the first
  ``window`` steps (or diverges): the local instability that 2/λmax predicts at the
  start, where a step overshoots the minimum along the top eigendirection. A run
  *failed* when the divergence guard stopped it or its final training loss is not below
  its first: it never converged. A run can be unstable and still converge (the loss
  rises, the network moves to flatter ground, and the loss comes back down), so the
  converging edge usually lies above the stable one (not always: a run can stay below
  its start for the ``window`` steps and blow up later).

  Fields:
    lrs: (n,) the learning rates, ascending.
    groups: one dict per combination of the grid's other axes (seed excluded), e.g.
      ``{"mu": 0.9}``; ``[{}]`` for a sweep over η alone.
    final_loss: (groups, n, seeds) final training losses (NaN where diverged).
    peak_ratio: (groups, n, seeds) the largest loss of the first ``window`` steps over
      the first loss (inf where the run diverged in the window).
    diverged, unstable, failed: (groups, n, seeds) bool.
    rows: one dict per group: ``group``; ``largest_stable_lr``, the largest η at which,
      and below which, no run was unstable (NaN when the smallest η was), and
      ``first_unstable_lr`` (NaN when none was); ``largest_converging_lr``, the largest η
      at and below which no run failed, and ``smallest_failed_lr``; ``best_lr`` and
      ``best_loss``, the lowest median final loss over η where no seed failed; and with
      ``lambda_max``: ``threshold`` (2/λmax; 2(1+μ)/λmax with a momentum axis,
      2(1+μ)/((1+2μ)λmax) for Nesterov), ``ratio`` = largest_stable_lr / threshold and
      ``converging_ratio`` = largest_converging_lr / threshold.
    lambda_max: the curvature the thresholds were computed from, or None.
    window: the steps in which a stable run's loss never rose above its start.
  """
  lrs: np.ndarray
  groups: list
  final_loss: np.ndarray
  peak_ratio: np.ndarray
  diverged: np.ndarray
  unstable: np.ndarray
  failed: np.ndarray
  rows: list
  lambda_max: float | None
  window: int


def lr_report(result: SweepResult, lambda_max: float | None = None, *,
              nesterov: bool = False, window: int | None = None) -> LRReport:
  """Finds the two stability edges of every group of a sweep with an ``lr`` axis (see
  :class:`LRReport`) and, given λmax (the Hessian's largest eigenvalue at the start of
  training, e.g. from :func:`jaxnn.hessian.spectrum`), compares them with the
  gradient-descent threshold :func:`jaxnn.hessian.max_stable_lr`: 2/λmax, or 2(1+μ)/λmax
  for heavy-ball momentum μ.

  The threshold is exact for full-batch descent on a quadratic: below it the loss falls
  at every step, above it the error along the top eigendirection grows by |1 − ηλmax| a
  step. On a network λmax changes as it trains, so 2/λmax at the start speaks of the
  first steps (the stable edge, measured over a short ``window``), not of where training
  ends (the converging edge). With momentum the loss need not fall at every step even
  below 2(1+μ)/λmax (the iterates overshoot and come back), so on a quadratic the
  converging edge, not the stable one, meets that threshold.

  Args:
    result: a :class:`SweepResult` with an ``lr`` axis.
    lambda_max: λmax at the start, or None for no threshold.
    nesterov: the momentum axis is Nesterov's (its threshold differs).
    window: steps in which a stable run's loss never exceeds its first value (default:
      the whole run).
  """
  if not isinstance(result, SweepResult):
    raise TypeError(f"result must be a SweepResult from sweep or lr_sweep, got "
                    f"{type(result).__name__}")
  if not isinstance(result.grid, Grid):
    raise TypeError("lr_report needs a sweep over a product grid (jaxnn.sweep.grid), not "
                    "zipped points")
  names = result.grid.names
  lr_name = next((n for n in _LR_NAMES if n in names), None)
  if lr_name is None:
    raise ValueError(f"lr_report needs a grid with an 'lr' axis, got axes {list(names)}")
  if lambda_max is not None:
    _checks.in_range("lambda_max", lambda_max, 0.0, low_open=True)
  history = np.asarray(result.runs.history["loss"], float)
  steps = history.shape[1]
  window = steps if window is None else _checks.positive_int("window", window)
  if window > steps:
    raise ValueError(f"window must be at most the sweep's {steps} recorded steps, got "
                     f"{window}")
  others = [n for n in names if n not in (lr_name, "seed")]
  order = [names.index(n) for n in (*others, lr_name)] + (
      [names.index("seed")] if "seed" in names else [])
  lr_values = result.grid.axes[lr_name]
  by_lr = np.argsort(lr_values)
  shape = [len(result.grid.axes[n]) for n in others]

  def arrange(values):
    cube = np.transpose(result.reshaped(values), order)
    return cube.reshape((math.prod(shape), len(lr_values), -1))[:, by_lr]

  first = history[:, 0]
  early = history[:, :window]
  blown = ~np.isfinite(early).all(axis=1)  # diverged (NaN after the guard) in the window
  highest = np.where(blown, np.inf, np.max(np.where(blown[:, None], 0.0, early), axis=1))
  with np.errstate(invalid="ignore", divide="ignore"):
    peak = highest / first
    unstable = result.diverged | blown | (highest > first)
    failed = result.diverged | ~(result.final_loss < first)
  losses, peaks, diverged, unstable, failed = (
      arrange(v) for v in (result.final_loss, peak, result.diverged, unstable, failed))
  lrs = lr_values[by_lr]
  groups, rows = [], []
  for g, index in enumerate(np.ndindex(*shape)):
    group = {n: result.grid.axes[n][i].item() for n, i in zip(others, index)}
    groups.append(group)
    rows.append(_edges(lrs, losses[g], unstable[g], failed[g], group, lambda_max,
                       nesterov))
  return LRReport(lrs, groups, losses, peaks, diverged, unstable, failed, rows,
                  None if lambda_max is None else float(lambda_max), window)


def stability_edge(lrs: Any, bad: Any) -> tuple[float, float]:
  """(the largest η at and below which no run is ``bad``, the smallest η at which one is).

  Args:
    lrs: (n,) learning rates, ascending.
    bad: (n,) or (n, seeds) bool, e.g. :attr:`LRReport.unstable` of one group.

  Returns:
    NaN for the first when the smallest η is bad already, for the second when none is.
  """
  lrs = np.asarray(lrs, float)
  bad = np.asarray(bad, bool).reshape(lrs.size, -1).any(axis=1)
  first_bad = int(np.argmax(bad)) if bad.any() else lrs.size
  return (float(lrs[first_bad - 1]) if first_bad else math.nan,
          float(lrs[first_bad]) if bad.any() else math.nan)


def _edges(lrs, losses, unstable, failed, group, lambda_max, nesterov) -> dict:
  """One group's row of the report (``losses``, ``unstable``, ``failed``: (n, seeds))."""
  stable, first_unstable = stability_edge(lrs, unstable)
  converging, first_failed = stability_edge(lrs, failed)
  bad = failed.any(axis=1)
  median = np.array([np.nan if b else np.median(v) for b, v in zip(bad, losses)])
  best = int(np.argmin(np.where(np.isfinite(median), median, np.inf)))
  found = bool(np.isfinite(median[best]))
  row = {"group": group, "largest_stable_lr": stable, "first_unstable_lr": first_unstable,
         "largest_converging_lr": converging, "smallest_failed_lr": first_failed,
         "best_lr": float(lrs[best]) if found else math.nan,
         "best_loss": float(median[best]) if found else math.nan}
  if lambda_max is not None:
    mu = next((group[n] for n in _MU_NAMES if n in group), 0.0)
    row["threshold"] = float(hessian.max_stable_lr(float(lambda_max), mu, nesterov))
    row["ratio"] = row["largest_stable_lr"] / row["threshold"]
    row["converging_ratio"] = row["largest_converging_lr"] / row["threshold"]
  return row
