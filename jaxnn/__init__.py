"""jaxnn: a JAX toolkit for studying and running how neural networks learn.

The public face: re-exports only. Modules hold one concept each:
:mod:`~jaxnn.activations`, :mod:`~jaxnn.initializers`, :mod:`~jaxnn.model` (MLPs),
:mod:`~jaxnn.conv` (CNNs), :mod:`~jaxnn.losses`, :mod:`~jaxnn.normalization`,
:mod:`~jaxnn.datasets`,
:mod:`~jaxnn.optimizers`, :mod:`~jaxnn.schedules`, :mod:`~jaxnn.train`,
:mod:`~jaxnn.sweep`, :mod:`~jaxnn.rates` (the convergence-rate theory),
:mod:`~jaxnn.hessian` (exact), :mod:`~jaxnn.curvature` (Hessian-vector products and
other curvature operators), :mod:`~jaxnn.spectral` (matrix-free),
:mod:`~jaxnn.landscape` (the loss along lines and planes through the params),
:mod:`~jaxnn.interop` (Flax and Equinox models as :class:`~jaxnn.Model` s),
:mod:`~jaxnn.sharding` (data and parameters on a device mesh),
:mod:`~jaxnn.stats` (mean, standard error and paired differences over seeds),
:mod:`~jaxnn.checkpoint`, :mod:`~jaxnn.plotting`, and :mod:`~jaxnn.xla` (XLA settings that
compile faster, for runs of many small programs).

``import jaxnn`` does not import matplotlib: :mod:`jaxnn.plotting` loads on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from jaxnn import (
    activations,
    base,
    checkpoint,
    conv,
    curvature,
    datasets,
    hessian,
    initializers,
    interop,
    landscape,
    losses,
    model,
    normalization,
    optimizers,
    rates,
    schedules,
    sharding,
    spectral,
    stats,
    sweep,
    train,
    xla,
)
from jaxnn._version import __version__

if TYPE_CHECKING:  # loaded on first use (see __getattr__)
    from jaxnn import plotting
from jaxnn.base import weight_mask
from jaxnn.conv import cnn
from jaxnn.model import Model, dropout, forward, hidden_stats, init_mlp, mlp
from jaxnn.train import FitResult, Hook, fit, make_step, objective

__all__ = [
    "FitResult",
    "Hook",
    "Model",
    "__version__",
    "activations",
    "base",
    "checkpoint",
    "cnn",
    "conv",
    "curvature",
    "datasets",
    "dropout",
    "fit",
    "forward",
    "hessian",
    "hidden_stats",
    "init_mlp",
    "initializers",
    "interop",
    "landscape",
    "losses",
    "make_step",
    "mlp",
    "model",
    "normalization",
    "objective",
    "optimizers",
    "plotting",
    "rates",
    "schedules",
    "sharding",
    "spectral",
    "stats",
    "sweep",
    "train",
    "weight_mask",
    "xla",
]


def __getattr__(name: str) -> Any:
    # jaxnn.plotting imports matplotlib, which a training script or a sweep never needs
    if name == "plotting":
        return importlib.import_module("jaxnn.plotting")
    raise AttributeError(f"module 'jaxnn' has no attribute {name!r}")
