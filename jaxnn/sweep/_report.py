"""Reading a learning-rate sweep: where training stops being stable, compared with 2/λmax."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from jaxnn import _checks, rates
from jaxnn.sweep._grid import LR_NAMES, MU_NAMES, Grid
from jaxnn.sweep._run import SweepResult

__all__ = ["LRReport", "lr_report", "stability_edge"]


class LRReport(NamedTuple):
    """The two stability edges of a learning-rate sweep, per group of the other axes.

    A run is *unstable* when its loss rises above its first value within the first
    ``window`` steps (or diverges): the local instability that 2/λmax predicts at the
    start, where a step overshoots the minimum along the top eigendirection. A run
    *failed* when the divergence guard stopped it or its final training loss is not below
    its first: it never converged. A run can be unstable and still converge (the loss
    rises, the network moves to flatter ground, and the loss comes back down), so the
    converging edge usually lies above the stable one (not always: a run can stay below
    its start for the ``window`` steps and blow up later).

    Fields:
      lrs: (n,) the learning rates, ascending.
      groups: one dict per combination of the grid's other axes (seed excluded), e.g.
        ``{"mu": 0.9}``; ``[{}]`` for a sweep over η alone.
      final_loss: (groups, n, seeds) final training losses (NaN where diverged).
      peak_ratio: (groups, n, seeds) the largest loss of the first ``window`` steps over
        the first loss (inf where the run diverged in the window).
      diverged, unstable, failed: (groups, n, seeds) bool.
      rows: one dict per group: ``group``; ``largest_stable_lr``, the largest η at which,
        and below which, no run was unstable (NaN when the smallest η was), and
        ``first_unstable_lr`` (NaN when none was); ``largest_converging_lr``, the largest η
        at and below which no run failed, and ``smallest_failed_lr``; ``best_lr`` and
        ``best_loss``, the lowest median final loss over η where no seed failed; and with
        ``lambda_max``: ``threshold`` (2/λmax; 2(1+μ)/λmax with a momentum axis,
        2(1+μ)/((1+2μ)λmax) for Nesterov), ``ratio`` = largest_stable_lr / threshold and
        ``converging_ratio`` = largest_converging_lr / threshold.
      lambda_max: the curvature the thresholds were computed from, or None.
      window: the steps in which a stable run's loss never rose above its start.
    """

    lrs: np.ndarray
    groups: list
    final_loss: np.ndarray
    peak_ratio: np.ndarray
    diverged: np.ndarray
    unstable: np.ndarray
    failed: np.ndarray
    rows: list
    lambda_max: float | None
    window: int


def lr_report(
    result: SweepResult,
    lambda_max: float | None = None,
    *,
    nesterov: bool = False,
    window: int | None = None,
) -> LRReport:
    """Finds the two stability edges of every group of a sweep with an ``lr`` axis (see
    :class:`LRReport`) and, given λmax (the Hessian's largest eigenvalue at the start of
    training, e.g. from :func:`jaxnn.hessian.spectrum`), compares them with the
    gradient-descent threshold :func:`jaxnn.rates.max_stable_lr`: 2/λmax, or 2(1+μ)/λmax
    for heavy-ball momentum μ.

    The threshold is exact for full-batch descent on a quadratic: below it the loss falls
    at every step, above it the error along the top eigendirection grows by |1 − ηλmax| a
    step. On a network λmax changes as it trains, so 2/λmax at the start speaks of the
    first steps (the stable edge, measured over a short ``window``), not of where training
    ends (the converging edge). With momentum the loss need not fall at every step even
    below 2(1+μ)/λmax (the iterates overshoot and come back), so on a quadratic the
    converging edge, not the stable one, meets that threshold.

    Args:
      result: a :class:`SweepResult` with an ``lr`` axis.
      lambda_max: λmax at the start, or None for no threshold.
      nesterov: the momentum axis is Nesterov's (its threshold differs).
      window: steps in which a stable run's loss never exceeds its first value (default:
        the whole run).
    """
    if not isinstance(result, SweepResult):
        raise TypeError(
            f"result must be a SweepResult from sweep or lr_sweep, got {type(result).__name__}"
        )
    if not isinstance(result.grid, Grid):
        raise TypeError(
            "lr_report needs a sweep over a product grid (jaxnn.sweep.grid), not zipped points"
        )
    names = result.grid.names
    lr_name = next((n for n in LR_NAMES if n in names), None)
    if lr_name is None:
        raise ValueError(f"lr_report needs a grid with an 'lr' axis, got axes {list(names)}")
    if lambda_max is not None:
        _checks.in_range("lambda_max", lambda_max, 0.0, low_open=True)
    history = np.asarray(result.runs.history["loss"], float)
    steps = history.shape[1]
    span: int = steps if window is None else _checks.positive_int("window", window)
    if span > steps:
        raise ValueError(f"window must be at most the sweep's {steps} recorded steps, got {span}")
    others = [n for n in names if n not in (lr_name, "seed")]
    order = [names.index(n) for n in (*others, lr_name)] + (
        [names.index("seed")] if "seed" in names else []
    )
    lr_values = result.grid.axes[lr_name]
    by_lr = np.argsort(lr_values)
    shape = [len(result.grid.axes[n]) for n in others]

    def arrange(values):
        cube = np.transpose(result.reshaped(values), order)
        return cube.reshape((math.prod(shape), len(lr_values), -1))[:, by_lr]

    first = history[:, 0]
    early = history[:, :span]
    blown = np.logical_not(
        np.isfinite(early).all(axis=1)
    )  # diverged (NaN after the guard) in the window
    highest = np.where(blown, np.inf, np.max(np.where(blown[:, None], 0.0, early), axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        peak = highest / first
        unstable = result.diverged | blown | (highest > first)
        failed = result.diverged | ~(result.final_loss < first)
    losses, peaks, diverged, unstable, failed = (
        arrange(v) for v in (result.final_loss, peak, result.diverged, unstable, failed)
    )
    lrs = lr_values[by_lr]
    groups, rows = [], []
    for g, index in enumerate(np.ndindex(*shape)):
        group = {n: result.grid.axes[n][i].item() for n, i in zip(others, index)}
        groups.append(group)
        rows.append(_edges(lrs, losses[g], unstable[g], failed[g], group, lambda_max, nesterov))
    return LRReport(
        lrs,
        groups,
        losses,
        peaks,
        diverged,
        unstable,
        failed,
        rows,
        None if lambda_max is None else float(lambda_max),
        span,
    )


def stability_edge(lrs: Any, bad: Any) -> tuple[float, float]:
    """(the largest η at and below which no run is ``bad``, the smallest η at which one is).

    Args:
      lrs: (n,) learning rates, ascending.
      bad: (n,) or (n, seeds) bool, e.g. :attr:`LRReport.unstable` of one group.

    Returns:
      NaN for the first when the smallest η is bad already, for the second when none is.
    """
    lrs = np.asarray(lrs, float)
    bad = np.asarray(bad, bool).reshape(lrs.size, -1).any(axis=1)
    first_bad = int(np.argmax(bad)) if bad.any() else lrs.size
    return (
        float(lrs[first_bad - 1]) if first_bad else math.nan,
        float(lrs[first_bad]) if bad.any() else math.nan,
    )


def _edges(lrs, losses, unstable, failed, group, lambda_max, nesterov) -> dict:
    """One group's row of the report (``losses``, ``unstable``, ``failed``: (n, seeds))."""
    stable, first_unstable = stability_edge(lrs, unstable)
    converging, first_failed = stability_edge(lrs, failed)
    bad = failed.any(axis=1)
    median = np.array([np.nan if b else np.median(v) for b, v in zip(bad, losses)])
    best = int(np.argmin(np.where(np.isfinite(median), median, np.inf)))
    found = bool(np.isfinite(median[best]))
    row = {
        "group": group,
        "largest_stable_lr": stable,
        "first_unstable_lr": first_unstable,
        "largest_converging_lr": converging,
        "smallest_failed_lr": first_failed,
        "best_lr": float(lrs[best]) if found else math.nan,
        "best_loss": float(median[best]) if found else math.nan,
    }
    if lambda_max is not None:
        mu = next((group[n] for n in MU_NAMES if n in group), 0.0)
        row["threshold"] = float(rates.max_stable_lr(float(lambda_max), mu, nesterov))
        row["ratio"] = row["largest_stable_lr"] / row["threshold"]
        row["converging_ratio"] = row["largest_converging_lr"] / row["threshold"]
    return row
