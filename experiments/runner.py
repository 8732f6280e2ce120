"""The experiments by name, and running them: one at a time in this process, or several at
once, each in a spawned process of its own.

The experiments are independent, so several can run at once: on a CPU host XLA compiles
each small program on one core, and :func:`default_jobs` (one per core, up to
:data:`MAX_JOBS`) keeps every core busy. On an accelerator the default is one job: the
processes would compete for the device's memory.
An experiment's results do not depend on which process ran it or what ran there before.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

from experiments import report
from jaxnn import xla

NAMES = (
    "learning_rate",
    "weight_decay",
    "init_distribution",
    "slow_learning",
    "softmax_likelihood",
    "deep_activations",
    "symmetry",
    "convergence_rates",
    "momentum",
    "schedules",
    "adaptive",
    "normalization",
    "regularization",
    "gradient_clipping",
    "lr_sweep",
    "edge_of_stability",
    "hessian_spectrum",
    "adam_edge",
    "gradient_subspace",
    "curvature_matrices",
    "landscapes",
    "cnn_edge",
    "cnn_spectrum",
)
EXPERIMENTS = {name: importlib.import_module(f"experiments.{name}") for name in NAMES}

#: The most experiments the default ``--jobs`` runs at once (each process holds its own
#: JAX, compiled programs and data: about 1 to 2 GB).
MAX_JOBS = 4


def default_jobs() -> int:
    """One job per usable core on a CPU-only host (at most :data:`MAX_JOBS`), else 1."""
    import jax

    if jax.default_backend() != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, MAX_JOBS))


def run_one(name: str, folder: Path, quick: bool) -> tuple[report.Outcome, float, float]:
    """Runs experiment ``name`` into ``folder``, writes its ``results.json`` and returns its
    outcome, its run time in seconds and the part of it spent compiling
    (:func:`jaxnn.xla.compile_seconds`)."""
    compiling, start = xla.compile_seconds(), time.perf_counter()
    outcome = EXPERIMENTS[name].run(folder, quick=quick)
    seconds = time.perf_counter() - start
    compiled = xla.compile_seconds() - compiling
    report.write(folder, outcome)
    return outcome, seconds, compiled


def completed(
    names: list[str], out: Path, quick: bool, jobs: int
) -> Iterator[tuple[str, report.Outcome, float, float]]:
    """Yields ``(name, outcome, seconds, compile seconds)`` as the experiments finish,
    ``jobs`` at a time (in this process when ``jobs`` is 1)."""
    if jobs == 1:
        for name in names:
            yield (name, *run_one(name, out / name, quick))
        return
    # the costliest first, so that no process is left with a long one at the end
    order = sorted(names, key=lambda n: -getattr(EXPERIMENTS[n], "COST", 1))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {pool.submit(run_one, name, out / name, quick): name for name in order}
        try:
            for future in concurrent.futures.as_completed(futures):
                yield (futures[future], *future.result())
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
