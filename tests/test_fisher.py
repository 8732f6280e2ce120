"""Fisher, empirical Fisher and principal angles against dense float64 computations:
per-example Jacobians and gradients formed explicitly, the GGN, and scipy's angles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

import jaxnn
from jaxnn import datasets, losses, spectral

pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest.py)


SPIRALS = datasets.spirals(30, classes=3, key=jax.random.key(0))
X, Y = np.asarray(SPIRALS.x, np.float64), np.asarray(SPIRALS.y)
N = X.shape[0]


def model_fn(params, x):
    return jaxnn.forward(params, x, activation="tanh")


def _setup():
    params = jaxnn.init_mlp(jax.random.key(1), (2, 6, 3), dtype=jnp.float64)
    flat, unravel = ravel_pytree(params)
    # per-example Jacobians of the outputs, (n, K, P)
    jac = np.asarray(jax.jacobian(lambda w: model_fn(unravel(w), X))(flat))
    probs = np.asarray(jax.nn.softmax(model_fn(params, X), axis=-1))
    return params, unravel, jac, probs


def _dense(op, params, unravel, size):
    """The matrix of a Curvature, its columns the products with the unit vectors."""
    column = lambda e: ravel_pytree(op.matvec(params, unravel(e)))[0]
    return np.asarray(jax.jit(jax.vmap(column))(jnp.eye(size))).T


def test_exact_fisher_is_the_sum_of_jacobian_products_and_the_ggn():
    params, unravel, jac, probs = _setup()
    size = jac.shape[-1]
    lam = np.stack([np.diag(p) - np.outer(p, p) for p in probs])
    categorical = np.einsum("nkp,nkl,nlq->pq", jac, lam, jac) / N
    gaussian = np.einsum("nkp,nkq->pq", jac, jac) / N
    for likelihood, expected, loss in (
        ("categorical", categorical, lambda o: losses.softmax_cross_entropy(o, Y)),
        ("gaussian", gaussian, lambda o: losses.quadratic(o, jnp.zeros_like(o))),
    ):
        op = spectral.fisher(model_fn, (X, Y), likelihood=likelihood)
        got = _dense(op, params, unravel, size)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)
        ggn = spectral.gauss_newton(lambda p: model_fn(p, X), loss)
        np.testing.assert_allclose(_dense(ggn, params, unravel, size), expected, atol=1e-12)
        top = spectral.top_eigenvalues(op, params, 2, key=jax.random.key(0), tol=1e-10)
        np.testing.assert_allclose(top.values, np.linalg.eigvalsh(expected)[::-1][:2], rtol=1e-8)


def test_gauss_newton_and_class_means_of_the_cnn_spectrum_experiment():
    # experiments/cnn_spectrum.py: G from per-example Jacobians against the GGN operator's
    # dense matrix, and the class-means matrix M against its definition summed class pair
    # by class pair (Papyan 2019), with M ⪯ G
    from experiments.cnn_spectrum import class_means, gauss_newton, jacobians

    params, unravel, _, _ = _setup()
    flat = ravel_pytree(params)[0]
    jac, probs = jacobians(lambda w, xi: model_fn(unravel(w), xi[None])[0], flat, jnp.asarray(X))
    loss = lambda o: losses.softmax_cross_entropy(o, Y)
    dense = _dense(
        spectral.gauss_newton(lambda q: model_fn(q, X), loss), params, unravel, flat.size
    )
    g_values = np.linalg.eigvalsh(dense)[::-1]
    np.testing.assert_allclose(gauss_newton(jac, probs), g_values, atol=1e-12 * g_values[0])
    jac, probs = np.asarray(jac), np.asarray(probs)
    classes = probs.shape[1]
    m = np.zeros_like(dense)
    for c in range(classes):
        members = np.flatnonzero(np.equal(Y, c))
        for d in range(classes):
            g = np.stack([jac[i].T @ (np.eye(classes)[d] - probs[i]) for i in members])
            w = probs[members, d]
            delta = (w[:, None] * g).sum(axis=0) / w.sum()
            m += w.sum() / N * np.outer(delta, delta)
    want = np.linalg.eigvalsh(m)[::-1]
    got = class_means(jnp.asarray(jac), jnp.asarray(probs), Y)
    np.testing.assert_allclose(got, want[: classes * classes], atol=1e-12 * want[0])
    assert np.all(want <= g_values + 1e-12 * g_values[0])  # G − M is a sum of covariances


def test_empirical_fisher_is_the_mean_outer_product_of_per_example_gradients():
    params, unravel, _, _ = _setup()
    flat = ravel_pytree(params)[0]
    per_example = jax.vmap(
        lambda x, y: jax.grad(
            lambda w: losses.softmax_cross_entropy(model_fn(unravel(w), x[None]), y[None])
        )(flat)
    )(X, Y)
    g = np.asarray(per_example)
    expected = g.T @ g / N
    op = spectral.empirical_fisher(model_fn, losses.softmax_cross_entropy, (X, Y))
    np.testing.assert_allclose(
        _dense(op, params, unravel, flat.size), expected, rtol=1e-10, atol=1e-14
    )
    # its trace is the mean squared per-example gradient norm
    est = spectral.hutchinson_trace(op, params, key=jax.random.key(0), probes=300)
    assert abs(est.trace - np.trace(expected)) < 4 * est.stderr


def test_monte_carlo_fisher_samples_the_model_and_is_unbiased():
    params, unravel, jac, probs = _setup()
    size = jac.shape[-1]
    key = jax.random.key(3)
    # one sampled label per example: F̂ = (1/n) Σ gᵢgᵢᵀ with gᵢ = Jᵢᵀ(pᵢ − e_ŷᵢ)
    labels = np.asarray(jax.random.categorical(key, model_fn(params, X), axis=-1))
    g = np.einsum("nkp,nk->np", jac, probs - np.eye(3)[labels])
    op = spectral.fisher(model_fn, (X, Y), likelihood="categorical", key=key)
    np.testing.assert_allclose(_dense(op, params, unravel, size), g.T @ g / N, atol=1e-13)
    # E F̂ = F: vᵀF̂v over 500 keys, within 4 standard errors of vᵀFv
    v = unravel(jnp.asarray(np.random.default_rng(0).standard_normal(size)))
    lam = np.stack([np.diag(p) - np.outer(p, p) for p in probs])
    for likelihood, exact_matrix in (
        ("categorical", np.einsum("nkp,nkl,nlq->pq", jac, lam, jac) / N),
        ("gaussian", np.einsum("nkp,nkq->pq", jac, jac) / N),
    ):
        flat_v = np.asarray(ravel_pytree(v)[0])
        exact = flat_v @ exact_matrix @ flat_v

        def quadratic(k, likelihood=likelihood):
            mc = spectral.fisher(model_fn, (X, Y), likelihood=likelihood, key=k)
            return ravel_pytree(mc.matvec(params, v))[0] @ ravel_pytree(v)[0]

        samples = np.asarray(jax.vmap(quadratic)(jax.random.split(jax.random.key(4), 500)))
        stderr = samples.std(ddof=1) / np.sqrt(samples.size)
        assert abs(samples.mean() - exact) < 4 * stderr


def test_principal_angles_against_scipy():
    rng = np.random.default_rng(0)
    like = jaxnn.init_mlp(jax.random.key(1), (2, 6, 3), dtype=jnp.float64)
    unravel = ravel_pytree(like)[1]
    size = ravel_pytree(like)[0].size
    a = rng.standard_normal((size, 4))
    b = np.concatenate([a[:, :2] @ rng.standard_normal((2, 2)), rng.standard_normal((size, 1))], 1)
    u = [unravel(jnp.asarray(c)) for c in a.T]
    v = [unravel(jnp.asarray(c)) for c in b.T]
    got = np.asarray(spectral.principal_angles(u, v))
    expected = np.sort(np.cos(scipy.linalg.subspace_angles(a, b)))[::-1]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert got.shape == (3,)
    np.testing.assert_allclose(got[:2], 1.0, atol=1e-12)  # two shared directions
    np.testing.assert_allclose(jax.jit(spectral.principal_angles)(u, u), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (
            lambda: spectral.fisher(model_fn, (X, Y), likelihood="poisson"),
            ValueError,
            r"likelihood must be one of \['categorical', 'gaussian'\], got 'poisson'",
        ),
        (
            lambda: spectral.empirical_fisher(model_fn, losses.softmax_cross_entropy, (X, Y[:5])),
            ValueError,
            "x and y must have the same number of rows",
        ),
        (
            lambda: spectral.empirical_fisher(model_fn, losses.softmax_cross_entropy, X),
            TypeError,
            r"data must be a pair \(x, y\)",
        ),
        (
            lambda: spectral.fisher(model_fn, np.where(X > 0.5, np.nan, X)),
            ValueError,
            r"data \(x\) must be finite",
        ),
        (
            lambda: spectral.principal_angles([jnp.ones(3)], [{"w": jnp.ones(3)}]),
            ValueError,
            "u and v must hold vectors of the same structure",
        ),
        (
            lambda: spectral.principal_angles(jnp.ones((2, 3)), [jnp.ones(3)]),
            TypeError,
            "u and v must each be a non-empty list",
        ),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
