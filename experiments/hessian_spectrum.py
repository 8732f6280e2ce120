"""Seeds 001, 003: the Hessian spectrum of a network, exact and estimated.

A tanh MLP 64-12-10 (P = 910 parameters) on 500 standardised digits, trained full-batch
with momentum. At a few points of training the exact Hessian of the training loss is
built and diagonalised in float64 (:func:`jaxnn.hessian.spectrum`), and its density is
estimated matrix-free by stochastic Lanczos quadrature (:func:`jaxnn.spectral.
spectral_density`, which never forms the matrix). The exact density, broadened by the same
Gaussian as the estimate, is compared with it in the L1 distance ∫|φ_SLQ − φ_exact| dt
(0: identical, 2: disjoint). Early in training the point is far from a minimum and the
spectrum has negative eigenvalues (directions of descent; erratum, seed 003: a critical
point with eigenvalues of both signs is a saddle, neither minimum nor maximum); at the end
they have nearly gone, leaving a bulk near 0 and a few large outliers.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import Claim, Figure as Fig, Outcome, unconfirmed
from jaxnn import datasets, hessian, losses, normalization, optimizers, plotting, spectral
from jaxnn import train

TITLE = "exact Hessian spectrum against the stochastic Lanczos density, early and late"
SEEDS = "001, 003"
COST = 17  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (64, 12, 10)
CLOSE = 0.25  # the L1 distance below which the densities count as matching


def _broadened(eigenvalues: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
  """(1/P) Σᵢ N(t; λᵢ, σ²) on ``grid``: the exact density with the estimate's broadening."""
  z = (grid[:, None] - eigenvalues[None, :]) / sigma
  return np.exp(-0.5 * z**2).sum(axis=1) / (len(eigenvalues) * sigma * math.sqrt(2 * math.pi))


def _mean_gap(spec, density) -> float:
  """|SLQ mean eigenvalue − exact mean| in units of the estimate's standard error."""
  return abs(density.mean - float(spec.eigenvalues.mean())) / density.mean_stderr


def run(out: Path, quick: bool = False) -> Outcome:
  with jax.enable_x64(True):
    return _run(out, quick)


