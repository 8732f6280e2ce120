"""Seed 003: gradient clipping against exploding gradients.

A deep tanh MLP (64, ten hidden layers of 128, 10) with weights three times the LeCun
scale, N(0, 9/M): each layer multiplies a backpropagated signal by about
3·√E[tanh'(a)²] > 1, so gradients grow towards the input (they explode with depth). On
the digits, minibatch SGD with and without clipping the gradient's global norm to
c = 1 (g ← g·min(1, c/‖g‖), ``optimizers.sgd(clip_norm=c)``), at η = 0.1 and η = 1.
tanh bounds the hidden activations, so the loss of a thrown-off run stays a (large)
finite number: "thrown off" here means that training ends (the mean loss of the last 10
steps) above where it started. At η = 1 each setting runs from four minibatch orders:
a single thrown-off run is chaotic (its peak and end move with the order and even with
floating-point rounding), the contrast between the two settings is not.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import Claim, Figure as Fig, Outcome, unconfirmed
from jaxnn import datasets, initializers, losses, optimizers, plotting, train

TITLE = "gradient clipping keeps a deep tanh net with exploding gradients trainable"
SEEDS = "003"
COST = 13  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (64,) + (128,) * 10 + (10,)
SCALE = 3.0
CLIP = 1.0
LRS = (0.1, 1.0)
ORDERS = 4  # minibatch orders (fit keys) at the largest η
TAIL = 10  # the end of a run: the mean loss of its last TAIL steps


def run(out: Path, quick: bool = False) -> Outcome:
  epochs = 1 if quick else 5
  train_set, test_set = datasets.train_test_split(datasets.digits(), key=jax.random.key(0))
  train_set, test_set, _ = datasets.standardized(train_set, test_set)
  model = jaxnn.mlp(SIZES, init=initializers.scaled("lecun", SCALE))
  params, state = model.init(jax.random.key(1))
  objective = train.objective(model, losses.softmax_cross_entropy)
  layer_norms = np.asarray(jax.jit(functools.partial(train.layer_grad_norms, objective))(
      params, state, tuple(train_set)))
  runs = {}
  for lr in LRS:
    for clip in (None, CLIP):
      for order in range(ORDERS if lr == max(LRS) else 1):
        runs[lr, clip, order] = train.fit(
            objective, params, optimizers.sgd(lr, clip_norm=clip), train_set,
            key=jax.random.key(2 + order), epochs=epochs, batch_size=32, state=state)
  summary = {}
  for (lr, clip, order), r in runs.items():
    loss = np.asarray(r.history["loss"])
    acc = float(objective.evaluate(r.params, r.state, tuple(test_set))["accuracy"])
    summary[lr, clip, order] = {
        "finite": bool(np.isfinite(loss).all() and not r.diverged), "first": float(loss[0]),
        "peak": float(np.nanmax(loss)), "end": float(np.nanmean(loss[-TAIL:])),
        "accuracy": acc, "max grad": float(np.nanmax(np.asarray(r.history["grad_norm"])))}
  numbers = {"init": f"N(0, {SCALE:g}²/M)", "clip norm c": CLIP, "epochs": epochs,
             "‖∂C/∂W‖ at init, first and last hidden layer, output": [
                 float(layer_norms[0]), float(layer_norms[-2]), float(layer_norms[-1])]}
  for (lr, clip, order), row in summary.items():
    label = f"η = {lr:g}, {'clipped' if clip else 'unclipped'}, order {order}"
    numbers[f"{label}: loss finite throughout"] = row["finite"]
    numbers[f"{label}: first, peak, end (last {TAIL} steps) loss"] = [
        row["first"], row["peak"], row["end"]]
    numbers[f"{label}: largest ‖g‖, held-out accuracy"] = [row["max grad"], row["accuracy"]]
  big = max(LRS)
  clipped = [summary[big, CLIP, o] for o in range(ORDERS)]
  unclipped = [summary[big, None, o] for o in range(ORDERS)]
  ratio = lambda rows, key: ", ".join(f"{r[key] / r['first']:.2g}" for r in rows)
  claims = {
      "gradients_explode": Claim(
          "at this initialisation the gradient grows layer by layer towards the input",
          bool(np.all(np.diff(layer_norms[:-1]) < 0)),
          f"‖∂C/∂W¹‖ = {layer_norms[0]:.3g}, ‖∂C/∂W¹⁰‖ = {layer_norms[-2]:.3g}"),
      "clipping_keeps_training_finite": Claim(
          f"at η = {big:g}, from each of {ORDERS} minibatch orders, the unclipped run is "
          "thrown off (it ends above its starting loss) while the clipped run stays "
          "finite and ends below it",
          all(u["end"] > u["first"] for u in unclipped)
          and all(c["finite"] and c["end"] < c["first"] for c in clipped),
          f"end / start: unclipped {ratio(unclipped, 'end')}, clipped "
          f"{ratio(clipped, 'end')}; peak / start: unclipped {ratio(unclipped, 'peak')}, "
          f"clipped {ratio(clipped, 'peak')}; held-out accuracy (order 0): unclipped "
          f"{unclipped[0]['accuracy']:.3f}, clipped {clipped[0]['accuracy']:.3f}"),
  }
  small = min(LRS)
  plotting.save(_figure(runs, layer_norms), out / "clipping.png")
  return Outcome(
      TITLE, SEEDS,
      f"Minibatch SGD (batch 32) for {epochs} epoch(s) from one initialisation. At η = "
      f"{small:g}, where nothing explodes, the held-out accuracy is "
      f"{summary[small, None, 0]['accuracy']:.3f} unclipped and "
      f"{summary[small, CLIP, 0]['accuracy']:.3f} clipped: clipping every step to ‖g‖ ≤ "
      f"{CLIP:g} also shrinks the legitimate large gradients of this network, so it "
      "costs progress when nothing explodes; it pays off when a step would otherwise "
      "throw the weights far away." + unconfirmed(claims),
      numbers, claims,
      [Fig("clipping.png", "Left: the gradient norm of each layer at initialisation "
           "(log scale), growing towards the input. Middle: training loss against step "
           "(log scale), minibatch order 0. Right: the "
           "gradient norm ‖g‖ before clipping against step.")])


def _figure(runs, layer_norms) -> Figure:
  fig = Figure(figsize=(14, 4), layout="constrained")
  ax_layers, ax_loss, ax_grad = fig.subplots(1, 3)
  ax_layers.plot(np.arange(1, len(layer_norms) + 1), layer_norms, "o-")
  ax_layers.set(yscale="log", xlabel=f"layer ({len(layer_norms)} = output)",
                ylabel="‖∂C/∂W^l‖ (log scale)", title="gradient per layer at init")
  for (lr, clip, order), r in runs.items():
    if order:
      continue
    style = "-" if clip else "--"
    label = f"η = {lr:g}, {'clip ‖g‖ ≤ ' + format(clip, 'g') if clip else 'no clipping'}"
    color = "tab:blue" if lr == min(LRS) else "tab:red"
    ax_loss.plot(np.asarray(r.history["loss"]), style, color=color, lw=0.8, label=label)
    ax_grad.plot(np.asarray(r.history["grad_norm"]), style, color=color, lw=0.8,
                 label=label)
  ax_loss.set(yscale="log", xlabel="step", ylabel="minibatch loss (log scale)",
              title="training loss")
  ax_grad.axhline(CLIP, color="k", ls=":", lw=0.8, label=f"c = {CLIP:g}")
  ax_grad.set(yscale="log", xlabel="step", ylabel="‖g‖ before clipping (log scale)",
              title="gradient norm")
  ax_loss.legend(fontsize=7)
  ax_grad.legend(fontsize=7)
  fig.suptitle(f"Deep tanh MLP, 10 hidden layers of 128, init N(0, {SCALE:g}²/M), "
               "on digits (seed 003)")
  return fig
