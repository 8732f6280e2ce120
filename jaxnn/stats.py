"""Statistics over repeated runs: a claim about training rests on several seeds.

A training run depends on its initialisation and its minibatch order, so one run says
little about a method; n runs from n seeds (a ``seed`` axis of a sweep) say how large an
effect is against the run-to-run spread. The functions here take the n values of a
quantity, one per seed, along an axis:

* :func:`mean_stderr`: the mean x̄ = (1/n) Σᵢ xᵢ and its standard error s/√n, with s² =
  Σᵢ (xᵢ − x̄)²/(n − 1) the unbiased sample variance.
* :func:`paired_difference`: the per-seed difference dᵢ = aᵢ − bᵢ of two settings run
  from the same seeds (same init, same minibatch order), its mean d̄ and standard error:
  pairing removes the spread the two settings share, so a small but consistent effect
  stands out. ``z = d̄ / s.e.`` is the usual t statistic; "d̄ < −2 s.e." reads as "a is
  lower than b by more than two standard errors".
* :func:`count`: in how many seeds a per-seed condition held ("in ≥ 4 of 5 seeds").

Values may be NumPy or JAX arrays; results are NumPy.

Reference: any statistics text on the paired t test, e.g. Wasserman, *All of Statistics*
(2004), §10.1.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["Difference", "Summary", "count", "mean_stderr", "paired_difference"]


class Summary(NamedTuple):
    """``mean`` and ``stderr`` (standard error of the mean) over ``n`` values."""

    mean: Any
    stderr: Any
    n: int


class Difference(NamedTuple):
    """A paired difference a − b over ``n`` seeds: ``mean`` d̄, ``stderr`` and ``z`` =
    d̄/stderr (±inf when every seed gave the same nonzero difference, NaN when all are 0)."""

    mean: Any
    stderr: Any
    z: Any
    n: int


def _values(name: str, values: Any, axis: int) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        raise ValueError(f"{name} must hold one value per seed along axis {axis}, got a scalar")
    if arr.shape[axis] < 2:
        raise ValueError(
            f"{name} needs at least 2 seeds along axis {axis} for a standard "
            f"error, got shape {arr.shape}"
        )
    return arr


def mean_stderr(values: Any, axis: int = 0) -> Summary:
    """Mean and standard error s/√n of ``values`` over ``axis`` (n ≥ 2 values).

    Example:
      >>> s = mean_stderr([1.0, 2.0, 3.0])      # s.mean = 2; s = 1, so s.stderr = 1/√3
    """
    arr = _values("values", values, axis)
    n = arr.shape[axis]
    return Summary(arr.mean(axis=axis), arr.std(axis=axis, ddof=1) / np.sqrt(n), n)


def paired_difference(a: Any, b: Any, axis: int = 0) -> Difference:
    """The mean and standard error of aᵢ − bᵢ over the seeds on ``axis``.

    Args:
      a, b: the same quantity under two settings, one value per seed, same shape.
    """
    a, b = _values("a", a, axis), _values("b", b, axis)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must pair up seed by seed (same shape), got {a.shape} and {b.shape}"
        )
    mean, stderr, n = mean_stderr(a - b, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = mean / stderr
    return Difference(mean, stderr, z, n)


def count(flags: Any) -> int:
    """How many of the per-seed booleans ``flags`` are true."""
    return int(np.sum(np.asarray(flags, dtype=bool)))
