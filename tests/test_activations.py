"""Activations against their formulas, written out in NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import activations

A = np.linspace(-6.0, 6.0, 49, dtype=np.float32)

REFERENCE = {
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
    "identity": lambda a: a,
    "softmax": lambda a: np.exp(a - a.max()) / np.exp(a - a.max()).sum(),
}


@pytest.mark.parametrize("name", activations.NAMES)
def test_matches_formula(name):
    np.testing.assert_allclose(
        activations.get(name)(jnp.asarray(A)), REFERENCE[name](A), rtol=1e-5, atol=1e-7
    )


def test_sigmoid_derivative_is_sigma_times_one_minus_sigma():
    s = activations.sigmoid(A)
    np.testing.assert_allclose(
        jax.vmap(jax.grad(activations.sigmoid))(A), s * (1 - s), rtol=1e-5, atol=1e-7
    )


def test_softmax_is_a_distribution_and_shift_invariant():
    a = jax.random.normal(jax.random.key(0), (4, 7))
    z = activations.softmax(a)
    np.testing.assert_allclose(jnp.sum(z, axis=-1), 1.0, rtol=1e-6)
    assert bool(jnp.all((z > 0) & (z < 1)))
    np.testing.assert_allclose(activations.softmax(a + 100.0), z, rtol=1e-5)


def test_get_names_and_errors():
    assert activations.get("relu") is activations.relu
    fn = lambda a: 2 * a
    assert activations.get(fn) is fn
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'.*'relu'"):
        activations.get("gelu")
    with pytest.raises(TypeError, match="activation must be a name"):
        activations.get(3)
