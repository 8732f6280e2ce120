"""jaxnn.normalization: data standardisation, batch norm and layer norm, alone and in models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import identity_readout

import jaxnn
from jaxnn import datasets, normalization

SIZES = [5, 7, 6, 3]


@pytest.fixture(scope="module")
def x():
    return jax.random.normal(jax.random.key(1), (16, SIZES[0]))


def test_batch_norm_training_normalises_each_feature(x):
    m = jaxnn.mlp([5, 6, 6], activation="identity", batch_norm=True, norm_delta=1e-8)
    p, state = m.init(jax.random.key(6))
    assert set(p[0]) == {"w", "gamma", "beta"}  # the batch mean removes any bias
    out, _ = m.apply(identity_readout(p), state, 3.0 * x + 2.0, train=True)
    np.testing.assert_allclose(jnp.mean(out, axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(jnp.var(out, axis=0), 1.0, rtol=1e-4)


def test_batch_norm_running_averages_and_inference(x):
    alpha, delta = 0.8, 1e-3
    m = jaxnn.mlp([5, 4, 2], activation="tanh", batch_norm=True, bn_alpha=alpha, norm_delta=delta)
    p, state = m.init(jax.random.key(7))
    p[0]["gamma"] = jnp.array([1.0, 2.0, 0.5, 1.5])
    p[0]["beta"] = jnp.array([0.1, -0.2, 0.3, 0.0])
    _, state1 = m.apply(p, state, x, train=True)
    a = np.asarray(x, np.float64) @ np.asarray(p[0]["w"], np.float64)
    mu, var = a.mean(0), a.var(0)  # biased (1/K) batch variance
    np.testing.assert_allclose(
        state1["batch_norm"][0]["mean"], (1 - alpha) * mu, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(state1["batch_norm"][0]["var"], alpha + (1 - alpha) * var, rtol=1e-5)
    # inference normalises with the running averages, and leaves them alone
    out, state2 = m.apply(p, state1, x, train=False)
    assert state2 is state1
    rm, rv = (np.asarray(state1["batch_norm"][0][k]) for k in ("mean", "var"))
    z = np.tanh(
        np.asarray(p[0]["gamma"]) * (a - rm) / np.sqrt(rv + delta) + np.asarray(p[0]["beta"])
    )
    np.testing.assert_allclose(
        out, z @ np.asarray(p[1]["w"]) + np.asarray(p[1]["b"]), rtol=1e-4, atol=1e-5
    )
    # at inference an example's output does not depend on the rest of the batch
    np.testing.assert_allclose(
        m.apply(p, state1, x[:1], train=False)[0][0], out[0], rtol=1e-5, atol=1e-6
    )


def test_layer_norm_normalises_each_example(x):
    m = jaxnn.mlp([5, 8, 8], activation="identity", layer_norm=True, norm_delta=1e-8)
    p, state = m.init(jax.random.key(8))
    assert set(p[0]) == {"w", "b", "gamma", "beta"} and state == {}
    out, new_state = m.apply(identity_readout(p), state, 5.0 * x, train=True)
    np.testing.assert_allclose(jnp.mean(out, axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(jnp.var(out, axis=1), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(out, m.apply(identity_readout(p), state, 5.0 * x, train=False)[0])
    assert new_state == {}


def test_normalization_functions_directly():
    a = jax.random.normal(jax.random.key(16), (32, 3)) * jnp.array([1.0, 10.0, 0.1]) + 4.0
    gamma, beta = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 1.0, -1.0])
    params, running = normalization.init_batch_norm(3)
    out, new = normalization.batch_norm(a, gamma, beta, running, train=True, alpha=0.5, delta=1e-6)
    np.testing.assert_allclose(jnp.mean(out, 0), beta, atol=1e-4)
    np.testing.assert_allclose(jnp.std(out, 0), gamma, rtol=1e-3)
    np.testing.assert_allclose(new["mean"], 0.5 * jnp.mean(a, 0), rtol=1e-5)
    ln = normalization.layer_norm(a, params["gamma"], params["beta"], delta=1e-8)
    np.testing.assert_allclose(jnp.mean(ln, 1), 0.0, atol=1e-5)
    np.testing.assert_allclose(jnp.var(ln, 1), 1.0, rtol=1e-4)


def test_standardized_uses_training_statistics_and_handles_constant_features():
    train = datasets.Dataset(
        jnp.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]]), jnp.zeros(3)
    )
    test = datasets.Dataset(jnp.array([[3.0, 7.0, 5.0]]), jnp.zeros(1))
    tr, te, stats = datasets.standardized(train, test)
    np.testing.assert_allclose(stats.mean, [3.0, 5.0, 5.0])
    np.testing.assert_allclose(stats.std, [np.sqrt(8 / 3), 1.0, np.sqrt(26 / 3)], rtol=1e-6)
    np.testing.assert_allclose(jnp.mean(tr.x, 0), 0.0, atol=1e-6)
    np.testing.assert_allclose(jnp.std(tr.x, 0), [1.0, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(te.x, [[0.0, 2.0, 0.0]], atol=1e-6)  # test uses train's mu, sigma


def test_fit_standardizer_directly():
    stats = normalization.fit_standardizer(np.array([[0.0], [2.0]]))
    np.testing.assert_allclose(normalization.standardize(np.array([[4.0]]), stats), [[3.0]])
