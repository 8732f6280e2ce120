"""Models: the plain and stateful paths against NumPy, under jit, grad and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import identity_readout
from jax.flatten_util import ravel_pytree

import jaxnn

SIZES = [5, 7, 6, 3]


def numpy_forward(params, x, h=np.tanh):
    pre, post, z = [], [], np.asarray(x, np.float64)
    for layer in params[:-1]:
        a = z @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64)
        z = h(a)
        pre.append(a)
        post.append(z)
    return z @ np.asarray(params[-1]["w"]) + np.asarray(params[-1]["b"]), pre, post


@pytest.fixture(scope="module")
def params():
    return jaxnn.init_mlp(jax.random.key(0), SIZES, init="glorot", bias_init="small")


@pytest.fixture(scope="module")
def x():
    return jax.random.normal(jax.random.key(1), (16, SIZES[0]))


def test_init_mlp_layout(params):
    assert len(params) == 3
    for layer, fan_in, fan_out in zip(params, SIZES[:-1], SIZES[1:]):
        assert set(layer) == {"w", "b"}
        assert layer["w"].shape == (fan_in, fan_out) and layer["b"].shape == (fan_out,)
        assert layer["w"].dtype == jnp.float32
    assert jaxnn.init_mlp(jax.random.key(0), SIZES)[0]["b"].sum() == 0.0  # zero biases


def test_init_mlp_accepts_initializer_functions():
    by_name = jaxnn.init_mlp(jax.random.key(2), SIZES, init="he")
    by_fn = jaxnn.init_mlp(jax.random.key(2), SIZES, init=jaxnn.initializers.he)
    jax.tree.map(np.testing.assert_array_equal, by_name, by_fn)


def test_forward_matches_numpy(params, x):
    ref, _, ref_hidden = numpy_forward(params, x)
    logits, hidden = jaxnn.forward(params, x, return_hidden=True)
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-6)
    assert len(hidden) == 2
    for got, want in zip(hidden, ref_hidden):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(jaxnn.forward(params, x), logits)


def test_forward_single_example_equals_batch_row(params, x):
    np.testing.assert_allclose(
        jaxnn.forward(params, x[3], "relu"), jaxnn.forward(params, x, "relu")[3], rtol=1e-6
    )


def test_hidden_stats_matches_numpy(params, x):
    _, pre, post = numpy_forward(params, x)
    s = jaxnn.hidden_stats(params, x, "tanh", saturation=0.5)
    np.testing.assert_allclose(s.pre_std, [a.std() for a in pre], rtol=1e-5)
    np.testing.assert_allclose(s.pre_second_moment, [np.mean(a**2) for a in pre], rtol=1e-5)
    np.testing.assert_allclose(s.std, [z.std() for z in post], rtol=1e-5)
    np.testing.assert_allclose(s.saturated, [np.mean(np.abs(z) > 0.5) for z in post])


def test_forward_under_jit_grad_vmap(params, x):
    f = jax.jit(jaxnn.forward, static_argnames=("activation", "return_hidden"))
    np.testing.assert_allclose(
        f(params, x, "sigmoid"), jaxnn.forward(params, x, "sigmoid"), rtol=1e-6
    )
    # vmap over initialisation keys: one compiled init + forward for many networks
    outs = jax.jit(jax.vmap(lambda k: jaxnn.forward(jaxnn.init_mlp(k, SIZES), x)))(
        jax.random.split(jax.random.key(3), 4)
    )
    assert outs.shape == (4, 16, 3)
    np.testing.assert_allclose(
        outs[2],
        jaxnn.forward(jaxnn.init_mlp(jax.random.split(jax.random.key(3), 4)[2], SIZES), x),
        rtol=1e-5,
    )


def test_grad_matches_finite_differences(x):
    with jax.enable_x64(True):
        flat, unravel = ravel_pytree(jaxnn.init_mlp(jax.random.key(4), SIZES, dtype=jnp.float64))
        xs = jnp.asarray(x, jnp.float64)
        loss = jax.jit(lambda v: jnp.sum(jnp.sin(jaxnn.forward(unravel(v), xs))))
        g = jax.grad(loss)(flat)
        eps = 1e-6
        for i in range(0, flat.size, 7):
            e = jnp.zeros_like(flat).at[i].set(eps)
            fd = (loss(flat + e) - loss(flat - e)) / (2 * eps)
            assert float(g[i]) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)


# ---- stateful path ----


def test_plain_mlp_model_equals_forward(x):
    m = jaxnn.mlp(SIZES, activation="relu", init="he")
    p, state = m.init(jax.random.key(5))
    assert state == {}
    jax.tree.map(
        np.testing.assert_array_equal, p, jaxnn.init_mlp(jax.random.key(5), SIZES, init="he")
    )
    for train in (True, False):
        out, new_state = m.apply(p, state, x, train=train)
        np.testing.assert_allclose(out, jaxnn.forward(p, x, "relu"), rtol=1e-6)
        assert new_state == {}


def test_inverted_dropout_function():
    x = jnp.ones((200_000,))
    out = jaxnn.dropout(x, 0.3, key=jax.random.key(9))
    dropped = float(jnp.mean(out == 0))
    assert dropped == pytest.approx(0.3, abs=0.005)  # binomial std 0.001
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)
    np.testing.assert_array_equal(jaxnn.dropout(x, 0.0, key=jax.random.key(9)), x)


def test_dropout_mean_over_keys_equals_inference(x):
    m = jaxnn.mlp([5, 64, 3], activation="tanh", dropout=0.5)
    p, state = m.init(jax.random.key(10))
    inference, _ = m.apply(p, state, x, train=False)
    np.testing.assert_allclose(inference, jaxnn.forward(p, x), rtol=1e-6)  # identity
    keys = jax.random.split(jax.random.key(11), 4000)
    samples = jax.vmap(lambda k: m.apply(p, state, x, train=True, key=k)[0])(keys)
    mean = samples.mean(0)
    stderr = samples.std(0) / np.sqrt(len(keys))
    assert float(jnp.max(jnp.abs(mean - inference) / stderr)) < 5.0
    assert float(jnp.max(samples.std(0))) > 0.05  # it really is random in training


def test_dropout_rate_may_be_traced(x):
    def zero_fraction(rate):
        m = jaxnn.mlp([5, 512, 512], activation="identity", dropout=rate)
        p, state = m.init(jax.random.key(12))
        p = identity_readout(p)
        out, _ = m.apply(p, state, x, train=True, key=jax.random.key(13))
        return jnp.mean(out == 0)

    fractions = jax.jit(jax.vmap(zero_fraction))(jnp.array([0.0, 0.25, 0.5]))
    np.testing.assert_allclose(fractions, [0.0, 0.25, 0.5], atol=0.01)


def test_model_under_jit_grad_vmap(x):
    m = jaxnn.mlp(SIZES, batch_norm=True, dropout=0.2)
    p, state = m.init(jax.random.key(14))
    key = jax.random.key(15)
    step = jax.jit(lambda p, s, x, k: m.apply(p, s, x, train=True, key=k))
    out, new_state = step(p, state, x, key)
    eager, eager_state = m.apply(p, state, x, train=True, key=key)
    np.testing.assert_allclose(out, eager, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), new_state, eager_state)

    def loss(p):
        logits, s = m.apply(p, state, x, train=True, key=key)
        return jnp.mean(logits**2), s

    grads, _ = jax.jit(jax.grad(loss, has_aux=True))(p)
    assert jax.tree.structure(grads) == jax.tree.structure(p)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads[0]["gamma"]).sum()) > 0
    # vmap over a stack of minibatches: each is normalised with its own statistics
    batches = x.reshape(4, 4, SIZES[0])
    outs, states = jax.jit(jax.vmap(lambda b, k: m.apply(p, state, b, train=True, key=k)))(
        batches, jax.random.split(key, 4)
    )
    assert outs.shape == (4, 4, 3) and states["batch_norm"][0]["mean"].shape == (4, 7)
    np.testing.assert_allclose(
        outs[1], step(p, state, batches[1], jax.random.split(key, 4)[1])[0], rtol=1e-5, atol=1e-6
    )


def test_signal_propagation_closed_forms():
    # ReLU with He's variance 2/M: q stays at M·(2/M)·E[x²] = 2; E[relu(a)] = √(q/2π)
    relu = jaxnn.model.signal_propagation(5, 100, 2 / 100, "relu")
    np.testing.assert_allclose(relu.pre_second_moment, 2.0, rtol=1e-6)
    np.testing.assert_allclose(relu.mean, np.sqrt(2 / (2 * np.pi)), rtol=1e-5)  # h in float32
    np.testing.assert_allclose(relu.std, np.sqrt(1 - 2 / (2 * np.pi)), rtol=1e-5)
    # a linear network with LeCun's 1/M keeps every moment; the seed's xavier 1/(3M) divides
    # q by 3 a layer
    linear = jaxnn.model.signal_propagation(4, 50, 1 / 50, "identity", input_second_moment=2.0)
    np.testing.assert_allclose(linear.pre_second_moment, 2.0, rtol=1e-6)
    xavier = jaxnn.model.signal_propagation(4, 50, 1 / 150, "identity")
    np.testing.assert_allclose(xavier.pre_second_moment, 3.0 ** -np.arange(1, 5), rtol=1e-6)
    with pytest.raises(ValueError, match="variance must satisfy"):
        jaxnn.model.signal_propagation(3, 10, -1.0)


def test_signal_propagation_matches_a_wide_tanh_network():
    width, depth = 1000, 6
    x = jax.random.normal(jax.random.key(0), (400, width))
    params = jaxnn.init_mlp(jax.random.key(1), (width,) * (depth + 1) + (10,), init="lecun")
    measured = jaxnn.hidden_stats(params, x, "tanh")
    predicted = jaxnn.model.signal_propagation(depth, width, 1 / width, "tanh")
    # finite width: each layer's second moment averages 1000 units, each ±√(2/M) ≈ 4 %
    np.testing.assert_allclose(measured.std, predicted.std, rtol=0.02)
    np.testing.assert_allclose(measured.pre_second_moment, predicted.pre_second_moment, rtol=0.04)
