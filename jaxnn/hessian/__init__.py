"""Exact Hessian eigen-analysis: spectrum, condition number, predicted vs observed rates.

For any ``loss_fn(params) -> scalar`` and any pytree of floating-point params (flattened in
the order of ``jax.flatten_util.ravel_pytree``; ``Spectrum.unravel`` maps an eigenvector
back), in float64 when ``jax_enable_x64`` is on:

* :func:`hessian_matrix`  H (P × P), column j the Hessian-vector product H eⱼ of
  :func:`jaxnn.curvature.hvp`, jitted.
* :func:`spectrum`        eigenvalues, eigenvectors, κ, thresholds; says if it is a saddle.
* :func:`check_rates`     runs gradient descent (or momentum) from a perturbed minimum and
  fits the observed per-direction rate, to compare with the prediction 1 − ηλ.
* :func:`find_minimum`    Adam to get close, then Newton steps on the exact Hessian.
* the rate theory — :func:`predicted_rates`, :func:`predicted_rates_momentum`,
  :func:`momentum_recurrence`, :func:`spectral_radius`, :func:`max_stable_lr`,
  :func:`polyak_momentum` — lives in :mod:`jaxnn.rates` and is re-exported here.

Matrix products inside run at full precision (no TF32/bfloat16 passes on GPU/TPU). A P × P
matrix needs P² floats: 400 MB at P = 10⁴ in float32, so above about 10⁴ parameters use
the matrix-free tools of :mod:`jaxnn.spectral`.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxnn import hessian
  >>> spec = hessian.spectrum(lambda w: 0.5 * (w[0] ** 2 + 10 * w[1] ** 2), jnp.ones(2))
  >>> round(spec.lambda_max, 6), round(spec.condition_number, 6)
  (10.0, 10.0)
"""

from jaxnn.hessian._matrix import MAX_BYTES, Spectrum, hessian_matrix, spectrum
from jaxnn.hessian._minimum import Minimum, find_minimum
from jaxnn.hessian._rate_check import RateCheck, check_rates
from jaxnn.rates import (
    PolyakStep,
    max_stable_lr,
    momentum_recurrence,
    polyak_momentum,
    predicted_rates,
    predicted_rates_momentum,
    spectral_radius,
)

__all__ = [
    "MAX_BYTES",
    "Minimum",
    "PolyakStep",
    "RateCheck",
    "Spectrum",
    "check_rates",
    "find_minimum",
    "hessian_matrix",
    "max_stable_lr",
    "momentum_recurrence",
    "polyak_momentum",
    "predicted_rates",
    "predicted_rates_momentum",
    "spectral_radius",
    "spectrum",
]
