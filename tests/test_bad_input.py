"""Bad input fails early with a ValueError/TypeError naming argument, value, expectation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import activations, datasets, initializers, losses, normalization

KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def params():
    return jaxnn.init_mlp(KEY, [4, 3, 2])


def test_wrong_input_width(params):
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\).*x\.shape=\(8, 5\)"):
        jaxnn.forward(params, jnp.ones((8, 5)))
    m = jaxnn.mlp([4, 3, 2])
    p, s = m.init(KEY)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\).*\(8, 3\)"):
        m.apply(p, s, jnp.ones((8, 3)), train=False)


@pytest.mark.parametrize(
    "sizes,match",
    [
        ([4], r"at least two widths.*sizes=\(4,\)"),
        ([], r"at least two widths"),
        ([4, 0, 2], r"positive ints.*sizes\[1\]=0"),
        ([4, 2.5, 2], r"positive ints.*sizes\[1\]=2.5"),
    ],
)
def test_bad_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        jaxnn.init_mlp(KEY, sizes)
    with pytest.raises(ValueError, match=match):
        jaxnn.mlp(sizes)


def test_unknown_names(params):
    with pytest.raises(ValueError, match=r"unknown initializer 'kaiming'.*'glorot'.*'he'"):
        initializers.get("kaiming")
    with pytest.raises(ValueError, match=r"unknown initializer 'kaiming'"):
        jaxnn.init_mlp(KEY, [2, 2], init="kaiming")
    with pytest.raises(ValueError, match=r"unknown initializer 'uniform'"):
        jaxnn.mlp([2, 2], bias_init="uniform")
    with pytest.raises(ValueError, match=r"unknown activation 'swish'.*'tanh'"):
        jaxnn.forward(params, jnp.ones((1, 4)), activation="swish")
    with pytest.raises(ValueError, match=r"unknown activation 'swish'"):
        jaxnn.mlp([2, 2], activation="swish")
    with pytest.raises(TypeError, match=r"initializer must be a name"):
        initializers.get(None)
    with pytest.raises(ValueError, match=r"'he'.*shape=\(3,\).*'zeros'"):
        jaxnn.init_mlp(KEY, [2, 3], bias_init="he")


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan")])
def test_dropout_rate_outside_unit_interval(rate):
    with pytest.raises(ValueError, match=r"dropout must satisfy 0.0 <= dropout < 1.0, got"):
        jaxnn.mlp([4, 3, 2], dropout=rate)
    with pytest.raises(ValueError, match=r"rate must satisfy 0.0 <= rate < 1.0"):
        jaxnn.dropout(jnp.ones(3), rate, key=KEY)


def test_dropout_in_training_needs_a_key():
    m = jaxnn.mlp([4, 3, 2], dropout=0.5)
    p, s = m.init(KEY)
    with pytest.raises(ValueError, match=r"train=True.*dropout=0.5 needs a PRNG key"):
        m.apply(p, s, jnp.ones((2, 4)), train=True)
    m.apply(p, s, jnp.ones((2, 4)), train=False)  # inference needs none
    with pytest.raises(TypeError, match=r"train must be a Python bool"):
        m.apply(p, s, jnp.ones((2, 4)), train=jnp.array(True))


def test_model_structure_errors():
    with pytest.raises(ValueError, match=r"batch_norm and layer_norm"):
        jaxnn.mlp([4, 3, 2], batch_norm=True, layer_norm=True)
    with pytest.raises(ValueError, match=r"bn_alpha must satisfy"):
        jaxnn.mlp([4, 3, 2], batch_norm=True, bn_alpha=1.0)
    m = jaxnn.mlp([4, 3, 2], batch_norm=True)
    p, s = m.init(KEY)
    with pytest.raises(ValueError, match=r"at least 2 examples.*shape \(1, 3\)"):
        m.apply(p, s, jnp.ones((1, 4)), train=True)
    plain = jaxnn.init_mlp(KEY, [4, 3, 2])
    with pytest.raises(
        ValueError,
        match=r"params\[0\] has entries \['b', 'w'\].*\['beta', "
        r"'gamma', 'w'\]",
    ):
        m.apply(plain, s, jnp.ones((2, 4)), train=False)


@pytest.mark.parametrize("std", [-1.0, float("nan")])
def test_negative_std(std):
    with pytest.raises(ValueError, match=r"std must satisfy 0.0 <= std, got"):
        initializers.gaussian(std)
    with pytest.raises(ValueError, match=r"scale must satisfy 0.0 <= scale"):
        initializers.scaled("lecun", std)
    with pytest.raises(ValueError, match=r"noise must satisfy 0.0 <= noise"):
        datasets.moons(10, key=KEY, noise=std)


def test_labels_outside_the_classes():
    logits = jnp.zeros((3, 4))
    with pytest.raises(
        ValueError,
        match=r"labels must be class indices in \[0, 4\), got "
        r"values in \[0, 4\]",
    ):
        losses.softmax_cross_entropy(logits, jnp.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"in \[0, 4\), got values in \[-1, 1\]"):
        losses.accuracy(logits, jnp.array([0, -1, 1]))
    with pytest.raises(TypeError, match=r"must be integer class indices, got dtype float32"):
        losses.softmax_cross_entropy(logits, jnp.array([0.0, 1.0, 1.0]))
    with pytest.raises(
        ValueError,
        match=r"labels must have shape \(3,\).*or \(3, 4\).*got "
        r"shape \(3, 2\)",
    ):
        losses.softmax_cross_entropy(logits, jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        losses.binary_cross_entropy(jnp.zeros(2), jnp.array([0.0, 2.0]))


def test_prediction_target_shape_mismatch():
    with pytest.raises(
        ValueError,
        match=r"pred and target must have the same shape, got "
        r"pred.shape=\(4, 1\) and target.shape=\(4,\)",
    ):
        losses.quadratic(jnp.zeros((4, 1)), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"logits and target must have the same shape"):
        losses.binary_cross_entropy(jnp.zeros((4, 2)), jnp.zeros((4, 1)))


def test_nan_data_to_normalisation():
    x = np.ones((5, 3), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(
        ValueError,
        match=r"x must be finite, but 1 of its 15 entries are NaN "
        r"or infinite \(first at index \(2, 1\)\)",
    ):
        normalization.fit_standardizer(x)
    good = datasets.Dataset(jnp.ones((5, 3)), jnp.zeros(5))
    with pytest.raises(ValueError, match=r"train.x must be finite"):
        datasets.standardized(datasets.Dataset(jnp.asarray(x), jnp.zeros(5)), good)
    with pytest.raises(ValueError, match=r"test.x must be finite"):
        datasets.standardized(good, datasets.Dataset(jnp.asarray(x), jnp.zeros(5)))
    stats = normalization.fit_standardizer(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"feature shape \(2,\).*feature shape \(3,\)"):
        normalization.standardize(np.ones((5, 2)), stats)


def test_data_off_the_host_is_checked_where_it_lives(monkeypatch):
    """Arrays on an accelerator, or split over devices, are tested on the device: the host
    reads them only to describe a failure, with the same message as for host data."""
    from jaxnn import _checks, train

    monkeypatch.setattr(_checks, "_off_host", lambda array: True)  # as on a GPU
    reads = []  # the data arrays (the only 2-D values here) read on the host
    concrete = _checks.concrete

    def spy(v):
        if np.ndim(v) == 2:
            reads.append(v)
        return concrete(v)

    monkeypatch.setattr(_checks, "concrete", spy)
    loss = lambda p, batch: jnp.mean((batch[0] @ p - batch[1]) ** 2)
    fit = lambda x: train.fit(
        loss, jnp.zeros(2), jaxnn.optimizers.sgd(0.1), (x, jnp.ones(6)), key=jax.random.key(0),
        steps=2,
    )  # fmt: skip
    x = jnp.ones((6, 2))
    fit(x)
    jax.jit(lambda: fit(x).params)()  # the closed-over data checked while tracing, too
    assert not reads  # finite data never came to the host
    with pytest.raises(
        ValueError,
        match=r"data \(array 0\) must be finite, but 1 of its 12 entries are NaN or infinite "
        r"\(first at index \(4, 1\)\)",
    ):
        fit(jnp.ones((6, 2)).at[4, 1].set(jnp.inf))
    assert len(reads) == 1


def test_penalty_and_split_arguments(params):
    with pytest.raises(ValueError, match=r"lam must satisfy 0.0 <= lam, got -0.1"):
        losses.l2_penalty(params, -0.1, 10)
    with pytest.raises(ValueError, match=r"n must satisfy 0.0 < n, got 0"):
        losses.l1_penalty(params, 0.1, 0)
    data = datasets.Dataset(jnp.ones((10, 2)), jnp.ones(10))
    with pytest.raises(
        ValueError,
        match=r"test_fraction must satisfy 0.0 < test_fraction < "
        r"1.0, got 1.0",
    ):
        datasets.train_test_split(data, key=KEY, test_fraction=1.0)
    with pytest.raises(ValueError, match=r"same number of rows.*\(10, 2\) and \(9,\)"):
        datasets.train_test_split(datasets.Dataset(jnp.ones((10, 2)), jnp.ones(9)), key=KEY)
    with pytest.raises(ValueError, match=r"batch_size must be at most n=10, got batch_size=11"):
        datasets.batch_indices(KEY, 10, 11)
    with pytest.raises(TypeError, match=r"batch_size must be an int, got 2.0"):
        datasets.batch_indices(KEY, 10, 2.0)
    with pytest.raises(ValueError, match=r"eigenvalues must be finite"):
        datasets.quadratic_bowl([1.0, float("nan")])
    with pytest.raises(ValueError, match=r"minimizer must have shape \(2,\)"):
        datasets.quadratic_bowl([1.0, 2.0], minimizer=jnp.zeros(3))


def test_traced_values_are_not_checked_but_still_run():
    # Inside jit a value is unknown until run time: the check is skipped, not faked.
    out = jax.jit(lambda r: jaxnn.dropout(jnp.ones(4), r, key=KEY))(0.0)
    np.testing.assert_array_equal(out, 1.0)
    assert activations.get("identity")(2.0) == 2.0
