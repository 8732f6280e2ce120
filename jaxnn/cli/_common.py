"""What the commands share: the built-in data, the losses by name, settings for results.json."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxnn import (
    datasets,
    losses,
)

__all__ = ["DATASETS", "LOSSES"]

DATASETS = datasets.NAMES
# the largest model whose exact Hessian `jaxnn sweep` computes by itself (a few seconds)
_EXACT_LIMIT = 5000
LOSSES = ("cross_entropy", "quadratic")
# the keyword each schedule takes the base learning rate as
_SCHEDULE_LR = {"constant": "lr", "cyclic": "lr_max"}


def _load(args) -> tuple[datasets.Dataset, datasets.Dataset, int]:
    data_key, split_key = jax.random.split(jax.random.key(args.seed))
    data = datasets.load(args.dataset, key=data_key, n=getattr(args, "n", 200))
    train_set, test_set = datasets.train_test_split(
        data, key=split_key, test_fraction=args.test_fraction
    )
    train_set, test_set, _ = datasets.standardized(train_set, test_set)
    return train_set, test_set, int(np.max(np.asarray(data.y))) + 1


def _loss(name: str, classes: int):
    if name == "cross_entropy":
        return losses.softmax_cross_entropy

    def quadratic(logits, labels):
        return losses.quadratic(jax.nn.sigmoid(logits), jax.nn.one_hot(labels, classes))

    return quadratic


def _settings(args) -> dict:
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("command", "subparser", "run", "report")
    }


def _checks_nonnegative(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
