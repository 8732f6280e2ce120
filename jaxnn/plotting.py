"""Matplotlib figures for the CLI and experiments: arrays in, figures out.

Functions take NumPy/JAX arrays (never models) and return a ``matplotlib.figure.Figure``
built without pyplot, so they work headless and leave no global state behind. Save with
:func:`save`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FormatStrFormatter

__all__ = [
    "decimal_log_ticks",
    "direction_decay",
    "eigenvalue_histogram",
    "landscape",
    "layer_colors",
    "layer_statistics",
    "lr_sweep",
    "lr_sweep_curves",
    "rate_check",
    "save",
    "training_curves",
]


def _arr(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float)


def training_curves(
    history: Mapping[str, Any],
    *,
    title: str | None = None,
    loss_label: str = "training loss (minibatch)",
) -> Figure:
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


def layer_statistics(steps: Any, stats: Mapping[str, Any], *, title: str | None = None) -> Figure:
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
        colors = layer_colors(values.shape[1])
        for layer in range(values.shape[1]):
            ax.plot(steps, values[:, layer], color=colors[layer], label=f"layer {layer + 1}")
        ax.set(xlabel="step", ylabel=name)
    axes[0].legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title)
    return fig


def eigenvalue_histogram(
    eigenvalues: Any,
    *,
    zero_tol: float | None = None,
    marks: Mapping[str, float] | None = None,
    bins: int = 60,
    title: str | None = None,
) -> Figure:
    """Histogram of Hessian eigenvalues on a symmetric-log axis (negative ones visible).

    The axis is linear within ±``linthresh`` and logarithmic beyond, with ``linthresh`` the
    zero tolerance when given (else 10⁻⁶ of the largest |λ|); bins are spaced evenly on that
    scale. ``marks`` draws labelled vertical lines (e.g. ``{"λmax": 3.2}``).
    """
    lam = _arr(eigenvalues)
    scale = float(np.max(np.abs(lam))) or 1.0
    thresh = zero_tol if zero_tol else 1e-6 * scale

    def warp(v):
        return np.sign(v) * np.log10(1 + np.abs(v) / thresh)

    def unwarp(u):
        return np.sign(u) * thresh * (10 ** np.abs(u) - 1)

    edges = unwarp(np.linspace(warp(lam.min()) - 0.05, warp(lam.max()) + 0.05, bins + 1))
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = fig.subplots()
    counts = np.asarray(ax.hist(lam, bins=edges, color="tab:blue", alpha=0.8)[0])
    ax.set_xscale("symlog", linthresh=thresh)
    # about four labelled powers of ten a side, counted down from the largest |λ| and kept
    # clear of 0 (a tick at ±linthresh would print on top of it)
    top, bottom = math.floor(math.log10(scale)), math.ceil(math.log10(thresh))
    stride = max(1, math.ceil((top - bottom) / 4))
    powers = [10.0**k for k in range(top, bottom, -stride)]
    ax.xaxis.set_major_locator(FixedLocator([-p for p in powers] + [0.0] + powers[::-1]))
    ax.set(xlabel="eigenvalue λ (symmetric log scale)", ylabel="count")
    if counts.max() > 50:  # a bulk of many eigenvalues beside a few outliers
        ax.set_yscale("log")
    for (name, value), color in zip(
        (marks or {}).items(), ("tab:red", "tab:green", "tab:purple", "tab:orange")
    ):
        ax.axvline(value, color=color, ls="--", lw=1, label=f"{name} = {value:.3g}")
    if marks:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def rate_check(
    eigenvalues: Any,
    predicted: Any,
    observed: Any,
    *,
    label: str = "1 − ηλ",
    title: str | None = None,
) -> Figure:
    """Predicted against observed per-direction rates: both against λ, and their gap.

    Args:
      eigenvalues: λᵢ (ascending).
      predicted, observed: the rates per direction (NaN: not measured).
      label: what ``predicted`` is (``"1 − ηλ"``, or the spectral radius ``"ρ"``).
    """
    lam, pred, obs = _arr(eigenvalues), _arr(predicted), _arr(observed)
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax_rate, ax_gap = fig.subplots(1, 2)
    ax_rate.plot(lam, pred, "-", color="tab:blue", lw=1.2, label=f"predicted {label}")
    ax_rate.plot(lam, obs, "o", color="tab:orange", ms=3, label="observed (fitted)")
    ax_rate.axhspan(-1, 1, color="tab:green", alpha=0.07, label="|rate| < 1: converges")
    ax_rate.set(xlabel="eigenvalue λ", ylabel="rate per step", title="rate per eigendirection")
    if np.all(lam > 0):
        ax_rate.set_xscale("log")
    ax_rate.legend(fontsize=8)
    gap = np.abs(pred - obs)
    shown = np.isfinite(gap) & (gap > 0)
    ax_gap.plot(lam[shown], gap[shown], "o", ms=3, color="tab:red")
    ax_gap.set(
        xlabel="eigenvalue λ",
        ylabel="|predicted − observed|",
        title="gap between prediction and observation",
    )
    if shown.any():
        ax_gap.set_yscale("log")
    if np.all(lam > 0):
        ax_gap.set_xscale("log")
    if title:
        fig.suptitle(title)
    return fig


def direction_decay(
    alpha: Any,
    eigenvalues: Any,
    predicted: Any,
    *,
    directions: Any = None,
    title: str | None = None,
) -> Figure:
    """log |αᵢ(t)| against t for a few eigendirections, with the predicted lines
    |αᵢ(0)|·|rateᵢ|ᵗ (dashed).

    Args:
      alpha: αᵢ(t), shape (steps + 1, P).
      eigenvalues: λᵢ.
      predicted: the predicted rate per direction.
      directions: indices to draw; default the smallest, the largest and three between.
    """
    alpha, lam, pred = _arr(alpha), _arr(eigenvalues), _arr(predicted)
    size = lam.shape[0]
    if directions is None:
        directions = sorted(set(np.linspace(0, size - 1, min(size, 5)).round().astype(int)))
    t = np.arange(alpha.shape[0])
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    colors = layer_colors(len(directions))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for color, i in zip(colors, directions):
            ax.plot(
                t,
                np.abs(alpha[:, i]),
                "-",
                color=color,
                lw=1.5,
                label=f"λ = {lam[i]:.3g}: rate {pred[i]:+.3f}",
            )
            ax.plot(t, np.abs(alpha[0, i]) * np.abs(pred[i]) ** t, "--", color=color, lw=1)
    ax.set(xlabel="step t", ylabel="|αᵢ(t)| = |uᵢᵀ(wₜ − w*)|", yscale="log")
    ax.legend(fontsize=7, title="solid: observed, dashed: predicted", title_fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def lr_sweep_curves(
    lrs: Any,
    final_loss: Any,
    failed: Any,
    *,
    labels: Any = None,
    thresholds: Any = None,
    threshold_label: str = "2/λmax",
    title: str | None = None,
) -> Figure:
    """Final training loss against the learning rate η (log axes), one line per group.

    Each line is the median over seeds at the η where no seed failed; dots are the single
    runs; × marks a failed run (at its final loss, or near the top edge, one row per group,
    when it diverged to NaN). A dashed vertical line per group marks its predicted
    threshold. The loss axis is logarithmic when the positive losses span over two decades
    (a loss of exactly 0 then drops out).

    Args:
      lrs: (n,) learning rates, ascending.
      final_loss: (groups, n, seeds), or (n,) for one group and seed; NaN where diverged.
      failed: bool, the same shape: runs that diverged or ended above their first loss.
      labels: one legend label per group (e.g. "μ = 0.9").
      thresholds: one η per group (e.g. 2/λmax), or None.
      threshold_label: what the thresholds are, for the legend.
    """
    lrs = _arr(lrs)
    loss = _arr(final_loss).reshape(
        (-1, lrs.size, np.shape(final_loss)[-1] if np.ndim(final_loss) == 3 else 1)
    )
    failed = np.asarray(failed, bool).reshape(loss.shape)
    groups = loss.shape[0]
    labels = list(labels) if labels is not None else [None] * groups
    colors = [f"C{g}" for g in range(groups)] if groups <= 10 else layer_colors(groups)
    fig = Figure(figsize=(6.8, 4.0), layout="constrained")
    ax = fig.subplots()
    top = ax.get_xaxis_transform()  # x in data, y in axes coordinates
    marked = False
    for g in range(groups):
        ok = ~failed[g].any(axis=1)
        median = np.array([np.median(v) if o else np.nan for o, v in zip(ok, loss[g])])
        ax.plot(lrs, median, "-", color=colors[g], lw=1.5, label=labels[g])
        seeds_x, values = np.repeat(lrs, loss.shape[2]), loss[g].reshape(-1)
        bad = failed[g].reshape(-1)
        ax.plot(seeds_x[~bad], values[~bad], ".", color=colors[g], ms=3, alpha=0.5)
        finite = np.isfinite(values)
        for where, ys, transform in (
            (bad & finite, values, ax.transData),
            (bad & ~finite, np.full(values.shape, 0.97 - 0.03 * g), top),
        ):
            if where.any():
                ax.plot(
                    seeds_x[where],
                    ys[where],
                    "x",
                    color=colors[g],
                    ms=6,
                    transform=transform,
                    label=None if marked else "failed run (diverged: on the top edge)",
                )
                marked = True
        if thresholds is not None and np.isfinite(thresholds[g]):
            ax.axvline(
                thresholds[g],
                color=colors[g],
                ls="--",
                lw=1,
                label=f"{threshold_label}"
                + (f" ({labels[g]})" if labels[g] else "")
                + f" = {thresholds[g]:.3g}",
            )
    ax.set_xscale("log")
    shown = loss[np.isfinite(loss) & (loss > 0)]
    log_y = shown.size and shown.max() > 100 * shown.min()
    if log_y:
        ax.set_yscale("log", nonpositive="mask")
    ax.set(
        xlabel="learning rate η (log scale)",
        ylabel="final training loss" + (" (log scale)" if log_y else ""),
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def decimal_log_ticks(ax: Any, axis: str = "y") -> None:
    """Labels a log-scaled axis of ``ax`` with plain decimals (0.5, 1, 2, 3) instead of
    powers of ten (2×10⁰): for an axis that spans less than about two decades, where the
    minor ticks carry the labels."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FormatStrFormatter("%g"))
    target.set_minor_formatter(FormatStrFormatter("%g"))


