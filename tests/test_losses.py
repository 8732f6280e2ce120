"""Losses and penalties against hand-computed values and the seeds' gradient formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxnn
from jaxnn import datasets, losses


def sigmoid(a):
    return 0.5 * (1.0 + math.tanh(0.5 * a))  # = 1/(1 + e^-a), without overflow


def test_quadratic_hand_value():
    pred = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    # example 1: 1/2 (1 + 4) = 2.5; example 2: 0; mean 1.25
    assert float(losses.quadratic(pred, jnp.zeros((2, 2)))) == pytest.approx(1.25)
    assert float(losses.quadratic(jnp.array([3.0]), jnp.array([1.0]))) == pytest.approx(2.0)


def test_binary_cross_entropy_matches_formula():
    a = jax.random.normal(jax.random.key(0), (6, 3)) * 3
    y = jax.random.bernoulli(jax.random.key(1), 0.5, (6, 3)).astype(jnp.float32)
    s = 1 / (1 + np.exp(-np.asarray(a, np.float64)))
    yn = np.asarray(y)
    want = np.mean(-np.sum(yn * np.log(s) + (1 - yn) * np.log(1 - s), axis=1))
    assert float(losses.binary_cross_entropy(a, y)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("logit", [100.0, -100.0, 1000.0, -1000.0])
@pytest.mark.parametrize("target", [0.0, 1.0])
def test_binary_cross_entropy_is_stable_for_large_logits(logit, target):
    a, y = jnp.array([logit]), jnp.array([target])
    value, grad = jax.value_and_grad(losses.binary_cross_entropy)(a, y)
    wrong = (logit > 0) != (target > 0.5)
    # -ln sigma(-|a|) = |a| + ln(1 + e^-|a|) when wrong, about e^-|a| when right
    assert float(value) == pytest.approx(abs(logit) if wrong else 0.0, abs=1e-6)
    assert float(grad[0]) == pytest.approx(sigmoid(logit) - target, abs=1e-6)


def test_softmax_cross_entropy_int_and_one_hot():
    a = jax.random.normal(jax.random.key(2), (5, 4)) * 4
    labels = jnp.array([0, 3, 1, 1, 2])
    log_softmax = np.asarray(a) - np.log(np.sum(np.exp(np.asarray(a)), axis=1, keepdims=True))
    want = -np.mean(log_softmax[np.arange(5), np.asarray(labels)])
    assert float(losses.softmax_cross_entropy(a, labels)) == pytest.approx(want, rel=1e-5)
    assert float(losses.softmax_cross_entropy(a, jax.nn.one_hot(labels, 4))) == pytest.approx(
        want, rel=1e-5
    )
    big = jnp.array([[1000.0, 0.0, -1000.0]])
    assert float(losses.softmax_cross_entropy(big, jnp.array([1]))) == pytest.approx(1000.0)


# ---- notes 001: the single sigmoid neuron, x = 1 -> y = 0 ----


def _neuron_grads(cost, w, b):
    x, y = datasets.single_neuron()
    params = datasets.single_neuron_params(w, b)
    g = jax.grad(lambda p: cost(jaxnn.forward(p, x), y))(params)
    return float(g[0]["w"][0, 0]), float(g[0]["b"][0])


quadratic_cost = lambda a, y: losses.quadratic(jax.nn.sigmoid(a), y)


@pytest.mark.parametrize("w,b", [(0.6, 0.9), (2.0, 2.0)])
def test_single_neuron_quadratic_gradients(w, b):
    a = w * 1.0 + b
    z = sigmoid(a)
    dw, db = _neuron_grads(quadratic_cost, w, b)
    assert dw == pytest.approx((z - 0.0) * z * (1 - z) * 1.0, rel=1e-5)  # (z-y) s'(a) x
    assert db == pytest.approx((z - 0.0) * z * (1 - z), rel=1e-5)  # (z-y) s'(a)
    # Erratum: the seed writes dC/db = z s'(z); with s'(z) it would be wrong.
    assert db != pytest.approx(z * sigmoid(z) * (1 - sigmoid(z)), rel=0.05)


@pytest.mark.parametrize("w,b", [(0.6, 0.9), (2.0, 2.0)])
def test_single_neuron_cross_entropy_gradients(w, b):
    z = sigmoid(w + b)
    dw, db = _neuron_grads(losses.binary_cross_entropy, w, b)
    assert dw == pytest.approx(1.0 * (z - 0.0), rel=1e-6)  # x (s(a) - y)
    assert db == pytest.approx(z - 0.0, rel=1e-6)


def test_single_neuron_slow_learning():
    # Starting at w = b = 2 (z = s(4) = 0.982, badly wrong), the quadratic cost's gradient
    # is 7x smaller than at w=0.6, b=0.9, while the cross-entropy's is larger.
    q_good, _ = _neuron_grads(quadratic_cost, 0.6, 0.9)
    q_bad, _ = _neuron_grads(quadratic_cost, 2.0, 2.0)
    ce_good, _ = _neuron_grads(losses.binary_cross_entropy, 0.6, 0.9)
    ce_bad, _ = _neuron_grads(losses.binary_cross_entropy, 2.0, 2.0)
    assert q_good == pytest.approx(0.121938, abs=2e-6)
    assert q_bad == pytest.approx(0.017345, abs=2e-6)
    assert ce_bad > ce_good


def test_softmax_log_likelihood_delta_is_z_minus_y():
    params = jaxnn.init_mlp(jax.random.key(3), [4, 5, 3], init="normal", bias_init="normal")
    x = jax.random.normal(jax.random.key(4), (1, 4))
    label = jnp.array([2])
    logits, (hidden,) = jaxnn.forward(params, x, return_hidden=True)
    z = jax.nn.softmax(logits[0])
    y = jax.nn.one_hot(2, 3)
    delta = jax.grad(lambda a: losses.softmax_cross_entropy(a, label))(logits)[0]
    np.testing.assert_allclose(delta, z - y, atol=1e-6)
    g = jax.grad(lambda p: losses.softmax_cross_entropy(jaxnn.forward(p, x), label))(params)
    np.testing.assert_allclose(g[-1]["b"], z - y, atol=1e-6)  # dC/db_j = z_j - y_j
    np.testing.assert_allclose(g[-1]["w"], jnp.outer(hidden[0], z - y), atol=1e-6)


# ---- penalties ----


@pytest.fixture(scope="module")
def params():
    return jaxnn.init_mlp(jax.random.key(5), [3, 4, 2], bias_init="normal")


def test_l2_penalty_value_and_gradient(params):
    lam, n = 0.5, 10
    sum_sq = sum(float(jnp.sum(l["w"] ** 2)) for l in params)
    assert float(losses.l2_penalty(params, lam, n)) == pytest.approx(
        lam / (2 * n) * sum_sq, rel=1e-5
    )
    g = jax.grad(losses.l2_penalty)(params, lam, n)
    for layer, gl in zip(params, g):
        np.testing.assert_allclose(gl["w"], lam / n * layer["w"], rtol=1e-6)  # (lam/n) w
        np.testing.assert_array_equal(gl["b"], 0.0)  # biases are not penalised


def test_l1_penalty_value_and_gradient(params):
    lam, n = 0.3, 7
    total = sum(float(jnp.sum(jnp.abs(l["w"]))) for l in params)
    assert float(losses.l1_penalty(params, lam, n)) == pytest.approx(lam / n * total, rel=1e-5)
    g = jax.grad(losses.l1_penalty)(params, lam, n)
    np.testing.assert_allclose(g[0]["w"], lam / n * jnp.sign(params[0]["w"]), rtol=1e-6)
    np.testing.assert_array_equal(g[0]["b"], 0.0)


def test_penalty_mask_and_foreign_pytrees():
    flax_like = {"Dense_0": {"kernel": jnp.full((2, 3), 2.0), "bias": jnp.ones(3)}}
    assert jaxnn.weight_mask(flax_like) == {"Dense_0": {"bias": False, "kernel": True}}
    assert float(losses.l2_penalty(flax_like, 1.0, 1)) == pytest.approx(0.5 * 6 * 4)
    everything = jax.tree.map(lambda _: True, flax_like)
    assert float(losses.l2_penalty(flax_like, 1.0, 1, mask=everything)) == pytest.approx(
        0.5 * (24 + 3)
    )


def test_softmax_loss_with_weight_penalty_has_a_zero_eigenvalue():
    # Adding the same constant to every output bias leaves softmax unchanged.
    params = jaxnn.init_mlp(jax.random.key(6), [3, 4, 3], bias_init="small")
    x = jax.random.normal(jax.random.key(7), (8, 3))
    labels = jnp.arange(8) % 3
    flat, unravel = ravel_pytree(params)

    def loss(v):
        p = unravel(v)
        return losses.softmax_cross_entropy(jaxnn.forward(p, x), labels) + losses.l2_penalty(
            p, 0.1, 8
        )

    h = jax.jit(jax.hessian(loss))(flat)
    shift = [jax.tree.map(jnp.zeros_like, l) for l in params]
    shift[-1]["b"] = jnp.ones(3)
    v, _ = ravel_pytree(shift)
    np.testing.assert_allclose(h @ v, 0.0, atol=1e-5)
    assert float(jnp.max(jnp.abs(h))) > 1e-2


def test_accuracy():
    logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 0.5, 3.0], [1.0, 2.0, 0.0], [5.0, 0.0, 0.0]])
    labels = jnp.array([0, 2, 0, 0])
    assert float(losses.accuracy(logits, labels)) == pytest.approx(0.75)
    assert float(losses.accuracy(logits, jax.nn.one_hot(labels, 3))) == pytest.approx(0.75)
    assert float(
        losses.accuracy(jnp.array([1.5, -2.0, 0.3]), jnp.array([1.0, 1.0, 0.0]))
    ) == pytest.approx(1 / 3)
    assert float(
        losses.accuracy(jnp.array([[1.5], [-2.0]]), jnp.array([[1], [0]]))
    ) == pytest.approx(1.0)


def test_losses_under_jit_and_vmap():
    a = jax.random.normal(jax.random.key(8), (3, 5, 4))
    labels = jnp.array([[0, 1, 2, 3, 0]] * 3)
    per_batch = jax.jit(jax.vmap(losses.softmax_cross_entropy))(a, labels)
    np.testing.assert_allclose(
        per_batch[1], losses.softmax_cross_entropy(a[1], labels[1]), rtol=1e-6
    )
