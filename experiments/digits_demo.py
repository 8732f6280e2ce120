"""Digits demo: a jaxnn MLP trained by ``jaxnn.train.fit`` in one compiled program.

Data: scikit-learn's bundled 8×8 digits, split 80/20 with a key and standardised with the
training split's μ, σ. Model: 64-128-10 ReLU MLP with He initialisation. Loss: softmax
cross-entropy plus the L2 penalty λ/(2n)Σw². Optimiser: seed 001's momentum, μ = 0.9.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import jax

import jaxnn
from jaxnn import datasets, losses, optimizers, plotting, train

SIZES = (64, 128, 10)
ACTIVATION = "relu"


def run(out: Path, quick: bool = False) -> dict:
  """Trains the demo model, saves its training curves, returns the key numbers."""
  data_key, init_key, fit_key = jax.random.split(jax.random.key(0), 3)
  train_set, test_set = datasets.train_test_split(datasets.digits(), key=data_key)
  train_set, test_set, _ = datasets.standardized(train_set, test_set)
  n = train_set.x.shape[0]
  objective = train.objective(functools.partial(jaxnn.forward, activation=ACTIVATION),
                              losses.softmax_cross_entropy,
                              penalty=lambda p: losses.l2_penalty(p, 1.0, n))
  epochs = 5 if quick else 40
  start = time.perf_counter()
  result = train.fit(objective, jaxnn.init_mlp(init_key, SIZES, init="he"),
                     optimizers.momentum(0.05, 0.9), train_set, key=fit_key, epochs=epochs,
                     batch_size=64, eval_data=test_set)
  seconds = time.perf_counter() - start
  ev = result.history["eval"]
  numbers = {
      "model": "-".join(map(str, SIZES)) + f" {ACTIVATION}, he init",
      "optimizer": "momentum, lr 0.05, mu 0.9, l2 lambda 1.0, batch 64",
      "epochs": epochs,
      "steps": int(result.history["loss"].shape[0]),
      "final_train_loss": float(result.history["loss"][-1]),
      "test_loss": float(ev["loss"][-1]),
      "test_accuracy": float(ev["accuracy"][-1]),
      "seconds_including_compile": round(seconds, 3),
  }
  title = f"Digits, {numbers['model']}: test accuracy {numbers['test_accuracy']:.3f}"
  figure = plotting.training_curves(result.history, title=title,
                                    loss_label="training loss + L2 penalty (minibatch)")
  plotting.save(figure, out / "digits_demo.png")
  return numbers
