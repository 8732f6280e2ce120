"""Built-in data, splits, standardisation and minibatch permutations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import datasets


def test_digits_is_the_bundled_set():
    x, y = datasets.digits()
    assert x.shape == (1797, 64) and x.dtype == jnp.float32
    assert y.shape == (1797,) and y.dtype == jnp.int32
    assert float(x.min()) == 0.0 and float(x.max()) == 16.0
    np.testing.assert_array_equal(np.bincount(np.asarray(y)) >= 170, True)  # 10 classes
    from sklearn.datasets import load_digits  # the file read directly is load_digits' own

    ref = load_digits()
    np.testing.assert_array_equal(x, ref.data)
    np.testing.assert_array_equal(y, ref.target)


@pytest.mark.parametrize(
    "name,shape,counts",
    [
        # the class counts the sets are documented with (UCI; scikit-learn's user guide)
        ("breast_cancer", (569, 30), [212, 357]),
        ("wine", (178, 13), [59, 71, 48]),
        ("iris", (150, 4), [50, 50, 50]),
    ],
)
def test_tabular_sets_are_the_bundled_ones(name, shape, counts):
    data = datasets.load(name)
    assert data.x.shape == shape and data.x.dtype == jnp.float32 and data.y.dtype == jnp.int32
    np.testing.assert_array_equal(np.bincount(np.asarray(data.y)), counts)
    assert np.isfinite(np.asarray(data.x)).all()
    assert name in datasets.NAMES
    train, _, _ = datasets.standardized(*datasets.train_test_split(data, key=jax.random.key(0)))
    np.testing.assert_allclose(np.asarray(train.x).mean(0), 0.0, atol=1e-5)
    with pytest.raises(
        ValueError, match="name must be one of breast_cancer, wine, iris, got 'mnist'"
    ):
        datasets.tabular("mnist")


def test_mnist1d_is_the_generators_set():
    pytest.importorskip("mnist1d", reason='datasets.mnist1d needs pip install "jaxnn[data]"')
    import random

    np.random.seed(7)
    random.seed(7)
    data = datasets.mnist1d(1000, key=jax.random.key(0))
    x, y = np.asarray(data.x), np.asarray(data.y)
    assert x.shape == (1000, 40) and data.x.dtype == jnp.float32 and data.y.dtype == jnp.int32
    np.testing.assert_array_equal(np.bincount(y), [100] * 10)
    # the generator centres the whole set and scales it to unit standard deviation
    assert abs(x.mean()) < 1e-5 and abs(x.std() - 1.0) < 1e-5
    # the user's global random states are untouched by the generator's seeding
    assert np.random.randint(1 << 30) == np.random.RandomState(7).randint(1 << 30)
    assert random.random() == random.Random(7).random()
    # a key fixes the set; another key gives another; None is the package's default seed
    again = datasets.mnist1d(1000, key=jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(again.x), x)
    other = datasets.mnist1d(1000, key=jax.random.key(1))
    assert not np.allclose(np.asarray(other.x), x)
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 1000
    reference = make_dataset(args)  # default seed, the package's 80/20 split
    published = datasets.load("mnist1d", n=1000)
    np.testing.assert_allclose(np.asarray(published.x[:800]), reference["x"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(published.y[800:]), reference["y_test"])
    with pytest.raises(ValueError, match=r"n must be a multiple of 10 .*got n=995"):
        datasets.mnist1d(995, key=jax.random.key(0))


def test_mnist1d_without_its_package_names_the_extra(monkeypatch):
    import sys

    datasets._mnist1d_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "mnist1d", None)  # import mnist1d raises ImportError
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match=r'pip install "jaxnn\[data\]"'):
        datasets.mnist1d(20, key=jax.random.key(0))


@pytest.mark.parametrize(
    "make,classes",
    [
        (lambda k: datasets.moons(201, key=k), 2),
        (lambda k: datasets.spirals(301, key=k, classes=3), 3),
    ],
)
def test_generated_sets(make, classes):
    x, y = make(jax.random.key(0))
    n = x.shape[0]
    assert x.shape == (n, 2) and y.shape == (n,) and x.dtype == jnp.float32
    counts = np.bincount(np.asarray(y), minlength=classes)
    assert len(counts) == classes and counts.max() - counts.min() <= 1
    assert bool(jnp.all(jnp.isfinite(x)))
    np.testing.assert_array_equal(make(jax.random.key(0)).x, x)  # deterministic per key
    assert not np.array_equal(make(jax.random.key(1)).x, x)


def test_moons_without_noise_lie_on_the_half_circles():
    x, y = datasets.moons(100, key=jax.random.key(2), noise=0.0)
    x, y = np.asarray(x), np.asarray(y)
    np.testing.assert_allclose(np.hypot(*x[y == 0].T), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.hypot(x[y == 1, 0] - 1, x[y == 1, 1] - 0.5), 1.0, rtol=1e-5)


def test_spiral_radius_without_noise():
    x, y = datasets.spirals(40, key=jax.random.key(3), noise=0.0)
    r = np.sort(np.hypot(*np.asarray(x)[np.asarray(y) == 0].T))
    np.testing.assert_allclose(r, np.linspace(1 / 20, 1, 20), rtol=1e-5)


def test_quadratic_bowl_has_the_prescribed_spectrum():
    with jax.enable_x64(True):
        lam = [100.0, 1.0, 10.0, 0.5]
        bowl = datasets.quadratic_bowl(lam, key=jax.random.key(4), minimizer=jnp.arange(4.0))
        np.testing.assert_allclose(
            np.linalg.eigvalsh(np.asarray(bowl.matrix)), sorted(lam), rtol=1e-12
        )
        np.testing.assert_array_equal(bowl.matrix, bowl.matrix.T)
        np.testing.assert_allclose(bowl.eigenvalues, sorted(lam))
        u = np.asarray(bowl.eigenvectors)
        np.testing.assert_allclose(u.T @ u, np.eye(4), atol=1e-12)
        assert bowl.condition_number == pytest.approx(200.0)
        assert float(bowl.loss(bowl.minimizer)) == 0.0
        np.testing.assert_allclose(jax.hessian(bowl.loss)(jnp.zeros(4)), bowl.matrix, atol=1e-12)
        w = jnp.array([1.0, -2.0, 0.5, 3.0])
        e = np.asarray(w - bowl.minimizer)
        assert float(bowl.loss(w)) == pytest.approx(0.5 * e @ np.asarray(bowl.matrix) @ e)
    saddle = datasets.quadratic_bowl([-1.0, 2.0])
    assert saddle.condition_number == float("inf")
    np.testing.assert_array_equal(saddle.eigenvectors, np.eye(2))


def test_single_neuron():
    x, y = datasets.single_neuron()
    np.testing.assert_array_equal(x, [[1.0]])
    np.testing.assert_array_equal(y, [[0.0]])
    p = datasets.single_neuron_params(0.6, 0.9)
    assert p[0]["w"].shape == (1, 1) and float(p[0]["b"][0]) == pytest.approx(0.9)


def test_train_test_split_partitions_the_rows():
    data = datasets.Dataset(jnp.arange(50.0).reshape(25, 2), jnp.arange(25))
    train, test = datasets.train_test_split(data, key=jax.random.key(5), test_fraction=0.2)
    assert train.x.shape == (20, 2) and test.x.shape == (5, 2)
    rows = np.concatenate([np.asarray(train.y), np.asarray(test.y)])
    np.testing.assert_array_equal(np.sort(rows), np.arange(25))
    np.testing.assert_array_equal(train.x[:, 0], 2.0 * train.y)  # x and y stay paired


def test_digits_standardized_is_finite():
    train, test = datasets.train_test_split(datasets.digits(), key=jax.random.key(6))
    tr, te, _ = datasets.standardized(train, test)
    assert bool(jnp.all(jnp.isfinite(tr.x))) and bool(jnp.all(jnp.isfinite(te.x)))


def test_batch_indices_is_a_jittable_partition():
    idx = jax.jit(datasets.batch_indices, static_argnums=(1, 2))(jax.random.key(7), 103, 10)
    assert idx.shape == (10, 10)
    flat = np.asarray(idx).ravel()
    assert len(np.unique(flat)) == 100 and flat.min() >= 0 and flat.max() < 103
    other = datasets.batch_indices(jax.random.key(8), 103, 10)
    assert not np.array_equal(other, idx)
    full = datasets.batch_indices(jax.random.key(9), 12, 12)
    np.testing.assert_array_equal(np.sort(np.asarray(full[0])), np.arange(12))


@pytest.mark.parametrize("n", [1, 2, 7, 2048, 2049, 70_000])
def test_permutation_holds_every_position_once(n):
    perm = np.asarray(jax.jit(datasets.permutation, static_argnums=1)(jax.random.key(n), n))
    assert perm.dtype == np.int32 and perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))


@pytest.mark.parametrize("n", [1797, 70_000])
def test_permutation_is_stable_sorting_by_the_random_bits_round_by_round(n):
    # the packed single-array sort against NumPy's stable argsort of each round's top
    # 32 − b bits (ties in them abound at n = 70,000, where 15 bits are left)
    key = jax.random.key(3)
    b = (n - 1).bit_length()
    rounds = int(np.ceil(3 * np.log2(n) / (32 - b)))
    bits = np.asarray(jax.random.bits(key, (rounds, n), jnp.uint32)) >> b
    expected = np.arange(n)
    for r in range(rounds):
        expected = expected[np.argsort(bits[r], kind="stable")]
    np.testing.assert_array_equal(np.asarray(datasets.permutation(key, n)), expected)


def _keys(count):
    return jax.random.split(jax.random.key(11), count)


def test_permutation_is_uniform():
    # all 24 orders of 4 positions over 24,000 draws: Pearson's χ² (23 degrees of freedom)
    # below its 1 − 10⁻⁶ quantile; and, at n = 1797 (two rounds), where the first position
    # lands over 10 equal bins in 2,000 draws (9 degrees of freedom)
    from scipy.stats import chi2

    perms = np.asarray(jax.vmap(lambda k: datasets.permutation(k, 4))(_keys(24_000)))
    codes = perms @ np.array([64, 16, 4, 1])
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 24
    assert np.sum((counts - 1000) ** 2 / 1000) < chi2.isf(1e-6, 23)
    first = np.asarray(jax.vmap(lambda k: datasets.permutation(k, 1797)[0])(_keys(2000)))
    bins = np.bincount(first * 10 // 1797, minlength=10)
    assert np.sum((bins - 200) ** 2 / 200) < chi2.isf(1e-6, 9)


def test_permutation_bad_n():
    with pytest.raises(ValueError, match="n must be"):
        datasets.permutation(jax.random.key(0), 0)
