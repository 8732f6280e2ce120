"""Seed 000: the weighted input z of a neuron with 1,000 inputs equal to 1.

z = Σⱼ wⱼxⱼ + b with every xⱼ = 1. With wⱼ, b ~ N(0, 1), Var z = 1000 + 1, so z has
std √1001 ≈ 31.6 and a tanh unit is almost always saturated; with wⱼ ~ N(0, 1/1000) and
b ~ N(0, 1), Var z = 1000 · (1/1000) + 1 = 2, std √2, and most units stay in tanh's
sensitive range. Each neuron of a 1000-input layer of ``units`` neurons is one sample.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments.report import Claim, Figure as Fig, Outcome
from jaxnn import initializers, plotting

TITLE = "distribution of a neuron's weighted input under N(0, 1) and N(0, 1/n) weights"
SEEDS = "000"
COST = 3  # seconds of --quick on 2 cores: parallel runs start the costliest first
INPUTS = 1000
SATURATION = 0.99  # |tanh z| above this counts as saturated


def run(out: Path, quick: bool = False) -> Outcome:
  units = 2000 if quick else 20000
  x = jnp.ones((1, INPUTS))
  keys = jax.random.split(jax.random.key(0), 4)
  cases = {
      "N(0, 1) weights": (initializers.get("normal")(keys[0], (INPUTS, units)),
                          math.sqrt(INPUTS + 1)),
      "N(0, 1/1000) weights": (initializers.get("lecun")(keys[1], (INPUTS, units)),
                               math.sqrt(2.0)),
  }
  bias = jax.random.normal(keys[2], (units,))
  numbers, claims, zs = {"units sampled": units}, {}, {}
  for label, (w, predicted) in cases.items():
    z = np.asarray((x @ w)[0] + bias)
    std = float(z.std())
    saturated = float(np.mean(np.abs(np.tanh(z)) > SATURATION))
    zs[label] = (z, predicted, saturated)
    numbers[f"{label}: std of z"] = std
    numbers[f"{label}: predicted std"] = predicted
    numbers[f"{label}: fraction of tanh units with |tanh z| > {SATURATION}"] = saturated
    # the sample std of n normal draws has relative standard error 1/√(2n)
    tol = 4 / math.sqrt(2 * units)
    claims[f"std_{'normal' if '1)' in label else 'scaled'}"] = Claim(
        f"with {label}, std z = {predicted:.4g}", bool(abs(std / predicted - 1) < tol),
        f"measured {std:.4g} over {units} neurons, predicted {predicted:.4g} "
        f"(relative gap {abs(std / predicted - 1):.2%}, allowed {tol:.2%})")
  fig = _figure(zs)
  plotting.save(fig, out / "z_histograms.png")
  return Outcome(
      TITLE, SEEDS,
      f"A neuron with {INPUTS} inputs equal to 1: with standard normal weights the "
      f"weighted input z spreads over ±{3 * math.sqrt(INPUTS + 1):.0f} and nearly every "
      f"tanh unit saturates; scaling the weights' variance by 1/{INPUTS} brings the std "
      f"down to √2 (the bias's variance of 1 included).",
      numbers, claims,
      [Fig("z_histograms.png", "Histograms of z = Σ w + b over the sampled neurons for "
           "both initialisations, with the normal density of the predicted std (dashed) "
           "and the saturated share of tanh units in each title.")])


def _figure(zs: dict) -> Figure:
  fig = Figure(figsize=(10, 3.6), layout="constrained")
  axes = fig.subplots(1, len(zs))
  for ax, (label, (z, std, saturated)) in zip(axes, zs.items()):
    ax.hist(z, bins=80, density=True, color="tab:blue", alpha=0.75, label="sampled z")
    grid = np.linspace(-4 * std, 4 * std, 400)
    ax.plot(grid, np.exp(-0.5 * (grid / std) ** 2) / (std * math.sqrt(2 * math.pi)), "--",
            color="tab:red", label=f"N(0, {std:.3g}²) predicted")
    ax.axvspan(-2.647, 2.647, color="tab:green", alpha=0.12,
               label="|tanh z| < 0.99 (not saturated)")
    ax.set(xlabel="weighted input z", ylabel="density",
           title=f"{label}: std {z.std():.3g}, {saturated:.1%} saturated")
    ax.legend(fontsize=7)
  fig.suptitle(f"z = Σ wⱼ·1 + b for {INPUTS} inputs equal to 1 (seed 000)")
  return fig
