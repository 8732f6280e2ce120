"""Seed 001: near a minimum, gradient descent shrinks the distance along each Hessian
eigendirection uᵢ by the factor 1 − ηλᵢ per step.

Quadratic bowls with condition numbers κ = 10, 100, 1000 (eigenvalues log-spaced in
[1, κ], a random rotation) and a tanh MLP taken to a strict minimum: the exact Hessian's
spectrum, then descent from a small perturbation of the minimum at η = 1/λmax, the best
fixed step η* = 2/(λmin + λmax), 1.9/λmax and 2.05/λmax, each direction's fitted rate
against 1 − ηλ (:func:`jaxnn.hessian.check_rates`, float64). Then the steps gradient
descent at η* needs to reduce E by 10¹⁰, against κ: the slowest direction's rate
(κ − 1)/(κ + 1) ≈ 1 − 2/κ predicts ln(10⁻¹⁰)/(2 ln((κ − 1)/(κ + 1))) ≈ 5.8 κ steps.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import Claim, Figure as Fig, Outcome
from jaxnn import datasets, hessian, losses, optimizers, plotting, train

TITLE = "convergence rates 1 − ηλ along Hessian eigendirections, and steps against κ"
SEEDS = "001"
COST = 18  # seconds of --quick on 2 cores: parallel runs start the costliest first
KAPPAS = (10.0, 100.0, 1000.0)
REDUCTION = 1e-10  # E_t / E_0 the step count is measured at


def _rates(loss_fn, w_star, spec, steps) -> dict:
  lam_max = float(spec.lambda_max)
  lrs = {"1/λmax": 1 / lam_max, "η*": float(spec.optimal_lr), "1.9/λmax": 1.9 / lam_max,
         "2.05/λmax": 2.05 / lam_max}
  return {name: hessian.check_rates(loss_fn, w_star, lr, steps, spec=spec)
          for name, lr in lrs.items()}


def _bowl_loss(w, state, batch, key):
  """E(w) = ½(w − w*)ᵀA(w − w*) with (A, w*) the one row of ``batch``: every bowl's
  descent is the same compiled program."""
  a, w_star = batch
  e = w - w_star[0]
  return 0.5 * e @ (a[0] @ e), state


def _steps_to_reduce(bowl, lr: float, limit: int) -> int:
  w0 = bowl.minimizer + 1.0
  result = train.fit(_bowl_loss, w0, optimizers.sgd(lr), (bowl.matrix[None], bowl.minimizer[None]),
                     key=jax.random.key(0), steps=limit)
  loss = np.asarray(result.history["loss"])
  below = np.flatnonzero(loss <= REDUCTION * loss[0])
  return int(below[0]) if below.size else -1


def _predicted_steps(kappa: float) -> float:
  """ln(REDUCTION) / (2 ln((κ − 1)/(κ + 1))): the slowest direction's rate at η*."""
  return math.log(REDUCTION) / (2 * math.log((kappa - 1) / (kappa + 1)))


def run(out: Path, quick: bool = False) -> Outcome:
  with jax.enable_x64(True):
    return _run(out, quick)


