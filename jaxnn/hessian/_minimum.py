"""A minimum found accurately: Adam to get close, then Newton steps on the exact Hessian."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxnn import _checks, optimizers
from jaxnn.base import Array, Params
from jaxnn.hessian._matrix import (
    MAX_BYTES,
    LossFn,
    Spectrum,
    check_budget,
    check_params,
    hessian_matrix,
    spectrum,
)

__all__ = ["Minimum", "find_minimum"]


class Minimum(NamedTuple):
    """What :func:`find_minimum` reached.

    Fields:
      params: the point found.
      loss: E there.
      grad_norm: ‖∇E‖ there.
      converged: ``grad_norm <= gtol``.
      newton_steps: Newton steps taken.
      spectrum: the Hessian's :class:`Spectrum` there (with eigenvectors).
      kind: ``spectrum.kind``: "minimum" is what was asked for; "saddle" means Newton
        converged to a saddle point.
      report: one line for a person: what was found and, if not a minimum, what to do.
    """

    params: Params
    loss: float
    grad_norm: float
    converged: bool
    newton_steps: int
    spectrum: Spectrum
    kind: str
    report: str


@functools.partial(jax.jit, static_argnames=("loss_fn", "steps"))
def _adam(loss_fn: LossFn, params: Params, lr: Array, steps: int) -> Params:
    opt = optimizers.adam(lr)

    def step(carry, _):
        p, state = carry
        updates, state = opt.update(jax.grad(loss_fn)(p), state, p)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params


@functools.partial(jax.jit, static_argnames=("loss_fn",))
def _value_and_flat_grad(loss_fn: LossFn, params: Params) -> tuple[Array, Array]:
    value, grad = jax.value_and_grad(loss_fn)(params)
    return value, ravel_pytree(grad)[0]


def _newton_direction(matrix: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, bool]:
    """(step, H positive definite?). Newton's −H⁻¹g by a Cholesky solve when H is positive
    definite; otherwise the saddle-free step −Σᵢ (uᵢᵀg/|λᵢ|) uᵢ (Dauphin et al. 2014), with
    |λᵢ| ≤ P·ε·max|λ| left out: a descent direction that moves away from saddle points
    instead of toward them. On the host (LAPACK through NumPy): the Newton loop's small
    dense algebra needs no compiled programs."""
    try:
        factor = np.linalg.cholesky(matrix)
        step = -np.linalg.solve(factor.T, np.linalg.solve(factor, grad))
        if np.all(np.isfinite(step)):
            return step, True
    except np.linalg.LinAlgError:
        pass
    lam, u = np.linalg.eigh(matrix)
    tol = lam.shape[0] * np.finfo(lam.dtype).eps * np.max(np.abs(lam))
    inv = np.where(np.abs(lam) > tol, 1.0 / np.where(lam == 0, 1.0, np.abs(lam)), 0.0)
    return -(u * inv) @ (u.T @ grad), False


def find_minimum(
    loss_fn: LossFn,
    params: Params,
    *,
    steps: int = 2000,
    lr: float = 1e-2,
    newton_steps: int = 50,
    gtol: float | None = None,
    max_bytes: int = MAX_BYTES,
) -> Minimum:
    """Gets to a minimum accurately enough for :func:`check_rates`.

    ``steps`` steps of Adam (one jitted scan) to get close, then Newton steps on the exact
    Hessian: w ← w − H⁻¹∇E where H is positive definite (quadratic convergence near a strict
    minimum), and the saddle-free step w ← w − |H|⁻¹∇E where it is not (|H| = U|Λ|Uᵀ; plain
    Newton would head for the nearest critical point, a saddle included). Each step is
    halved (up to 20 times) until it lowers E, or, where H is positive definite, ‖∇E‖;
    the search stops when ‖∇E‖ ≤ ``gtol`` or no step is accepted. The result's ``kind`` and
    ``report`` say whether the point reached is a minimum, a saddle or degenerate.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``.
      params: where to start.
      steps: Adam steps (0 to go straight to Newton).
      lr: Adam's step.
      newton_steps: the most Newton steps.
      gtol: target ‖∇E‖; default ε^(3/4) of the dtype (1.8e-12 in float64, 6.4e-6 in
        float32).
      max_bytes: memory budget for the Hessian (see :func:`hessian_matrix`).
    """
    size, dtype = check_params(loss_fn, params)
    check_budget("find_minimum's Hessian", size, dtype, 3, max_bytes)
    steps = _checks.positive_int("steps", steps, 0)
    newton_steps = _checks.positive_int("newton_steps", newton_steps, 0)
    _checks.in_range("lr", lr, 0.0, low_open=True)
    eps = float(np.finfo(dtype).eps)
    target = eps**0.75 if gtol is None else float(_checks.in_range("gtol", gtol, 0.0))
    if steps:
        params = _adam(loss_fn, params, jnp.asarray(lr, dtype), steps)
    flat, unravel = ravel_pytree(params)
    flat = np.asarray(flat)
    value, grad = (np.asarray(a) for a in _value_and_flat_grad(loss_fn, params))
    norm = float(np.linalg.norm(grad))
    taken = 0
    while taken < newton_steps and norm > target and np.isfinite(norm):
        matrix, _ = hessian_matrix(loss_fn, unravel(jnp.asarray(flat)), max_bytes=max_bytes)
        direction, convex = _newton_direction(np.asarray(matrix), grad)
        for _ in range(21):
            trial = flat + direction
            t_value, t_grad = (
                np.asarray(a) for a in _value_and_flat_grad(loss_fn, unravel(jnp.asarray(trial)))
            )
            t_norm = float(np.linalg.norm(t_grad))
            if t_value < value or (convex and t_norm < norm):
                break
            direction = 0.5 * direction
        else:
            break  # no step along the Newton direction lowers ‖∇E‖: round-off reached
        flat, value, grad, norm, taken = trial, t_value, t_grad, t_norm, taken + 1
    params = unravel(jnp.asarray(flat))
    spec = spectrum(loss_fn, params, vectors=True, max_bytes=max_bytes)
    converged = norm <= target
    where = f"‖∇E‖ = {norm:.3g} after {taken} Newton steps"
    if not converged:
        where += f" (target {target:.3g} not reached)"
    if spec.kind == "minimum":
        report = f"strict minimum: {where}; κ = {spec.condition_number:.4g}"
    elif spec.kind == "saddle":
        report = (
            f"saddle point, not a minimum: {where}; {spec.n_negative} of {size} "
            f"Hessian eigenvalues are negative (λmin = {spec.lambda_min:.3g}); start "
            f"elsewhere, or step along the eigenvector of λmin to leave it"
        )
    elif spec.kind == "degenerate":
        report = (
            f"degenerate critical point: {where}; {spec.n_zero} Hessian eigenvalues are "
            f"zero (|λ| ≤ {spec.zero_tol:.2g}), so it is not a strict minimum and κ = inf"
        )
    else:
        report = f"maximum, not a minimum: {where}; every Hessian eigenvalue is negative"
    return Minimum(
        params=params,
        loss=float(value),
        grad_norm=norm,
        converged=converged,
        newton_steps=taken,
        spectrum=spec,
        kind=spec.kind,
        report=report,
    )
