"""Seeds 001, 002: why weights must not start equal.

With every weight and bias 0, all hidden units of a layer compute the same function, get
the same gradient and so the same update: they stay identical however long the network
trains, and the layer acts as a single unit. A sigmoid MLP 2-8-2 on two moons shows it
(tanh would be a poorer test: tanh(0) = 0 stops every weight gradient at once); a random
(LeCun) start breaks the symmetry.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import Claim, Figure as Fig, Outcome
from jaxnn import datasets, losses, optimizers, plotting, train

TITLE = "zero initialisation keeps every hidden unit identical; random initialisation does not"
SEEDS = "001, 002"
COST = 8  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (2, 8, 2)
EVERY = 10


def _first_layer_hook() -> train.Hook:
  """Records the first layer's weights and biases (every hidden unit's fan-in)."""
  def update(state, params, model_state, step):
    return state, {"w": params[0]["w"], "b": params[0]["b"]}

  return train.Hook(lambda params: (), update, EVERY)


def run(out: Path, quick: bool = False) -> Outcome:
  steps = 200 if quick else 1000
  moons = datasets.moons(384, key=jax.random.key(0))
  # two classes of unequal size: with equal ones the zero start is a stationary point
  # (every gradient is Σ(p − y)·0.5 = 0) and nothing moves at all
  keep = np.flatnonzero(np.asarray(moons.y) == 0)[:96].tolist() + np.flatnonzero(
      np.asarray(moons.y) == 1).tolist()
  data = (jnp.asarray(moons.x)[np.array(keep)], jnp.asarray(moons.y)[np.array(keep)])
  objective = train.objective(functools.partial(jaxnn.forward, activation="sigmoid"),
                              losses.softmax_cross_entropy)
  starts = {"zero": jaxnn.init_mlp(jax.random.key(1), SIZES, init="zeros"),
            "random (LeCun)": jaxnn.init_mlp(jax.random.key(1), SIZES, init="lecun")}
  records, numbers, finals = {}, {"steps": steps, "learning rate": 1.0}, {}
  for name, params in starts.items():
    result = train.fit(objective, params, optimizers.sgd(1.0), data, key=jax.random.key(2),
                       steps=steps, hooks={"layer": _first_layer_hook()})
    rec = result.history["hooks"]["layer"]
    fan_in = np.concatenate([np.asarray(rec.record["w"]),
                             np.asarray(rec.record["b"])[:, None, :]], axis=1)
    spread = float(np.max(np.std(fan_in, axis=2)))  # across units, worst over time
    moved = float(np.abs(fan_in[-1] - fan_in[0]).max())
    records[name] = (np.asarray(rec.step), fan_in)
    finals[name] = (spread, moved, float(result.history["loss"][-1]))
    numbers[f"{name}: largest spread across hidden units"] = spread
    numbers[f"{name}: largest change of a first-layer weight"] = moved
    numbers[f"{name}: final training loss"] = finals[name][2]
  zero_spread, zero_moved, _ = finals["zero"]
  random_spread = float(np.min(np.std(records["random (LeCun)"][1][:, :-1], axis=2)))
  claims = {
      "units_identical": Claim(
          "from zero initialisation every hidden unit keeps the same weights throughout "
          "training, although the weights do change", bool(zero_spread == 0.0
                                                          and zero_moved > 1e-3),
          f"largest spread across units {zero_spread:.3g} over {steps} steps, while the "
          f"weights moved by up to {zero_moved:.3g}"),
      "random_breaks_symmetry": Claim(
          "from a random initialisation the hidden units differ", bool(random_spread > 1e-2),
          f"smallest spread across units of an incoming weight, over all steps: "
          f"{random_spread:.3g}"),
  }
  plotting.save(_figure(records), out / "hidden_units.png")
  return Outcome(
      TITLE, SEEDS,
      "Full-batch gradient descent (η = 1) on 288 two-moons points (96 and 192 per "
      "class). The spread is the "
      "standard deviation across the 8 hidden units of each incoming weight and bias; "
      "with equal starting weights it stays exactly 0 (the units are interchangeable, "
      "so their gradients are equal), while the weights themselves move.",
      numbers, claims,
      [Fig("hidden_units.png", "The first input's weight into each of the 8 hidden units "
           "against the training step: from zero initialisation (left) the 8 lines lie on "
           "top of each other; from a random start (right) they differ.")])


def _figure(records: dict) -> Figure:
  fig = Figure(figsize=(10, 3.6), layout="constrained")
  axes = fig.subplots(1, 2)
  for ax, (name, (steps, fan_in)) in zip(axes, records.items()):
    for unit in range(fan_in.shape[2]):
      ax.plot(steps, fan_in[:, 0, unit], lw=1.2, label=f"unit {unit + 1}")
    ax.set(xlabel="step", ylabel="weight from input 1", title=f"{name} initialisation")
    ax.legend(fontsize=6, ncol=2)
  fig.suptitle("First-layer weights of a sigmoid MLP 2-8-2 on two moons (seeds 001, 002)")
  return fig