def _run(out: Path, quick: bool) -> Outcome:
  numbers, gaps, threshold_ok, steps_needed, predicted_steps = {}, [], [], [], []
  limit = int(3 * _predicted_steps(max(KAPPAS))) + 50  # one run length for every bowl
  for i, kappa in enumerate(KAPPAS):
    bowl = datasets.quadratic_bowl(np.geomspace(1.0, kappa, 10), key=jax.random.key(i))
    spec = hessian.spectrum(bowl.loss, bowl.minimizer)
    checks = _rates(bowl.loss, bowl.minimizer, spec, 40)
    gap = max(c.max_gap for c in checks.values())
    gaps.append(gap)
    stable = not checks["1.9/λmax"].diverging.any()
    top_only = bool(checks["2.05/λmax"].diverging[-1]) and int(
        checks["2.05/λmax"].diverging.sum()) == 1
    threshold_ok.append(stable and top_only)
    predicted = _predicted_steps(kappa)
    needed = _steps_to_reduce(bowl, float(spec.optimal_lr), limit)
    steps_needed.append(needed)
    predicted_steps.append(predicted)
    numbers[f"κ = {kappa:g}: largest |predicted − observed| rate"] = gap
    numbers[f"κ = {kappa:g}: steps to reduce E by 1e10 at η*"] = needed
    numbers[f"κ = {kappa:g}: predicted steps"] = round(predicted, 1)
  hidden = (4,) if quick else (8, 8)
  mlp_gap, mlp_check, mlp_spec, mlp_report = _mlp(hidden, quick)
  numbers["MLP minimum"] = mlp_report
  numbers["MLP: largest rate gap at η*"] = mlp_gap
  claims = {
      "rates_match": Claim(
          "each eigendirection's observed rate equals 1 − ηλ (bowls to 1e-6, the MLP at "
          "its minimum to 1e-3)", bool(max(gaps) < 1e-6 and mlp_gap < 1e-3),
          f"largest gaps: bowls {max(gaps):.2g}, MLP {mlp_gap:.2g}"),
      "threshold_2_over_lambda_max": Claim(
          "no direction diverges at 1.9/λmax; at 2.05/λmax the top one (only) does",
          bool(all(threshold_ok)), f"held for {sum(threshold_ok)} of {len(KAPPAS)} bowls"),
      "steps_grow_with_kappa": Claim(
          "the steps gradient descent needs at η* grow with κ (about 5.8 κ for a 10¹⁰ "
          "reduction)", bool(all(s > 0 for s in steps_needed)
                             and all(a < b for a, b in zip(steps_needed, steps_needed[1:]))),
          f"steps {steps_needed} for κ = {list(KAPPAS)}, predicted "
          f"{[round(p) for p in predicted_steps]}"),
  }
  plotting.save(plotting.rate_check(
      mlp_check.eigenvalues, mlp_check.predicted, mlp_check.observed,
      title=f"tanh MLP 2-{'-'.join(map(str, hidden))}-2 at its minimum, η* = "
            f"{mlp_check.lr:.4g}: observed rates against 1 − ηλ"), out / "mlp_rates.png")
  plotting.save(_steps_figure(steps_needed, predicted_steps), out / "steps_vs_kappa.png")
  return Outcome(
      TITLE, SEEDS,
      "Quadratic bowls (where the claim is exact) and an MLP at a strict minimum (where "
      "it holds to the accuracy of the quadratic model), in float64. The stability "
      "threshold is 2/λmax; the best fixed step η* gives every direction a rate of at "
      "most (κ − 1)/(κ + 1), so ill-conditioned problems need about κ times more steps.",
      numbers, claims,
      [Fig("mlp_rates.png", "Left: the predicted rate 1 − ηλ (line) and the fitted "
           "observed rate (dots) for every Hessian eigendirection of the MLP at its "
           "minimum, at η*; right: their gap, at rounding level."),
       Fig("steps_vs_kappa.png", "Steps for gradient descent at η* to reduce the loss "
           "of a bowl by 10¹⁰, against the condition number, beside the prediction "
           "ln(10⁻¹⁰)/(2 ln((κ − 1)/(κ + 1))).")])


def _mlp(hidden, quick):
  moons = datasets.moons(100 if quick else 200, key=jax.random.key(5))
  x, y = jnp.asarray(moons.x, jnp.float64), moons.y
  params = jaxnn.init_mlp(jax.random.key(6), (2, *hidden, 2), dtype=jnp.float64)

  def loss_fn(p):
    data = losses.softmax_cross_entropy(jaxnn.forward(p, x, activation="tanh"), y)
    return data + 0.5e-2 * sum(jnp.sum(a**2) for a in jax.tree.leaves(p))

  found = hessian.find_minimum(loss_fn, params, steps=500 if quick else 2000)
  check = hessian.check_rates(loss_fn, found.params, float(found.spectrum.optimal_lr), 40,
                              spec=found.spectrum)
  return check.max_gap, check, found.spectrum, found.report


def _steps_figure(needed, predicted) -> Figure:
  fig = Figure(figsize=(6.4, 3.8), layout="constrained")
  ax = fig.subplots()
  ax.plot(KAPPAS, needed, "o-", label="measured (gradient descent at η*)")
  ax.plot(KAPPAS, predicted, "--", label="predicted ln(1e-10) / (2 ln((κ−1)/(κ+1)))")
  ax.set(xscale="log", yscale="log", xlabel="condition number κ (log scale)",
         ylabel="steps to reduce E by 10¹⁰ (log scale)",
         title="Steps against condition number (seed 001)")
  ax.legend(fontsize=8)
  return fig
