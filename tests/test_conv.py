"""jaxnn.cnn against a hand-written NumPy convolution, under jit, grad and vmap, in fit."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxnn
from jaxnn import datasets, hessian, losses, optimizers, spectral, train

pytestmark = pytest.mark.usefixtures("x64")


def numpy_conv(z, w, padding):
    """(z ⋆ w)[n, s, o] = Σ_{t, i} z[n, s + t − p, i] w[t, i, o], by explicit loops."""
    kernel = w.shape[:-2]
    if padding == "SAME":
        pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel]
        z = np.pad(z, [(0, 0), *pads, (0, 0)])
    out_spatial = [s - k + 1 for s, k in zip(z.shape[1:-1], kernel)]
    out = np.zeros((z.shape[0], *out_spatial, w.shape[-1]))
    for s in itertools.product(*map(range, out_spatial)):
        for t in itertools.product(*map(range, kernel)):
            patch = z[(slice(None), *(a + b for a, b in zip(s, t)), slice(None))]  # (n, i)
            out[(slice(None), *s, slice(None))] += patch @ w[(*t, slice(None), slice(None))]
    return out


def numpy_pool(z, kind, size):
    spatial = [s // size for s in z.shape[1:-1]]
    out = np.zeros((z.shape[0], *spatial, z.shape[-1]))
    for s in itertools.product(*map(range, spatial)):
        window = z[(slice(None), *(slice(a * size, (a + 1) * size) for a in s), slice(None))]
        axes = tuple(range(1, z.ndim - 1))
        out[(slice(None), *s, slice(None))] = (
            window.max(axis=axes) if kind == "max" else window.mean(axis=axes)
        )
    return out


def numpy_cnn(params, x, *, padding, pool, h):
    z = np.asarray(x, np.float64)
    for layer in params[:-1]:
        z = h(numpy_conv(z, np.asarray(layer["w"]), padding) + np.asarray(layer["b"]))
        if pool is not None:
            z = numpy_pool(z, pool, 2)
    return z.reshape(len(z), -1) @ np.asarray(params[-1]["w"]) + np.asarray(params[-1]["b"])


CASES = {
    "image SAME max": dict(input_shape=(7, 6, 2), channels=(3, 4), kernel=3, padding="SAME"),
    "image VALID avg": dict(
        input_shape=(9, 8, 2), channels=(3,), kernel=(2, 3), padding="VALID", pool="avg"
    ),
    "signal even kernel": dict(input_shape=(12, 1), channels=(4, 3), kernel=4, padding="SAME"),
    "signal no pool tanh": dict(
        input_shape=(10, 2), channels=(3,), kernel=5, pool=None, activation="tanh"
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_is_the_numpy_convolution(case):
    config = CASES[case]
    net = jaxnn.cnn(**config, classes=3, dtype=jnp.float64, bias_init="small")
    params, state = net.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, *config["input_shape"]), jnp.float64)
    logits, same_state = net.apply(params, state, x, train=True)
    h = np.tanh if config.get("activation") == "tanh" else (lambda a: np.maximum(a, 0.0))
    ref = numpy_cnn(
        params, x, padding=config.get("padding", "SAME"), pool=config.get("pool", "max"), h=h
    )
    np.testing.assert_allclose(np.asarray(logits), ref, rtol=1e-12, atol=1e-12)
    assert same_state == {}
    flat, _ = net.apply(params, state, x.reshape(5, -1), train=False)  # flat rows, reshaped
    np.testing.assert_allclose(np.asarray(flat), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("shape,kernel", [((2, 7, 6, 3), (3, 2)), ((2, 9, 2), (4,))])
def test_both_lowerings_are_the_numpy_convolution(shape, kernel, padding):
    """lax.conv_general_dilated (accelerators) and the shifted products (CPU) alike."""
    from jaxnn import conv

    z = jax.random.normal(jax.random.key(0), shape, jnp.float64)
    w = jax.random.normal(jax.random.key(1), (*kernel, shape[-1], 4), jnp.float64)
    ref = numpy_conv(np.asarray(z), np.asarray(w), padding)
    for lowering in (conv._conv_general, conv._conv_shifted):
        got = np.asarray(lowering(z, w, padding))
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=lowering.__name__)


def test_batch_norm_per_channel_over_batch_and_space():
    net = jaxnn.cnn(
        input_shape=(6, 6, 2), channels=(3,), classes=2, batch_norm=True, pool=None,
        dtype=jnp.float64, bn_alpha=0.8,
    )  # fmt: skip
    params, state = net.init(jax.random.key(2))
    assert set(params[0]) == {"w", "gamma", "beta"}
    params[0] = {**params[0], "gamma": jnp.array([0.5, 1.0, 2.0]), "beta": jnp.array([0.1, 0, -1])}
    x = 3.0 + jax.random.normal(jax.random.key(3), (4, 6, 6, 2), jnp.float64)
    logits, new_state = net.apply(params, state, x, train=True)
    a = numpy_conv(np.asarray(x), np.asarray(params[0]["w"]), "SAME")
    mean, var = a.mean(axis=(0, 1, 2)), a.var(axis=(0, 1, 2))
    z = np.maximum(
        np.asarray(params[0]["gamma"]) * (a - mean) / np.sqrt(var + 1e-5)
        + np.asarray(params[0]["beta"]),
        0.0,
    )
    ref = z.reshape(4, -1) @ np.asarray(params[1]["w"]) + np.asarray(params[1]["b"])
    np.testing.assert_allclose(np.asarray(logits), ref, rtol=1e-10, atol=1e-10)
    running = new_state["batch_norm"][0]
    np.testing.assert_allclose(np.asarray(running["mean"]), 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(running["var"]), 0.8 + 0.2 * var, rtol=1e-12)
    # inference normalises with the running averages and returns the state unchanged
    out, kept = net.apply(params, new_state, x, train=False)
    z = np.asarray(params[0]["gamma"]) * (a - 0.2 * mean) / np.sqrt(0.8 + 0.2 * var + 1e-5)
    z = np.maximum(z + np.asarray(params[0]["beta"]), 0.0)
    ref = z.reshape(4, -1) @ np.asarray(params[1]["w"]) + np.asarray(params[1]["b"])
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-10, atol=1e-10)
    assert kept is new_state


def test_he_init_counts_the_receptive_field_in_the_fan_in():
    net = jaxnn.cnn(input_shape=(4, 4, 16), channels=(64,), classes=2, pool=None)
    params, _ = net.init(jax.random.key(4))
    w = np.asarray(params[0]["w"], np.float64)
    assert w.shape == (3, 3, 16, 64) and params[0]["w"].dtype == jnp.float32
    fan_in = 3 * 3 * 16
    # sample variance of N = 9,216 normals: relative standard error √(2/N) = 1.5%
    assert abs(w.var() / (2.0 / fan_in) - 1.0) < 5 * np.sqrt(2.0 / w.size)
    np.testing.assert_array_equal(np.asarray(params[0]["b"]), 0.0)
    assert params[1]["w"].shape == (4 * 4 * 64, 2)


def test_jit_grad_and_vmap():
    net = jaxnn.cnn(input_shape=(6, 5, 1), channels=(2, 3), classes=3, activation="tanh",
                    dtype=jnp.float64)  # fmt: skip
    params, state = net.init(jax.random.key(5))
    x = jax.random.normal(jax.random.key(6), (4, 6, 5, 1), jnp.float64)
    y = jnp.array([0, 1, 2, 1])

    def loss_fn(p):
        return losses.softmax_cross_entropy(net.apply(p, state, x, train=False)[0], y)

    eager = net.apply(params, state, x, train=False)[0]
    jitted = jax.jit(lambda p, x: net.apply(p, state, x, train=False)[0])(params, x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-12, atol=1e-14)
    # the gradient against a central difference along a random direction
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.key(7), flat.shape, jnp.float64)
    eps = 1e-5
    fd = (loss_fn(unravel(flat + eps * v)) - loss_fn(unravel(flat - eps * v))) / (2 * eps)
    g = ravel_pytree(jax.grad(loss_fn)(params))[0]
    np.testing.assert_allclose(float(g @ v), float(fd), rtol=1e-7)
    # vmap over three inits equals a loop
    stacked = jax.vmap(lambda k: net.init(k)[0])(jax.random.split(jax.random.key(8), 3))
    batched = jax.vmap(lambda p: net.apply(p, state, x, train=False)[0])(stacked)
    for i in range(3):
        one = jax.tree.map(lambda a, i=i: a[i], stacked)
        np.testing.assert_allclose(
            np.asarray(batched[i]), np.asarray(net.apply(one, state, x, train=False)[0]),
            rtol=1e-12, atol=1e-14,
        )  # fmt: skip


def test_trains_with_fit_and_its_hessian_agrees_matrix_free():
    data = datasets.digits()
    small = datasets.Dataset(data.x[:256] / 16.0, data.y[:256])
    net = jaxnn.cnn(input_shape=(8, 8, 1), channels=(4, 4), classes=10, dtype=jnp.float64)
    params, state = net.init(jax.random.key(9))
    objective = train.objective(net, losses.softmax_cross_entropy)
    result = train.fit(
        objective, params, optimizers.momentum(0.05, 0.9), small, state=state,
        key=jax.random.key(10), steps=300, batch_size=64,
    )  # fmt: skip
    before = objective.evaluate(params, state, tuple(small))
    after = objective.evaluate(result.params, result.state, tuple(small))
    # from chance (ln 10 = 2.30; accuracy 0.1) to a partly fitted training set: with init
    # seeds 9 to 12 the loss falls 4× to 600× and the accuracy reaches 0.48 to 1.0
    assert float(before["loss"]) > 2.0 and float(after["loss"]) < 0.5 * float(before["loss"])
    assert float(after["accuracy"]) > 0.4
    batch = (small.x[:64], small.y[:64])

    def loss_fn(p):
        return objective.value(p, result.state, batch, train=False)[0]

    exact = hessian.spectrum(loss_fn, result.params, vectors=False).eigenvalues
    top = spectral.top_eigenvalues(loss_fn, result.params, 2, key=jax.random.key(11), tol=1e-8)
    np.testing.assert_allclose(np.asarray(top.values), np.asarray(exact[::-1][:2]), rtol=1e-6)


def test_bad_input_is_named():
    net = jaxnn.cnn(input_shape=(8, 8, 1), channels=(4,), classes=10)
    params, state = net.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"x has shape \(3, 8, 7, 1\).*\(batch, 8, 8, 1\)"):
        net.apply(params, state, jnp.ones((3, 8, 7, 1)), train=False)
    with pytest.raises(ValueError, match=r"x has shape \(3, 63\).*or flat \(batch, 64\)"):
        net.apply(params, state, jnp.ones((3, 63)), train=False)
    with pytest.raises(TypeError, match="x must hold floating-point values"):
        net.apply(params, state, jnp.ones((3, 64), jnp.int32), train=False)
    with pytest.raises(ValueError, match="too small for 4 blocks: block 3"):
        jaxnn.cnn(input_shape=(8, 8, 1), channels=(4, 4, 4, 4), classes=10)
    with pytest.raises(ValueError, match="input_shape must be"):
        jaxnn.cnn(input_shape=(64,), channels=(4,), classes=10)
    with pytest.raises(ValueError, match="kernel must be a positive int or 2"):
        jaxnn.cnn(input_shape=(8, 8, 1), channels=(4,), classes=10, kernel=(3, 3, 3))
    with pytest.raises(ValueError, match="pool must be one of max, avg or None, got 'min'"):
        jaxnn.cnn(input_shape=(8, 8, 1), channels=(4,), classes=10, pool="min")
    with pytest.raises(ValueError, match="channels must be a non-empty"):
        jaxnn.cnn(input_shape=(8, 8, 1), channels=(), classes=10)
    with pytest.raises(ValueError, match="unknown activation"):
        jaxnn.cnn(input_shape=(8, 8, 1), channels=(4,), classes=10, activation="swish9")
    other = jaxnn.cnn(input_shape=(8, 8, 1), channels=(5,), classes=10).init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"params\[0\]\['w'\] has shape \(3, 3, 1, 5\)"):
        net.apply(other[0], state, jnp.ones((3, 64)), train=False)
