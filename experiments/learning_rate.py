"""Seed 000: the learning rate sets the step; too small is slow, too large overshoots.

A tanh MLP 2-16-16-2 on 200 two-moons points, full-batch gradient descent. Two views:

* the seed's own: the *summed* cross-entropy (the "total loss") at η = 0.001 and 0.01;
  the summed loss has n times the gradient of the mean, so these are mean-loss steps of
  0.2 and 2;
* against the curvature: the mean loss at η = 0.1, 0.9 and 1.5 × 2/λmax, with λmax the
  exact Hessian's largest eigenvalue at the start (:func:`jaxnn.hessian.spectrum`), and
  at 20 × 2/λmax, far above it.

A *bump* is a step at which the loss goes up. A run *fails* when it ends no lower than
it started (or its loss leaves the finite numbers): it never converges.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import Claim, Figure as Fig, Outcome, unconfirmed
from jaxnn import datasets, hessian, losses, optimizers, plotting, sweep, train

TITLE = "small steps are smooth and slow, larger ones bump, too large never converge"
SEEDS = "000"
COST = 12  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (2, 16, 16, 2)
MULTIPLES = (0.1, 0.9, 1.5, 20.0)  # of 2/λmax at the start
SEED_LRS = (0.001, 0.01)  # on the summed loss, as in the seed


def _bumps(loss: np.ndarray) -> int:
  """Steps at which the loss rose (by more than float rounding)."""
  return int(np.sum(np.diff(loss) > 1e-6 * np.abs(loss[:-1])))


def _failed(loss: np.ndarray, diverged: bool) -> bool:
  return bool(diverged) or not np.isfinite(loss[-1]) or loss[-1] >= loss[0]


def run(out: Path, quick: bool = False) -> Outcome:
  steps = 200 if quick else 500
  moons = datasets.moons(200, key=jax.random.key(0))
  data = (moons.x, moons.y)
  n = data[0].shape[0]
  forward = functools.partial(jaxnn.forward, activation="tanh")
  mean_objective = train.objective(forward, losses.softmax_cross_entropy)
  summed_objective = train.objective(forward,
                                     lambda a, y: n * losses.softmax_cross_entropy(a, y))
  params = jaxnn.init_mlp(jax.random.key(1), SIZES)

  def mean_loss(p):
    return mean_objective(p, {}, data, None)[0]

  lam_start = float(hessian.spectrum(mean_loss, params, vectors=False).lambda_max)
  threshold = 2 / lam_start

  def sweep_lrs(objective, lrs):
    """Full-batch descent at every η of ``lrs`` as one vmapped sweep (one compile)."""
    return sweep.sweep(lambda hp, k: train.fit(objective, params, optimizers.sgd(hp["lr"]),
                                               data, key=k, steps=steps),
                       sweep.grid(lr=list(lrs)), key=jax.random.key(2))

  runs = sweep_lrs(mean_objective, [m * threshold for m in MULTIPLES])
  seed_runs = sweep_lrs(summed_objective, SEED_LRS)
  curves = dict(zip(MULTIPLES, np.asarray(runs.runs.history["loss"])))
  seed_curves = dict(zip(SEED_LRS, np.asarray(seed_runs.runs.history["loss"])))
  bumps = {m: _bumps(c) for m, c in curves.items()}
  seed_bumps = {lr: _bumps(c) for lr, c in seed_curves.items()}
  failed = {m: _failed(c, d) for m, c, d in zip(MULTIPLES, curves.values(), runs.diverged)}
  edge = MULTIPLES[2]
  edge_params = jax.tree.map(lambda a: a[MULTIPLES.index(edge)], runs.runs.params)
  lam_end = float(hessian.spectrum(mean_loss, edge_params, vectors=False).lambda_max)
  peak = int(np.nanargmax(curves[edge]))

  numbers = {"steps": steps, "λmax at the start": lam_start, "2/λmax": threshold}
  for m, c in curves.items():
    numbers[f"η = {m:g} × 2/λmax = {m * threshold:.3g}: bumps, final loss"] = [
        bumps[m], float(c[-1])]
  for lr, c in seed_curves.items():
    numbers[f"seed η = {lr:g} (summed loss): bumps, final summed loss"] = [
        seed_bumps[lr], float(c[-1])]
  numbers[f"λmax at the end of the {edge:g} × 2/λmax run"] = lam_end
  ordered = [bumps[m] for m in MULTIPLES[:3]]
  claims = {
      "larger_lr_spikes": Claim(
          "a larger η makes the loss bump up more often: at the seed's 0.01 against "
          "0.001, and along 0.1, 0.9, 1.5 × 2/λmax",
          bool(seed_bumps[0.01] > seed_bumps[0.001] and ordered[0] < ordered[1] < ordered[2]),
          f"bumps in {steps} steps: seed η 0.001 → {seed_bumps[0.001]}, 0.01 → "
          f"{seed_bumps[0.01]}; {' → '.join(map(str, ordered))} at 0.1, 0.9, 1.5 × 2/λmax"),
      "largest_diverges": Claim(
          f"the largest η ({MULTIPLES[-1]:g} × 2/λmax) never converges: the loss ends no "
          "lower than it started", failed[MULTIPLES[-1]],
          f"loss {curves[MULTIPLES[-1]][0]:.3g} at the start, {curves[MULTIPLES[-1]][-1]:.3g} "
          f"at the end"),
      "diverges_above_threshold": Claim(
          f"already at {edge:g} × 2/λmax (above the quadratic threshold) training fails",
          failed[edge],
          f"loss {curves[edge][0]:.3g} → {curves[edge][-1]:.3g}, peak {curves[edge][peak]:.3g} "
          f"at step {peak}; λmax {lam_start:.3g} at the start, {lam_end:.3g} at the end"),
  }
  why = {"diverges_above_threshold": (
      f"2/λmax is the threshold of a quadratic with fixed curvature. Here the first large "
      f"steps throw the network to flatter ground: λmax fell from {lam_start:.3g} to "
      f"{lam_end:.3g}, below 2/η = {2 / (edge * threshold):.3g}, where the same η is "
      "stable (a catapult), so the run converged after its bumps. The network's edge lies "
      "further out, between 1.5 and 20 × 2/λmax here.")}
  plotting.save(_figure(curves, seed_curves, threshold, steps), out / "loss_curves.png")
  return Outcome(
      TITLE, SEEDS,
      f"Full-batch gradient descent for {steps} steps from one initialisation; λmax = "
      f"{lam_start:.3g} at the start, so 2/λmax = {threshold:.3g}. The seed's η = 0.001 "
      "learns smoothly but slowly, 0.01 bumps and gets lower; near and past the "
      "threshold the bumps multiply, and far past it the loss never comes down."
      + unconfirmed(claims, why),
      numbers, claims,
      [Fig("loss_curves.png", "Left: the mean cross-entropy against step at η = 0.1, 0.9, "
           "1.5 and 20 × 2/λmax (log scale). Right: the seed's view, the summed loss at "
           "η = 0.001 and 0.01. A bump is a step where a curve goes up.")])


def _figure(curves, seed_curves, threshold, steps) -> Figure:
  fig = Figure(figsize=(11, 3.8), layout="constrained")
  left, right = fig.subplots(1, 2)
  for m, c in curves.items():
    left.plot(c, lw=1.0, label=f"η = {m:g} × 2/λmax = {m * threshold:.3g}")
  left.set(yscale="log", xlabel="step", ylabel="mean cross-entropy (log scale)",
           title="against the sharpness at the start")
  left.legend(fontsize=8)
  for lr, c in seed_curves.items():
    right.plot(c, lw=1.0, label=f"η = {lr:g}")
  right.set(yscale="log", xlabel="step", ylabel="summed cross-entropy (log scale)",
            title="the seed's η on the summed loss")
  right.legend(fontsize=8)
  fig.suptitle(f"tanh MLP {'-'.join(map(str, SIZES))} on two moons, full-batch gradient "
               f"descent, {steps} steps (seed 000)")
  return fig
