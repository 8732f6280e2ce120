"""Matplotlib figures for the CLI and experiments: arrays in, figures out.

Functions take NumPy/JAX arrays (never models) and return a ``matplotlib.figure.Figure``
built without pyplot, so they work headless and leave no global state behind. Save with
:func:`save`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from matplotlib.figure import Figure


def _arr(x: Any) -> np.ndarray:
  return np.asarray(x, dtype=float)


def training_curves(history: Mapping[str, Any], *, title: str | None = None,
                    loss_label: str = "training loss (minibatch)") -> Figure:
  """Loss (log scale, with evaluation loss if present), learning rate and ‖∇E‖ per step.

  Args:
    history: a ``FitResult.history`` (``loss``, ``grad_norm``, ``lr``, optional ``eval``).
    title: figure title.
    loss_label: legend entry of the training curve (say so when it includes a penalty;
      the held-out loss never does).
  """
  loss = _arr(history["loss"])
  steps = np.arange(len(loss))
  fig = Figure(figsize=(10, 3.2), layout="constrained")
  ax_loss, ax_lr, ax_grad = fig.subplots(1, 3)
  ax_loss.plot(steps, loss, lw=0.8, label=loss_label)
  if "eval" in history:
    ev = history["eval"]
    ax_loss.plot(_arr(ev["step"]), _arr(ev["loss"]), "o-", ms=3, label="held-out loss")
  finite = loss[np.isfinite(loss)]
  if finite.size and finite.min() > 0:
    ax_loss.set_yscale("log")
  ax_loss.set(xlabel="step", ylabel="loss")
  ax_loss.legend(fontsize=8)
  ax_lr.plot(steps, _arr(history["lr"]), lw=1.0, color="tab:green")
  lr = _arr(history["lr"])
  top = np.nanmax(lr) if np.isfinite(lr).any() else 1.0
  ax_lr.set(xlabel="step", ylabel="learning rate η", ylim=(0, 1.1 * top if top > 0 else 1))
  ax_grad.plot(steps, _arr(history["grad_norm"]), lw=0.8, color="tab:red")
  ax_grad.set(xlabel="step", ylabel="gradient norm ‖∇E‖", yscale="log")
  if title:
    fig.suptitle(title)
  return fig


def layer_statistics(steps: Any, stats: Mapping[str, Any], *,
                     title: str | None = None) -> Figure:
  """One panel per statistic, one line per layer, against the training step.

  Args:
    steps: shape (calls,), the steps at which the statistics were recorded.
    stats: name -> array of shape (calls, layers), e.g. a hook's ``std`` and
      ``saturated`` records.
  """
  steps = _arr(steps)
  fig = Figure(figsize=(4.2 * len(stats), 3.2), layout="constrained")
  axes = np.atleast_1d(fig.subplots(1, len(stats)))
  for ax, (name, values) in zip(axes, stats.items()):
    values = _arr(values)
    colors = _layer_colors(values.shape[1])
    for layer in range(values.shape[1]):
      ax.plot(steps, values[:, layer], color=colors[layer], label=f"layer {layer + 1}")
    ax.set(xlabel="step", ylabel=name)
  axes[0].legend(fontsize=7, ncol=2)
  if title:
    fig.suptitle(title)
  return fig


def _layer_colors(n: int) -> list:
  from matplotlib import colormaps
  cmap = colormaps["viridis"]
  return [cmap(i / max(n - 1, 1)) for i in range(n)]


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
  """Writes ``fig`` to ``path`` (PNG by its suffix) and returns the path."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=dpi)
  return path
