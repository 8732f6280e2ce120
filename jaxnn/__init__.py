"""jaxnn: a JAX toolkit for studying and running how neural networks learn.

The public face: re-exports only. Modules hold one concept each:
:mod:`~jaxnn.activations`, :mod:`~jaxnn.initializers`, :mod:`~jaxnn.model`,
:mod:`~jaxnn.losses`, :mod:`~jaxnn.normalization`, :mod:`~jaxnn.datasets`,
:mod:`~jaxnn.optimizers`, :mod:`~jaxnn.schedules`, :mod:`~jaxnn.train`,
:mod:`~jaxnn.sweep`, :mod:`~jaxnn.hessian`, :mod:`~jaxnn.spectral`,
:mod:`~jaxnn.stats` (mean, standard error and paired differences over seeds),
:mod:`~jaxnn.checkpoint`, :mod:`~jaxnn.plotting`, and :mod:`~jaxnn.xla` (XLA settings that
compile faster, for runs of many small programs).
"""

from jaxnn import (activations, base, checkpoint, datasets, hessian, initializers, losses,
                   model, normalization, optimizers, plotting, schedules, spectral, stats,
                   sweep, train, xla)
from jaxnn.base import weight_mask
from jaxnn.model import Model, dropout, forward, hidden_stats, init_mlp, mlp
from jaxnn.train import FitResult, Hook, fit, make_step, objective

__version__ = "0.1.0"

__all__ = [
    "FitResult",
    "Hook",
    "Model",
    "activations",
    "base",
    "checkpoint",
    "datasets",
    "dropout",
    "fit",
    "forward",
    "hessian",
    "hidden_stats",
    "init_mlp",
    "initializers",
    "losses",
    "make_step",
    "mlp",
    "model",
    "normalization",
    "objective",
    "optimizers",
    "plotting",
    "schedules",
    "spectral",
    "stats",
    "sweep",
    "train",
    "weight_mask",
    "xla",
]
