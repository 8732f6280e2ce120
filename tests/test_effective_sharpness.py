"""Effective sharpness: an adaptive optimiser's D against its own steps, D^{-1/2} H D^{-1/2}
against the dense float64 Hessian, Adam's threshold against its recurrence, and the hook."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import jaxnn
from jaxnn import datasets, hessian, losses, optimizers, rates, spectral, train

pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest.py)


MOONS = datasets.moons(40, key=jax.random.key(0))
X, Y = np.asarray(MOONS.x, np.float64), np.asarray(MOONS.y)


def loss(params):
    return losses.softmax_cross_entropy(jaxnn.forward(params, X, activation="tanh"), Y)


def _params():
    return jaxnn.init_mlp(jax.random.key(1), (2, 5, 2), dtype=jnp.float64)


def _steps(opt, n=7):
    """n optimiser steps; returns the params before and after the last, its gradient and
    the state after it."""
    params, state = _params(), opt.init(_params())
    grad = before = None
    for _ in range(n):
        grad = jax.grad(loss)(params)
        update, state = opt.update(grad, state, params)
        before, params = params, optax.apply_updates(params, update)
    return before, params, grad, state


@pytest.mark.parametrize("name", ["adagrad", "rmsprop", "adam"])
def test_preconditioner_is_the_diagonal_the_last_step_divided_by(name):
    lr, eps = 0.05, 1e-3  # a large ε, so that leaving it out would show
    opt = optimizers.get(name, lr, eps=eps)
    before, after, grad, state = _steps(opt)
    d = optimizers.preconditioner(state)
    step = ravel_pytree(after)[0] - ravel_pytree(before)[0]
    if name == "adam":  # m̂ = m/(1 − β₁^τ), from the state
        inner = optimizers.adaptive(state)[1]
        m = ravel_pytree(inner.mu)[0] / (1 - 0.9 ** int(inner.count))
    else:
        m = ravel_pytree(grad)[0]
    np.testing.assert_allclose(step, -lr * m / ravel_pytree(d)[0], rtol=1e-12)
    assert jax.tree.structure(d) == jax.tree.structure(after)
    # a plain optax state needs ε (and β₂) named
    plain = optax.adam(lr, eps=eps).init(after)
    with pytest.raises(ValueError, match=r"has taken no step yet|does not record"):
        optimizers.preconditioner(plain)


def test_preconditioned_eigenvalues_are_those_of_the_dense_matrix():
    _, params, _, state = _steps(optimizers.adam(0.05), n=20)
    d = optimizers.preconditioner(state)
    h = np.asarray(hessian.hessian_matrix(loss, params)[0])
    s = 1 / np.sqrt(np.asarray(ravel_pytree(d)[0]))
    exact = np.linalg.eigvalsh(s[:, None] * h * s[None, :])
    op = spectral.preconditioned(loss, d)
    top = spectral.top_eigenvalues(op, params, 3, key=jax.random.key(0), tol=1e-10)
    assert np.asarray(top.converged).all()
    np.testing.assert_allclose(top.values, exact[::-1][:3], rtol=1e-8)
    # the same operator from a Curvature (the GGN would do as well)
    again = spectral.preconditioned(spectral.hessian_curvature(loss), d)
    v = jax.tree.map(jnp.ones_like, params)
    np.testing.assert_allclose(
        ravel_pytree(again.matvec(params, v))[0], s * (h @ (s * np.ones_like(s))), rtol=1e-10
    )


def test_adam_threshold_is_where_its_recurrence_turns_unstable():
    """m ← β₁m + (1 − β₁)λx, x ← x − ηm on a 1-D quadratic of (preconditioned) curvature λ:
    bounded below λ = (2 + 2β₁)/((1 − β₁)η), growing above (38/η at β₁ = 0.9)."""
    lr, b1 = 0.01, 0.9
    edge = rates.max_stable_lr(lr, b1, ema=True)
    assert edge == pytest.approx(38 / lr, rel=1e-12)

    def final(lam, steps=1000):
        x, m = 1.0, 0.0
        for _ in range(steps):
            m = b1 * m + (1 - b1) * lam * x
            x = x - lr * m
        return abs(x)

    assert final(0.98 * edge) < 1.0 < final(1.02 * edge)


def test_preconditioned_sharpness_hook_matches_the_dense_value_inside_fit():
    opt = optimizers.adam(0.02)
    objective = lambda p, s, batch, k: (loss(p), s)
    hook = spectral.sharpness_hook(
        objective, None, every=6, iters=2000, tol=1e-13, key=jax.random.key(0), preconditioned=True
    )
    run = train.fit(
        objective, _params(), opt, None, key=jax.random.key(0), steps=13, hooks={"eff": hook}
    )
    rec = run.history["hooks"]["eff"].record
    assert np.isnan(rec["sharpness"][0])  # step 0: no D yet
    np.testing.assert_allclose(rec["threshold"], 2 * 1.9 / (0.1 * 0.02), rtol=1e-12)
    for i, step in enumerate((6, 12)):  # the params and state before step `step`
        then = train.fit(objective, _params(), opt, None, key=jax.random.key(0), steps=step)
        d = np.asarray(ravel_pytree(optimizers.preconditioner(then.opt_state))[0])
        h = np.asarray(hessian.hessian_matrix(loss, then.params)[0])
        lam = np.linalg.eigvalsh(h / np.sqrt(np.outer(d, d)))
        assert abs(lam[-1]) > abs(lam[0])  # power iteration's |λ| largest is λmax here
        np.testing.assert_allclose(rec["sharpness"][i + 1], lam[-1], rtol=1e-6)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (
            lambda: optimizers.preconditioner(optimizers.sgd(0.1).init(_params())),
            ValueError,
            "no preconditioner",
        ),
        (
            lambda: optimizers.preconditioner(optimizers.momentum(0.1, 0.9).init(_params())),
            ValueError,
            "no preconditioner",
        ),
        (
            lambda: optimizers.preconditioner(optimizers.adam(0.1).init(_params())),
            ValueError,
            "has taken no step yet",
        ),
        (
            lambda: spectral.preconditioned(loss, jax.tree.map(jnp.zeros_like, _params())),
            ValueError,
            r"d \(leaf 0\) must be positive",
        ),
        (
            lambda: spectral.top_eigenvalues(
                spectral.preconditioned(loss, {"w": jnp.ones(3)}),
                _params(),
                1,
                key=jax.random.key(0),
            ),
            ValueError,
            "d must be a pytree shaped like the params",
        ),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
