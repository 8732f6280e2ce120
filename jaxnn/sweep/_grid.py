"""Grids of hyperparameters: product grids, zipped points, log ranges, their checks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from jaxnn import _checks

__all__ = ["LR_NAMES", "MU_NAMES", "Grid", "Points", "as_grid", "grid", "log_range", "zipped"]

# Axis names jaxnn knows, with the values they accept: (low, high, low_open, high_open).
_RANGES = {
    "lr": (0.0, None, True, False),
    "mu": (0.0, 1.0, False, True),
    "dropout": (0.0, 1.0, False, True),
    "weight_decay": (0.0, None, False, False),
    "l1": (0.0, None, False, False),
    "l2": (0.0, None, False, False),
    "init_scale": (0.0, None, True, False),
    "clip_norm": (0.0, None, True, False),
}
LR_NAMES = ("lr",)
MU_NAMES = ("mu",)


class Grid(NamedTuple):
    """A product grid of hyperparameters.

    Fields:
      axes: name -> 1-D NumPy array of the axis's values, in the order given (``seed``:
        int64, every other axis float64).

    Point k is the C-order (last axis fastest) product index ``np.unravel_index(k, shape)``.
    """

    axes: dict

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def points(self) -> dict[str, np.ndarray]:
        """name -> array of shape (K,): every point's value of that axis."""
        mesh = np.meshgrid(*self.axes.values(), indexing="ij")
        return {name: m.reshape(-1) for name, m in zip(self.axes, mesh)}

    def point(self, k: int) -> dict[str, float | int]:
        """The hyperparameters of point ``k`` as Python numbers."""
        index = np.unravel_index(_checks.positive_int("k", k, 0), self.shape)
        return {name: values[i].item() for (name, values), i in zip(self.axes.items(), index)}


def _axis(name: str, values: Any, distinct: bool = True) -> np.ndarray:
    """One axis's values as a checked 1-D array (a scalar is a one-value axis); a product
    grid's axis must not repeat a value (``distinct``)."""
    if isinstance(values, range):
        values = list(values)
    if isinstance(values, (str, bytes)) or values is None:
        raise TypeError(f"grid axis {name!r} must be a sequence of numbers, got {values!r}")
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(
            f"grid axis {name!r} must be a flat sequence of numbers, got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"grid axis {name!r} is empty; give at least one value")
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"grid axis {name!r} must hold real numbers, got {arr.tolist()!r}")
    if name == "seed":
        if not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
            raise ValueError(f"grid axis 'seed' must hold ints >= 0, got {arr.tolist()!r}")
        arr = arr.astype(np.int64)
    else:
        arr = arr.astype(np.float64)
        _checks.finite(f"grid axis {name!r}", arr)
        if name in _RANGES:
            low, high, low_open, high_open = _RANGES[name]
            for v in arr:
                try:
                    _checks.in_range(
                        name, float(v), low, high, low_open=low_open, high_open=high_open
                    )
                except ValueError as e:
                    raise ValueError(f"grid axis {name!r}: {e}") from None
    if distinct and len(np.unique(arr)) != arr.size:
        raise ValueError(
            f"grid axis {name!r} repeats a value ({arr.tolist()!r}): the repeated "
            f"runs would change nothing; give distinct values"
        )
    return arr


def grid(**axes: Any) -> Grid:
    """The product grid of the named axes, e.g. ``grid(lr=[0.01, 0.1], mu=[0, 0.9],
    seed=range(4))`` (16 points).

    Each axis is a sequence of numbers (a single number is a one-value axis). ``seed`` holds
    ints ≥ 0 and selects the run's key (see the module doc); ``lr``/``learning_rate`` must
    be > 0, ``mu``/``momentum`` and ``dropout`` in [0, 1), ``weight_decay``, ``l1``, ``l2``
    ≥ 0 and ``init_scale`` and ``clip_norm`` > 0. Any other name is any finite value.

    Raises:
      ValueError: no axes, an empty axis, a repeated, non-finite or out-of-range value.
      TypeError: an axis that is not a sequence of real numbers.
    """
    if not axes:
        raise ValueError("grid needs at least one axis, e.g. grid(lr=[0.01, 0.1])")
    return Grid({name: _axis(name, values) for name, values in axes.items()})


class Points(NamedTuple):
    """Sweep points given one by one: run k takes the k-th value of every axis (the axes
    are zipped, not multiplied), e.g. a learning rate chosen per seed.

    Fields:
      axes: name -> 1-D NumPy array of K values (``seed``: int64, the rest float64).
    """

    axes: dict

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,)

    @property
    def size(self) -> int:
        return len(next(iter(self.axes.values())))

    def points(self) -> dict[str, np.ndarray]:
        """name -> array of shape (K,): every point's value of that axis."""
        return dict(self.axes)

    def point(self, k: int) -> dict[str, float | int]:
        """The hyperparameters of point ``k`` as Python numbers."""
        k = _checks.positive_int("k", k, 0)
        return {name: values[k].item() for name, values in self.axes.items()}


def zipped(**axes: Any) -> Points:
    """Sweep points given one by one, e.g. ``zipped(lr=[0.1, 0.2], seed=[0, 1])`` (2 points:
    η = 0.1 with seed 0, η = 0.2 with seed 1). Every axis must have the same length K;
    values are checked as for :func:`grid`, except that they may repeat.

    Raises:
      ValueError: no axes, axes of different lengths, a non-finite or out-of-range value.
      TypeError: an axis that is not a sequence of real numbers.
    """
    if not axes:
        raise ValueError("zipped needs at least one axis, e.g. zipped(lr=[0.01, 0.1])")
    checked = {name: _axis(name, values, distinct=False) for name, values in axes.items()}
    lengths = {name: len(v) for name, v in checked.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"zipped axes must all have the same length (one value per point), "
            f"got lengths {lengths}"
        )
    return Points(checked)


def log_range(low: float, high: float, num: int) -> np.ndarray:
    """``num`` log-spaced values from ``low`` to ``high`` inclusive: low·(high/low)^(i/(num−1)).

    Raises:
      ValueError: ``low`` ≤ 0 (a log range of learning rates must be positive), ``high`` <
        ``low``, or ``num`` < 1 (``num`` = 1 needs ``low`` = ``high``).
    """
    _checks.in_range("low", low, 0.0, low_open=True)
    _checks.in_range("high", high, float(low))
    num = _checks.positive_int("num", num)
    if num == 1 and high != low:
        raise ValueError(f"num=1 gives one value, but low={low!r} and high={high!r} differ")
    return np.geomspace(float(low), float(high), num)


def as_grid(value: Any) -> Grid | Points:
    if isinstance(value, (Grid, Points)):
        return value
    if isinstance(value, Mapping):
        return grid(**value)
    raise TypeError(
        f"grid must be a jaxnn.sweep.Grid (from grid(...)), Points (from "
        f"zipped(...)) or a dict of axes, got {type(value).__name__}"
    )