def _run(out: Path, quick: bool) -> Outcome:
  steps = 300 if quick else 3000
  digits = datasets.digits()
  x = jnp.asarray(digits.x[:500], jnp.float64)
  x = normalization.standardize(x, normalization.fit_standardizer(x))
  data = (x, digits.y[:500])
  model = jaxnn.mlp(SIZES, dtype=jnp.float64)
  params, state = model.init(jax.random.key(1))
  objective = train.objective(model, losses.softmax_cross_entropy)
  loss_fn = spectral.objective_loss(objective, state, data)
  keep = train.Hook(lambda p: (), lambda s, p, st, t: (s, p), 20)  # params every 20 steps
  final = train.fit(objective, params, optimizers.momentum(0.05, 0.9), data,
                    key=jax.random.key(2), steps=steps, state=state, hooks={"params": keep})
  kept = final.history["hooks"]["params"]  # record k holds the params before step 20k
  snapshots = {"start": params, "step 20": jax.tree.map(lambda a: a[1], kept.record),
               f"step {steps} (end)": final.params}
  results, numbers = {}, {"parameters P": int(sum(a.size for a in jax.tree.leaves(params))),
                          "examples": 500, "training steps": steps,
                          "final training loss": float(final.history["loss"][-1])}
  order, probes = (40, 8) if quick else (80, 20)
  for k, (name, p) in enumerate(snapshots.items()):
    spec = hessian.spectrum(loss_fn, p, vectors=False)
    lam = spec.eigenvalues
    density = spectral.spectral_density(loss_fn, p, key=jax.random.key(10 + k), order=order,
                                        probes=probes)
    exact = _broadened(lam, density.grid, density.sigma)
    step = density.grid[1] - density.grid[0]
    distance = float(np.sum(np.abs(density.density - exact)) * step)
    results[name] = (spec, density, exact, distance)
    numbers[f"{name}: λmax, λmin"] = [spec.lambda_max, spec.lambda_min]
    numbers[f"{name}: negative eigenvalues (of P), most negative / λmax"] = [
        spec.n_negative, float(spec.lambda_min / spec.lambda_max)]
    numbers[f"{name}: L1 distance SLQ − exact density; mean λ exact, SLQ ± s.e."] = [
        distance, float(lam.mean()), density.mean, density.mean_stderr]
  names = list(snapshots)
  end = results[names[-1]][0]
  early_spec = results[names[1]][0]
  claims = {
      "density_matches_exact": Claim(
          f"the stochastic Lanczos density matches the exact one (L1 distance under "
          f"{CLOSE}) at every point of training",
          all(r[3] < CLOSE for r in results.values()),
          ", ".join(f"{n}: {r[3]:.3f}" for n, r in results.items())
          + f" ({order} Lanczos steps, {probes} probes)"),
      "negative_eigenvalues_fade": Claim(
          "there are fewer negative eigenvalues at the end of training than early on, and "
          "the most negative one is smaller relative to λmax",
          bool(end.n_negative < early_spec.n_negative
               and abs(end.lambda_min / end.lambda_max)
               < abs(early_spec.lambda_min / early_spec.lambda_max)),
          f"{names[1]}: {early_spec.n_negative} negative, λmin/λmax = "
          f"{early_spec.lambda_min / early_spec.lambda_max:.3g}; end: {end.n_negative}, "
          f"{end.lambda_min / end.lambda_max:.3g}"),
  }
  plotting.save(_figure(results, order, probes), out / "density.png")
  plotting.save(plotting.eigenvalue_histogram(
      end.eigenvalues, zero_tol=end.zero_tol,
      marks={"λmax": end.lambda_max, "λmin": end.lambda_min},
      title=f"exact Hessian eigenvalues at the end of training (P = {len(end.eigenvalues)})"),
      out / "eigenvalues_end.png")
  return Outcome(
      TITLE, SEEDS,
      f"Full-batch momentum (η = 0.05, μ = 0.9) for {steps} steps, float64; the final "
      f"point is near, not at, a minimum (‖∇E‖ small, but some curvature still negative). "
      f"The estimate costs {order} Hessian-vector products per probe instead of P = "
      f"{len(end.eigenvalues)} for the exact matrix; its L1 distance from the exact "
      f"density is at most {max(r[3] for r in results.values()):.3f} over the three "
      f"points, and its mean eigenvalue (tr H / P) lies within "
      f"{max(_mean_gap(spec, density) for spec, density, _, _ in results.values()):.2g}"
      " standard errors of the exact one." + unconfirmed(claims),
      numbers, claims,
      [Fig("density.png", "The spectral density at the start, early in training and at "
           "the end: the exact eigenvalues broadened by the estimate's Gaussian (black) "
           "against stochastic Lanczos quadrature (colour), on a log density axis so the "
           "outliers show."),
       Fig("eigenvalues_end.png", "Histogram of the exact eigenvalues at the end of "
           "training on a symmetric-log axis: a bulk at 0, a tail of positive outliers "
           "and the few remaining negative ones.")])


def _figure(results, order, probes) -> Figure:
  fig = Figure(figsize=(14, 4), layout="constrained")
  axes = fig.subplots(1, len(results))
  for ax, (name, (spec, density, exact, distance)), color in zip(
      axes, results.items(), ("tab:blue", "tab:orange", "tab:green")):
    floor = 1e-5 * exact.max()
    ax.plot(density.grid, np.maximum(exact, floor), color="k", lw=1.4, label="exact")
    ax.plot(density.grid, np.maximum(density.density, floor), color=color, lw=1.1, ls="--",
            label=f"SLQ ({order} steps, {probes} probes)")
    ax.set(yscale="log", xlabel="eigenvalue λ", ylabel="density (log scale)")
    ax.set_title(f"{name}: L1 distance {distance:.3f}, {spec.n_negative} λ < 0", fontsize=10)
    ax.legend(fontsize=7)
  fig.suptitle(f"Hessian spectral density of a tanh MLP {'-'.join(map(str, SIZES))} "
               "on 500 digits (seeds 001, 003)")
  return fig
