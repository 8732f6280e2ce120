"""jaxnn: a JAX toolkit for studying and running how neural networks learn.

The public face: re-exports only. Modules hold one concept each:
:mod:`~jaxnn.activations`, :mod:`~jaxnn.initializers`, :mod:`~jaxnn.model`,
:mod:`~jaxnn.losses`, :mod:`~jaxnn.normalization`, :mod:`~jaxnn.datasets`.
"""

from jaxnn import activations, base, datasets, initializers, losses, model, normalization
from jaxnn.base import weight_mask
from jaxnn.model import Model, dropout, forward, hidden_stats, init_mlp, mlp

__version__ = "0.1.0"

__all__ = [
    "Model",
    "activations",
    "base",
    "datasets",
    "dropout",
    "forward",
    "hidden_stats",
    "init_mlp",
    "initializers",
    "losses",
    "mlp",
    "model",
    "normalization",
    "weight_mask",
]
