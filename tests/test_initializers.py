"""Initialisers: each distribution's moments and bounds, and the seeds' numbers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import _draws, initializers

FAN_IN, FAN_OUT = 400, 600

# name -> (distribution, variance) for a (FAN_IN, FAN_OUT) weight
EXPECTED = {
    "small": ("normal", 0.01**2),
    "normal": ("normal", 1.0),
    "lecun": ("normal", 1.0 / FAN_IN),
    "he": ("normal", 2.0 / FAN_IN),
    "xavier": ("uniform", 1.0 / (3 * FAN_IN)),
    "glorot": ("uniform", 2.0 / (FAN_IN + FAN_OUT)),
}


@pytest.fixture(scope="module")
def draws():
    return {
        name: np.asarray(initializers.get(name)(jax.random.key(7), (FAN_IN, FAN_OUT)))
        for name in EXPECTED
    }


def test_zeros():
    w = initializers.get("zeros")(jax.random.key(0), (3, 4))
    assert w.shape == (3, 4) and w.dtype == jnp.float32
    np.testing.assert_array_equal(w, 0.0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_moments(draws, name):
    w = draws[name]
    _, var = EXPECTED[name]
    n = w.size  # 240,000 draws: std's relative sampling error ~ 1/sqrt(2n) = 0.14 %
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == np.float32
    assert abs(w.mean()) < 5 * math.sqrt(var / n)
    assert w.std() == pytest.approx(math.sqrt(var), rel=0.01)


@pytest.mark.parametrize("name", ["small", "normal", "lecun", "he"])
def test_normals_are_not_truncated(draws, name):
    # A plain normal puts 4.55 % of its mass beyond 2 sigma; jax's truncated lecun/he
    # normals put none there.
    w = draws[name]
    sigma = math.sqrt(EXPECTED[name][1])
    assert np.mean(np.abs(w) > 2 * sigma) == pytest.approx(0.0455, abs=0.003)


@pytest.mark.parametrize(
    "name,bound",
    [
        ("xavier", initializers.xavier_bound(FAN_IN)),
        ("glorot", initializers.glorot_bound(FAN_IN, FAN_OUT)),
    ],
)
def test_uniform_bounds(draws, name, bound):
    w = draws[name]
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.999 * bound
    assert np.mean(np.abs(w) < bound / 2) == pytest.approx(0.5, abs=0.005)


def test_glorot_bound_is_sqrt6_not_6():
    # Erratum (notes 001): eps = sqrt(6)/sqrt(N+M), not 6/sqrt(N+M).
    assert initializers.glorot_bound(FAN_IN, FAN_OUT) == pytest.approx(
        math.sqrt(6) / math.sqrt(1000)
    )
    w = initializers.glorot(jax.random.key(1), (FAN_IN, FAN_OUT))
    assert float(jnp.max(jnp.abs(w))) == pytest.approx(math.sqrt(6 / 1000), rel=1e-3)
    assert float(jnp.max(jnp.abs(w))) < 0.5 * 6 / math.sqrt(1000)


def test_xavier_bound_is_one_over_sqrt_fan_in():
    assert initializers.xavier_bound(100) == pytest.approx(0.1)


def test_signature_dtype_and_determinism():
    key = jax.random.key(3)
    for name in initializers.NAMES:
        init = initializers.get(name)
        a = init(key, (5, 6))
        assert a.dtype == jnp.float32
        np.testing.assert_array_equal(a, init(key, (5, 6)))
        assert init(key, (5, 6), jnp.bfloat16).dtype == jnp.bfloat16
        assert init(key, shape=(5, 6), dtype=jnp.float16).dtype == jnp.float16


def test_bias_initialisers_take_rank_one_shapes():
    for name in ["zeros", "small", "normal"]:
        assert initializers.get(name)(jax.random.key(0), (7,)).shape == (7,)


def test_gaussian_and_scaled():
    key = jax.random.key(5)
    w = initializers.gaussian(0.5)(key, (300, 300))
    assert float(jnp.std(w)) == pytest.approx(0.5, rel=0.02)
    np.testing.assert_allclose(
        initializers.scaled("he", 3.0)(key, (4, 5)), 3.0 * initializers.he(key, (4, 5)), rtol=1e-6
    )
    # the scale may be traced: vmap over init scales
    stds = jax.vmap(lambda s: jnp.std(initializers.scaled("normal", s)(key, (200, 200))))(
        jnp.array([0.1, 1.0, 10.0])
    )
    np.testing.assert_allclose(stds, [0.1, 1.0, 10.0], rtol=0.02)


def test_get_passes_callables_through():
    fn = lambda key, shape, dtype=jnp.float32: jnp.ones(shape, dtype)
    assert initializers.get(fn) is fn


def _z_std(init, bias_init, keys=8, units=4000):
    """std of Z = xW + b over `keys` x `units` draws, with 1000 inputs all equal to 1."""
    x = jnp.ones((1, 1000))

    def z(key):
        return jaxnn.forward(jaxnn.init_mlp(key, [1000, units], init, bias_init), x)

    return float(jnp.std(jax.vmap(z)(jax.random.split(jax.random.key(11), keys))))


def test_seed_000_standard_normal_init_gives_std_sqrt_1001():
    # Z is a sum of 1001 iid N(0,1) terms. 32,000 draws: relative error of the std ~0.4 %.
    assert _z_std("normal", "normal") == pytest.approx(math.sqrt(1001), rel=0.02)


def test_seed_000_lecun_init_gives_std_sqrt_2():
    # weights N(0, 1/1000) and bias N(0, 1): Var Z = 1000/1000 + 1 = 2.
    assert _z_std("lecun", "normal") == pytest.approx(math.sqrt(2), rel=0.02)


# ---- 10 layers of width 1,000 on N(0,1) inputs (notes 000, 001, 002) ----


@pytest.fixture(scope="module")
def depth_stats():
    x = jax.random.normal(jax.random.key(42), (500, 1000))
    sizes = [1000] * 11 + [10]
    stats = jax.jit(jaxnn.hidden_stats, static_argnums=2)
    return {
        (init, act): jax.tree.map(
            np.asarray, stats(jaxnn.init_mlp(jax.random.key(0), sizes, init), x, act)
        )
        for init, act in [
            ("he", "relu"),
            ("small", "tanh"),
            ("normal", "tanh"),
            ("lecun", "tanh"),
            ("xavier", "tanh"),
        ]
    }


def test_he_relu_keeps_second_moment(depth_stats):
    m2 = depth_stats["he", "relu"].pre_second_moment
    assert m2.shape == (10,)
    assert np.all(np.abs(m2 / m2[0] - 1) <= 0.5)


def test_small_tanh_activations_vanish(depth_stats):
    std = depth_stats["small", "tanh"].std
    assert std[-1] < std[0] / 100
    # linear regime: each layer multiplies the std by 0.01 * sqrt(1000) = 0.316
    np.testing.assert_allclose(std[2:] / std[1:-1], 0.01 * math.sqrt(1000), rtol=0.02)


def test_normal_tanh_saturates(depth_stats):
    assert np.all(depth_stats["normal", "tanh"].saturated > 0.8)


def test_lecun_tanh_keeps_std(depth_stats):
    std = depth_stats["lecun", "tanh"].std
    assert np.all(std > std[0] / 3) and np.all(std < std[0] * 3)


def test_seed_xavier_tanh_shrinks_by_one_over_sqrt3(depth_stats):
    # variance 1/(3 fan_in): once tanh is in its linear range (from layer 3 on) every layer
    # multiplies the std by sqrt(1000 / (3 * 1000)) = 0.577. Measured: 0.574 to 0.579.
    std = depth_stats["xavier", "tanh"].std
    np.testing.assert_allclose(std[3:] / std[2:-1], 1 / math.sqrt(3), rtol=0.01)
    assert std[-1] < std[0] / 100


# ---- the draws are jax.nn.initializers' own numbers, compiled once per size class ----

REFERENCE = {
    "small": lambda k, s, d=jnp.float32: (
        jax.nn.initializers.normal(1.0)(k, s, d) * jnp.asarray(0.01, d)
    ),
    "normal": jax.nn.initializers.normal(1.0),
    "lecun": jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal"),
    "he": jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
    "xavier": jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
    "glorot": jax.nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_draws_equal_jax_variance_scaling_bit_for_bit(name):
    for key in [jax.random.key(3), jax.random.PRNGKey(5)]:  # typed and raw keys
        for shape, dtype in [
            ((37, 11), jnp.float32),
            ((3, 4, 5), jnp.float32),
            ((37, 11), jnp.bfloat16),
        ]:
            ours, ref = (
                initializers.get(name)(key, shape, dtype),
                REFERENCE[name](key, shape, dtype),
            )
            assert ours.dtype == ref.dtype and ours.shape == ref.shape
            np.testing.assert_array_equal(np.asarray(ours, np.float32), np.asarray(ref, np.float32))
    # under jit: the plain jax.random path, equal to the reference under jit
    jitted = jax.jit(lambda k: initializers.get(name)(k, (37, 11)))(key)
    np.testing.assert_array_equal(jitted, jax.jit(lambda k: REFERENCE[name](k, (37, 11)))(key))


def test_float64_draws_equal_jax():
    with jax.enable_x64(True):
        key = jax.random.key(1)
        for name in ["lecun", "glorot"]:
            ours = initializers.get(name)(key, (33, 17), jnp.float64)
            assert ours.dtype == jnp.float64
            np.testing.assert_array_equal(ours, REFERENCE[name](key, (33, 17), jnp.float64))


def test_standard_draw_is_a_prefix_of_the_power_of_two_draw():
    key = jax.random.key(9)
    for kind, ref in [
        ("normal", jax.random.normal(key, (41, 7))),
        ("uniform", jax.random.uniform(key, (41, 7), minval=-1.0)),
    ]:
        np.testing.assert_array_equal(_draws.standard(kind, key, (41, 7)), ref)
    assert _draws.standard("normal", key, (0, 3)).shape == (0, 3)


def test_layers_of_one_size_class_share_one_compiled_draw(caplog):
    key = jax.random.key(0)
    initializers.lecun(key, (17, 15))  # size class 256 of both kinds, compiled here at the
    initializers.glorot(key, (17, 15))  # latest
    with jax.log_compiles(True), caplog.at_level("WARNING"):
        for shape in [(16, 16), (10, 20), (3, 7), (8, 25)]:  # all of at most 256 numbers
            initializers.he(key, shape)
            initializers.glorot(key, shape)
    compiled = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("Finished XLA compilation")
    ]
    assert compiled == [], compiled
