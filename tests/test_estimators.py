"""Hutch++ and the diagonal estimator against exact traces and diagonals (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import datasets, hessian, losses, spectral

pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest.py)


def test_hutchpp_beats_hutchinson_at_equal_matvecs_when_a_few_eigenvalues_dominate():
    """Five outliers over a bulk of 195 small eigenvalues, 30 products each, 40 seeds:
    both unbiased (mean within 4 standard errors of tr A), Hutch++'s RMS error far below."""
    lam = np.concatenate([[200.0, 150.0, 120.0, 100.0, 80.0], np.linspace(0.0, 1.0, 195)])
    bowl = datasets.quadratic_bowl(jnp.asarray(lam), key=jax.random.key(0))
    w = jnp.zeros(lam.size)
    exact = lam.sum()
    hpp, hutch = [], []
    for seed in range(40):
        key = jax.random.key(seed)
        hpp.append(float(spectral.hutchpp_trace(bowl.loss, w, key=key, matvecs=30).trace))
        hutch.append(spectral.hutchinson_trace(bowl.loss, w, key=key, probes=30).trace)
    hpp, hutch = np.asarray(hpp) - exact, np.asarray(hutch) - exact
    for err in (hpp, hutch):
        assert abs(err.mean()) < 4 * err.std(ddof=1) / np.sqrt(err.size)
    rms = lambda e: np.sqrt(np.mean(e**2))
    assert rms(hpp) < 0.2 * rms(hutch)


def test_hutchpp_on_an_mlp_and_per_layer_through_mask():
    moons = datasets.moons(40, key=jax.random.key(0))
    x, y = np.asarray(moons.x, np.float64), np.asarray(moons.y)
    params = jaxnn.init_mlp(jax.random.key(1), (2, 8, 2), dtype=jnp.float64)

    def loss(p):
        return losses.softmax_cross_entropy(jaxnn.forward(p, x, activation="tanh"), y)

    h = np.asarray(hessian.hessian_matrix(loss, params)[0])
    est = spectral.hutchpp_trace(loss, params, key=jax.random.key(2), matvecs=60)
    assert abs(float(est.trace) - np.trace(h)) < 4 * float(est.stderr)
    assert est.samples.shape == (60 - 2 * 20,)
    # the last layer's block: ravel order is layer 0 {b (8), w (16)}, layer 1 {b (2), w (16)}
    last = spectral.hutchpp_trace(
        loss, params, key=jax.random.key(2), matvecs=60, mask=lambda path: path.startswith("[1]")
    )
    assert abs(float(last.trace) - np.trace(h[24:, 24:])) < 4 * float(last.stderr) + 1e-10
    jitted = jax.jit(lambda p: spectral.hutchpp_trace(loss, p, key=jax.random.key(2), matvecs=60))
    np.testing.assert_allclose(jitted(params).trace, est.trace, rtol=1e-10)


def test_hessian_diagonal_is_exact_for_a_diagonal_matrix_and_unbiased_otherwise():
    d = jnp.array([3.0, -1.0, 0.5, 2.0])
    est = spectral.hessian_diagonal(
        lambda w: 0.5 * jnp.sum(d * w * w), jnp.ones(4), key=jax.random.key(0), probes=5
    )
    np.testing.assert_allclose(est.diagonal, d, rtol=1e-14)
    np.testing.assert_allclose(est.stderr, 0.0, atol=1e-14)
    # a dense Hessian: each entry within 4 standard errors, the standard errors as predicted
    moons = datasets.moons(40, key=jax.random.key(0))
    x, y = np.asarray(moons.x, np.float64), np.asarray(moons.y)
    params = jaxnn.init_mlp(jax.random.key(1), (2, 8, 2), dtype=jnp.float64)

    def loss(p):
        return losses.softmax_cross_entropy(jaxnn.forward(p, x, activation="tanh"), y)

    h = np.asarray(hessian.hessian_matrix(loss, params)[0])
    probes = 400
    est = spectral.hessian_diagonal(loss, params, key=jax.random.key(3), probes=probes)
    flat = jax.flatten_util.ravel_pytree
    got, err = np.asarray(flat(est.diagonal)[0]), np.asarray(flat(est.stderr)[0])
    assert jax.tree.structure(est.diagonal) == jax.tree.structure(params)
    np.testing.assert_array_less(np.abs(got - np.diag(h)), 4 * err + 1e-12)
    predicted = np.sqrt((np.sum(h**2, axis=1) - np.diag(h) ** 2) / probes)  # Σ_{j≠i} A²ᵢⱼ
    np.testing.assert_allclose(err, predicted, rtol=0.25, atol=1e-12)


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda: spectral.hutchpp_trace(
                lambda w: w @ w, jnp.ones(5), key=jax.random.key(0), matvecs=5
            ),
            "matvecs must be an int >= 6",
        ),
        (
            lambda: spectral.hessian_diagonal(
                lambda w: w @ w, jnp.ones(5), key=jax.random.key(0), probes=1
            ),
            "probes must be an int >= 2",
        ),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
