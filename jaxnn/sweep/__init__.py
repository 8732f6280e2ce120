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
  The default chunk fits 1 GiB per device (or a quarter of an
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

from jaxnn.sweep._devices import DEVICES_PER_CORE, use_cpu_devices
from jaxnn.sweep._grid import Grid, Points, grid, log_range, zipped
from jaxnn.sweep._report import LRReport, lr_report, stability_edge
from jaxnn.sweep._run import SweepResult, lr_sweep, sweep

__all__ = [
    "DEVICES_PER_CORE",
    "Grid",
    "LRReport",
    "Points",
    "SweepResult",
    "grid",
    "log_range",
    "lr_report",
    "lr_sweep",
    "stability_edge",
    "sweep",
    "use_cpu_devices",
    "zipped",
]