def layer_colors(n: int) -> list:
    """``n`` RGBA colours along viridis, dark (first layer) to light (last)."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Writes ``fig`` to ``path`` (PNG by its suffix) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


#: The name of :func:`lr_sweep_curves` in jaxnn 0.1 (``sweep.lr_sweep`` runs a sweep; this
#: draws one).
lr_sweep = lr_sweep_curves


def landscape(
    alphas: Any,
    betas: Any,
    losses: Any,
    *,
    path: Any = None,
    levels: int = 30,
    log: bool | None = None,
    title: str | None = None,
) -> Figure:
    """Contours of a loss surface over the plane (α, β), with a training path on top.

    Args:
      alphas, betas: the grid's coordinates, (A,) and (B,).
      losses: (A, B), entry [i, j] at (αᵢ, βⱼ) (:func:`jaxnn.landscape.plane`).
      path: optional (steps, 2) coordinates of a path in the same plane
        (:func:`jaxnn.landscape.trajectory_plane`'s ``coordinates``), drawn from its start
        (circle) to its end (star).
      levels: the number of contour levels.
      log: contour the base-10 logarithm of the loss (default: when the finite positive
        losses span over two decades).
    """
    a, b, z = _arr(alphas), _arr(betas), _arr(losses)
    if z.shape != (a.size, b.size):
        raise ValueError(
            f"losses must have shape {(a.size, b.size)} (alphas × betas), got {z.shape}"
        )
    finite = z[np.isfinite(z)]
    positive = finite[finite > 0]
    if log is None:
        log = positive.size > 0 and positive.max() > 100 * positive.min()
    shown = np.log10(np.where(z > 0, z, np.nan)) if log else z
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    ax = fig.subplots()
    filled = ax.contourf(a, b, shown.T, levels=levels, cmap="viridis")
    ax.contour(a, b, shown.T, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    fig.colorbar(filled, ax=ax, label="log₁₀ loss" if log else "loss")
    if path is not None:
        p = _arr(path)
        ax.plot(p[:, 0], p[:, 1], "-", color="w", lw=1.4)
        ax.plot(p[0, 0], p[0, 1], "o", color="w", mec="k", label="start")
        ax.plot(p[-1, 0], p[-1, 1], "*", color="r", mec="k", ms=12, label="end")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("α (direction 1)")
    ax.set_ylabel("β (direction 2)")
    if title:
        ax.set_title(title)
    return fig
