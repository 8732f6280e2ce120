"""Seed 001 and sweeps: the largest stable learning rate of a network beside 2/λmax.

A 64-32-10 ReLU MLP on the digits (standardised), full-batch gradient descent, trained at
64 log-spaced learning rates as one vmapped sweep (:mod:`jaxnn.sweep`). λmax of the
training loss comes from Lanczos (:func:`jaxnn.spectral.top_eigenvalues`, matrix-free)
at the start and at the end of the run at the largest stable η. On a quadratic, descent
is stable exactly for η < 2/λmax; the claim checked is that the network's edge lies
within a factor 2 of 2/λmax at the start.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

import jaxnn
from experiments.report import Claim, Figure as Fig, Outcome
from jaxnn import datasets, losses, optimizers, plotting, spectral, sweep, train

TITLE = "largest stable learning rate of a vmapped sweep against 2/λmax"
SEEDS = "001 + sweeps"
COST = 15  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (64, 32, 10)


def run(out: Path, quick: bool = False) -> Outcome:
  steps, count = (60, 16) if quick else (200, 64)
  data_key, init_key, fit_key = jax.random.split(jax.random.key(0), 3)
  train_set, _ = datasets.train_test_split(datasets.digits(), key=data_key)
  train_set, _, _ = datasets.standardized(train_set, train_set)
  model = jaxnn.mlp(SIZES, activation="relu", init="he")
  params, state = model.init(init_key)
  objective = train.objective(model, losses.softmax_cross_entropy)
  loss_fn = spectral.objective_loss(objective, state, (train_set.x, train_set.y))

  def one_run(hp, key):
    return train.fit(objective, params, optimizers.sgd(hp["lr"]), train_set, key=key,
                     steps=steps, state=state)

  result = sweep.sweep(one_run, sweep.grid(lr=sweep.log_range(1e-2, 10.0, count)),
                       key=fit_key)
  start = spectral.top_eigenvalues(loss_fn, params, 1, key=jax.random.key(1))
  lam_start = float(start.values[0])
  rep = sweep.lr_report(result, lambda_max=lam_start)
  row = rep.rows[0]
  edge = row["largest_stable_lr"]
  k = int(np.flatnonzero(result.grid.axes["lr"] == edge)[0])
  end_params = jax.tree.map(lambda a: a[k], result.runs.params)
  lam_end = float(spectral.top_eigenvalues(loss_fn, end_params, 1,
                                           key=jax.random.key(2)).values[0])
  ratio = edge / (2 / lam_start)
  numbers = {"runs": count, "steps": steps, "compile seconds": result.compile_seconds,
             "sweep seconds": result.seconds, "λmax at the start": lam_start,
             "2/λmax at the start": 2 / lam_start, "largest stable η": edge,
             "first failed η": row["smallest_failed_lr"], "best η": row["best_lr"],
             "largest stable η / (2/λmax at the start)": ratio,
             "λmax at the end of the largest stable run": lam_end,
             "2/λmax at the end of that run": 2 / lam_end}
  holds = 0.5 <= ratio <= 2.0
  loss = np.asarray(result.runs.history["loss"][k])
  peak = int(np.nanargmax(loss))
  rose = (f"its loss first rose above the start (to {loss[peak]:.3g} at step {peak}, from "
          f"{loss[0]:.3g}) and then fell, " if peak > 0 else
          "its loss never rose above the start, ")
  numbers["peak loss of the largest stable run"] = float(loss[peak])
  why = ("" if holds else
         f" Not confirmed: the runs stay stable up to {ratio:.2g}× 2/λmax. λmax is not "
         f"fixed: in the run at η = {edge:.3g} {rose}and λmax ends at {lam_end:.3g} (from "
         f"{lam_start:.3g}): the large steps carry the network to flatter ground where "
         "they are stable" + (" (a catapult)" if peak > 0 else "") + ", so the "
         "quadratic threshold at the start is a lower bound on the edge, not the edge.")
  claims = {"threshold_within_factor_2": Claim(
      "the largest stable η lies within a factor 2 of 2/λmax at the start", bool(holds),
      f"largest stable η {edge:.3g}, first failed {row['smallest_failed_lr']:.3g}, "
      f"2/λmax at the start {2 / lam_start:.3g} (ratio {ratio:.2f}); 2/λmax at the end "
      f"of that run {2 / lam_end:.3g}")}
  fig = plotting.lr_sweep(rep.lrs, rep.final_loss, rep.failed,
                          thresholds=[row["threshold"]], threshold_label="2/λmax at the start",
                          title=f"digits {'-'.join(map(str, SIZES))} ReLU, full-batch "
                                f"gradient descent, {steps} steps, {count} rates")
  ax = fig.axes[0]
  ax.axvline(2 / lam_end, color="tab:gray", ls=":", lw=1.2,
             label=f"2/λmax at the end of the η = {edge:.3g} run = {2 / lam_end:.3g}")
  ax.legend(fontsize=8)
  plotting.save(fig, out / "final_loss_vs_lr.png")
  return Outcome(
      TITLE, SEEDS,
      f"{count} full-batch runs in one compiled program ({result.compile_seconds:.1f} s "
      f"to compile, {result.seconds:.1f} s to run on {result.devices} device(s)); a run "
      f"fails when it diverges or ends no lower than it started." + why,
      numbers, claims,
      [Fig("final_loss_vs_lr.png", "Final training loss against η (log axes); × marks "
           "failed runs; the dashed line is 2/λmax at the start, the dotted one 2/λmax at "
           "the end of the largest stable run.")])
