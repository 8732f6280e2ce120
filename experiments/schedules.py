"""Seeds 001, 002: learning-rate schedules.

Every schedule of :mod:`jaxnn.schedules` drawn against the step, starting from η₀ and
(for the decaying ones) ending near η₀/100, then used to train a tanh MLP 64-64-10 on
the digits with minibatch SGD (batch 16) and weight decay κ = 10⁻³. With a constant η
the minibatch noise keeps the weights rattling around the minimum at a height that grows
with η; lowering η late lets them settle lower, while a small constant η gets there
slowly. (Weight decay makes the minimum one where the per-example gradients do not all
vanish; without it the digits are fitted exactly and the noise dies out by itself.)
Each schedule runs at η₀ = 0.25, 0.5, 1 and 2 and is compared at its best η₀. All 28
runs are one vmapped sweep over a schedule index (picking the schedule with
``lax.switch`` inside the compiled step) and η₀.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import Claim, Figure as Fig, Outcome, unconfirmed
from jaxnn import datasets, losses, optimizers, plotting, schedules, sweep, train

TITLE = "learning-rate schedules against step, and what they do to training"
SEEDS = "001, 002"
COST = 13  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (64, 64, 10)
ETA0S = (0.25, 0.5, 1.0, 2.0)
DECAY = 1e-3  # κ of w ← (1 − ηκ)w − η∂L₀/∂w
BATCH = 16


def _schedules(total: int) -> dict:
  """The schedules for η₀ = 1 (a run scales them by its η₀)."""
  third = max(total // 3, 1)
  return {
      "constant": schedules.constant(1.0),
      "linear → η₀/100": schedules.linear(1.0, 0.01, total),
      "power law (1 + τ/s)⁻¹": schedules.power_law(1.0, total / 100, -1.0),
      "exponential → η₀/100": schedules.exponential(1.0, 0.01, total),
      "step ×0.1 every T/3": schedules.step(1.0, 0.1, third),
      "cosine, restarts every T/3": schedules.cosine_restarts(1.0, third, eta_min=0.01),
      "cyclic, 4 cycles": schedules.cyclic(0.01, 1.0, max(total // 8, 1)),
  }


def run(out: Path, quick: bool = False) -> Outcome:
  epochs = 8 if quick else 40
  train_set, test_set = datasets.train_test_split(datasets.digits(), key=jax.random.key(0))
  train_set, test_set, _ = datasets.standardized(train_set, test_set)
  total = epochs * (train_set.x.shape[0] // BATCH)
  table = _schedules(total)
  names, fns = list(table), list(table.values())
  model = jaxnn.mlp(SIZES, activation="tanh")
  params, state = model.init(jax.random.key(1))
  objective = train.objective(model, losses.softmax_cross_entropy)

  def one_run(hp, key):
    index = jnp.asarray(hp["schedule"]).astype(jnp.int32)
    lr = lambda t: hp["eta0"] * jax.lax.switch(index, fns, t)
    return train.fit(objective, params, optimizers.sgd(lr, weight_decay=DECAY), train_set, key=key,
                     epochs=epochs, batch_size=BATCH, state=state)

  grid = sweep.grid(schedule=list(range(len(fns))), eta0=list(ETA0S))
  result = sweep.sweep(one_run, grid, key=jax.random.key(2))
  finals = []
  for k in range(grid.size):
    p = jax.tree.map(lambda a: a[k], result.runs.params)
    tr, te = (objective.evaluate(p, state, tuple(d)) for d in (train_set, test_set))
    penalty = 0.5 * DECAY * sum(float(jnp.sum(layer["w"] ** 2)) for layer in p)
    finals.append((float(tr["loss"]) + penalty, float(te["loss"]), float(te["accuracy"])))
  finals = np.array(finals).reshape(len(fns), len(ETA0S), 3)
  own = np.argmin(finals[:, :, 0], axis=1)  # each schedule's best η₀
  best_rows = finals[np.arange(len(fns)), own]
  best = int(np.argmin(best_rows[:, 0]))
  numbers = {"η₀ tried": list(ETA0S), "weight decay κ": DECAY, "batch": BATCH,
             "epochs": epochs, "steps T": total,
             "sweep seconds (compile + run)": result.compile_seconds + result.seconds}
  for k, name in enumerate(names):
    numbers[f"{name}: best η₀; training objective, held-out loss, held-out accuracy"] = [
        ETA0S[own[k]], *best_rows[k].tolist()]
    numbers[f"{name}: training objective at η₀ = {', '.join(map(str, ETA0S))}"] = (
        finals[k, :, 0].tolist())
  claims = {"best_beats_constant": Claim(
      "the best schedule (each at its best η₀) ends at a lower training objective "
      "(loss + weight-decay penalty) than the best constant η",
      bool(best != 0 and best_rows[best, 0] < best_rows[0, 0]),
      f"best: {names[best]} (η₀ = {ETA0S[own[best]]}) at {best_rows[best, 0]:.4g} against "
      f"{best_rows[0, 0]:.4g} for constant η = {ETA0S[own[0]]}")}
  steps = np.arange(total)
  rates = np.array([[float(fn(t)) for t in steps] for fn in fns])
  loss = np.asarray(result.runs.history["loss"]).reshape(len(fns), len(ETA0S), -1)
  loss = loss[np.arange(len(fns)), own]
  plotting.save(_figure(names, steps, rates, loss, total // epochs, [ETA0S[i] for i in own]),
                out / "schedules.png")
  return Outcome(
      TITLE, SEEDS,
      f"{epochs} epochs ({total} steps) of minibatch SGD from one initialisation and one "
      f"minibatch order. The best schedule's training objective is "
      f"{100 * (1 - best_rows[best, 0] / best_rows[0, 0]):.1f} % below the best constant "
      f"η's: at this budget annealing gains little over a well-chosen constant step, "
      f"while at the same η₀ the decaying schedules stay stable where the constant η "
      f"does not (η₀ = {ETA0S[-1]:g}: {finals[0, -1, 0]:.3g} against at most "
      f"{finals[1:, -1, 0].max():.3g}). Held-out loss: {best_rows[best, 1]:.3g} against "
      f"{best_rows[0, 1]:.3g}; best held-out accuracy: "
      f"{names[int(np.argmax(best_rows[:, 2]))]} ({best_rows[:, 2].max():.3f}; constant "
      f"{best_rows[0, 2]:.3f})."
      + unconfirmed(claims, {"best_beats_constant": (
          "At this budget a small constant η is still making progress where a schedule "
          "already shrank its steps, and the noise floor of the best constant η is below "
          "what annealing gains.")}),
      numbers, claims,
      [Fig("schedules.png", "Left: η/η₀ against step for each schedule. Right: the "
           "minibatch data loss (the penalty left out) under each schedule at its best "
           "η₀, averaged per epoch (log scale).")])


def _figure(names, steps, rates, loss, per_epoch, eta0s) -> Figure:
  fig = Figure(figsize=(12, 4.2), layout="constrained")
  left, right = fig.subplots(1, 2)
  epochs = loss.shape[1] // per_epoch
  smooth = loss[:, :epochs * per_epoch].reshape(len(names), epochs, per_epoch).mean(axis=2)
  for k, name in enumerate(names):
    left.plot(steps, rates[k], lw=1.1, label=name)
    right.plot(np.arange(1, epochs + 1), smooth[k], lw=1.1, label=f"{name}, η₀ = {eta0s[k]:g}")
  right.legend(fontsize=7)
  left.set(xlabel="step τ", ylabel=r"$\eta_\tau\,/\,\eta_0$ (rate over its start)",
           title="the schedules")
  left.legend(fontsize=7)
  right.set(yscale="log", xlabel="epoch", ylabel="mean minibatch data loss (log scale)",
            title="training under each schedule")
  fig.suptitle(f"Schedules on digits, tanh MLP {'-'.join(map(str, SIZES))}, "
               f"batch {BATCH} (seeds 001, 002)")
  return fig
