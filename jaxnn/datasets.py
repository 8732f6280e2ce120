"""Built-in data: nothing is ever downloaded.

* :func:`digits` — scikit-learn's bundled handwritten digits: 1,797 images of 8×8
  pixels (values 0–16) in 10 classes, read from the package's own files.
* :func:`tabular` — scikit-learn's bundled tabular sets: breast cancer (569 × 30, 2
  classes), wine (178 × 13, 3 classes), iris (150 × 4, 3 classes).
* :func:`mnist1d` — MNIST-1D (Greydanus 2020): 40-sample 1-D signals of the digits 0–9,
  generated offline by the ``mnist1d`` package (the ``jaxnn[data]`` extra).
* :func:`moons`, :func:`spirals` — generated 2-D classification problems.
* :func:`quadratic_bowl` — E(w) = ½(w − w*)ᵀA(w − w*) with prescribed eigenvalues, so
  its Hessian A, its spectrum and its condition number are known exactly.
* :func:`single_neuron` — notes 001's one-example problem: input 1, target 0.
* :func:`load` — the classification sets by name (:data:`NAMES`), as the commands take them.

Plus the plumbing every training run needs: :func:`train_test_split` (from a key),
:func:`standardized` (μ, σ from the training split applied to both) and
:func:`batch_indices` (a jit-friendly minibatch partition from a key) and
:func:`permutation` (the random permutation behind it and behind ``fit``'s shuffling).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _checks, _draws, normalization
from jaxnn.base import Array, Params, PRNGKey

__all__ = [
    "MNIST1D_REFERENCE_SEED",
    "NAMES",
    "TABULAR",
    "Dataset",
    "QuadraticBowl",
    "batch_indices",
    "digits",
    "load",
    "mnist1d",
    "moons",
    "permutation",
    "quadratic_bowl",
    "single_neuron",
    "single_neuron_params",
    "spirals",
    "standardized",
    "tabular",
    "train_test_split",
]


class Dataset(NamedTuple):
    """Inputs ``x`` of shape ``(n, features)`` and targets ``y`` with ``n`` rows."""

    x: Array
    y: Array


def _float_dtype() -> Any:
    """float64 when ``jax_enable_x64`` is on, float32 otherwise."""
    return jnp.result_type(float)


def digits() -> Dataset:
    """scikit-learn's handwritten digits: x (1797, 64) float pixels in [0, 16], y int32.

    The data ship inside scikit-learn (``sklearn.datasets.load_digits``); no network. The
    bundled file (``sklearn/datasets/data/digits.csv.gz``: 64 pixels and the label per row)
    is read directly, without importing scikit-learn (a second or two per process); where
    it is not found, ``load_digits`` reads it.
    """
    table = _bundled_digits()
    if table is None:
        from sklearn.datasets import load_digits  # a slow import, only as the fallback

        x, y = load_digits(return_X_y=True)
        return Dataset(
            jax.device_put(np.asarray(x, np.float32)), jax.device_put(np.asarray(y, np.int32))
        )
    return Dataset(
        jax.device_put(table[:, :-1].astype(np.float32)),
        jax.device_put(table[:, -1].astype(np.int32)),
    )


@functools.lru_cache(maxsize=1)
def _bundled_digits() -> np.ndarray | None:
    """scikit-learn's digits table, (1797, 65), read from its own file (None if absent)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    if not os.path.exists(path):
        return None
    table = np.loadtxt(path, delimiter=",")
    table.flags.writeable = False
    return table if table.shape == (1797, 65) else None


#: scikit-learn's bundled tabular classification sets: name -> (loader, examples,
#: features, classes).
TABULAR = {
    "breast_cancer": ("load_breast_cancer", 569, 30, 2),
    "wine": ("load_wine", 178, 13, 3),
    "iris": ("load_iris", 150, 4, 3),
}


def tabular(name: str) -> Dataset:
    """One of scikit-learn's bundled tabular classification sets, by name (:data:`TABULAR`):
    x (examples, features) float32 in the original units, y int32 class labels.

    ``"breast_cancer"``: 569 tumours, 30 measurements, malignant (0) or benign (1);
    ``"wine"``: 178 wines, 13 chemical measurements, 3 cultivars; ``"iris"``: 150
    flowers, 4 measurements, 3 species. Read from the files inside scikit-learn
    (``sklearn.datasets.load_*``); no network. The features differ in scale by orders of
    magnitude: standardise them (:func:`standardized`) before training.
    """
    if name not in TABULAR:
        raise ValueError(f"name must be one of {', '.join(TABULAR)}, got {name!r}")
    import sklearn.datasets  # a slow import, only when a tabular set is asked for

    loader, examples, features, _ = TABULAR[name]
    x, y = getattr(sklearn.datasets, loader)(return_X_y=True)
    if np.shape(x) != (examples, features):
        raise ValueError(
            f"scikit-learn's {name} has shape {np.shape(x)}, expected {(examples, features)}"
        )
    return Dataset(
        jax.device_put(np.asarray(x, np.float32)), jax.device_put(np.asarray(y, np.int32))
    )


#: The seed of the ``mnist1d`` package's default arguments (5,000 examples, the first
#: 4,000 its training split, the last 1,000 its test split).
MNIST1D_REFERENCE_SEED = 42


def mnist1d(n: int = 5000, *, key: PRNGKey | None) -> Dataset:
    """MNIST-1D: x (n, 40) float32 signals, y int32 digits 0–9, n/10 of each, shuffled.

    Each example is one of ten 12-point templates, padded, scaled, sheared, translated,
    smoothed-noised and resampled to 40 points (Greydanus 2020, "Scaling down deep
    learning"); the whole set is then centred and scaled to unit standard deviation. It
    is a benchmark of the science-of-deep-learning literature, whose authors report
    about 68% test accuracy for an MLP and 94% for a small CNN: model choice matters as
    on images, at a size that trains in seconds on a CPU.

    Generated by the ``mnist1d`` package's own offline generator
    (``mnist1d.data.make_dataset``), never downloaded; install it with
    ``pip install "jaxnn[data]"``. The generator seeds NumPy's and Python's global random
    states; both are restored afterwards.

    Args:
      n: number of examples, a positive multiple of 10 (the generator makes n/10 of each
        digit).
      key: PRNG key (typed or legacy ``uint32[2]``) from which the generator's seed is
        drawn; ``None`` uses the package's default seed (:data:`MNIST1D_REFERENCE_SEED`),
        so ``mnist1d(5000, key=None)`` is the set its default arguments generate, whose
        first 4,000 examples are its training split.

    Raises:
      ImportError: the ``mnist1d`` package is not installed (the message names the extra).
    """
    n = _checks.positive_int("n", n, 10)
    if n % 10:
        raise ValueError(f"n must be a multiple of 10 (n/10 examples of each digit), got n={n}")
    if key is None:
        seed = MNIST1D_REFERENCE_SEED
    else:
        seed = int(jax.random.randint(_checks.prng_key("key", key), (), 0, 2**31 - 1))
    x, y = _mnist1d_arrays(n, seed)
    return Dataset(jax.device_put(x), jax.device_put(y))


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The generator's (x float32, y int32) for ``n`` examples and ``seed``, read-only."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
        from mnist1d.utils import ObjectView
    except ImportError as error:
        raise ImportError(
            'datasets.mnist1d needs the mnist1d package: pip install "jaxnn[data]" '
            f"(or pip install mnist1d); importing it failed with: {error}"
        ) from error
    import random

    defaults: dict = get_dataset_args(as_dict=True)  # pyright: ignore[reportAssignmentType]
    args = ObjectView({**defaults, "num_samples": n, "train_split": 1.0, "seed": seed})
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    x, y = np.asarray(data["x"], np.float32), np.asarray(data["y"], np.int32)
    if x.shape != (n, 40) or y.shape != (n,):
        raise ValueError(
            f"mnist1d's generator returned x {x.shape} and y {y.shape}, expected ({n}, 40), ({n},)"
        )
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _check_noise(noise: float) -> None:
    _checks.real_scalar("noise", noise)
    _checks.in_range("noise", noise, 0.0)


def moons(n: int = 200, *, key: PRNGKey, noise: float = 0.1) -> Dataset:
    """Two interleaving half circles, labels 0 and 1, shuffled.

    Class 0: (cos t, sin t); class 1: (1 − cos t, ½ − sin t), t evenly spaced on [0, π],
    plus N(0, noise²) on each coordinate. Class 0 gets ⌈n/2⌉ points.

    Args:
      n: number of points, ≥ 2.
      key: PRNG key for the noise and the shuffle.
      noise: standard deviation of the Gaussian noise, ≥ 0.
    """
    n = _checks.positive_int("n", n, 2)
    _check_noise(noise)
    return Dataset(*_moons(key, n, noise))


@functools.partial(jax.jit, static_argnums=1)
def _moons(key, n, noise):
    n0 = (n + 1) // 2
    t0 = jnp.linspace(0.0, jnp.pi, n0)
    t1 = jnp.linspace(0.0, jnp.pi, n - n0)
    x = jnp.concatenate(
        [
            jnp.stack([jnp.cos(t0), jnp.sin(t0)], 1),
            jnp.stack([1.0 - jnp.cos(t1), 0.5 - jnp.sin(t1)], 1),
        ]
    )
    y = jnp.concatenate([jnp.zeros(n0, jnp.int32), jnp.ones(n - n0, jnp.int32)])
    return _noisy_shuffled(key, x, y, noise)


def spirals(
    n: int = 300, *, key: PRNGKey, classes: int = 2, noise: float = 0.05, turns: float = 1.0
) -> Dataset:
    """``classes`` interleaved spiral arms, labels 0 .. classes−1, shuffled.

    Arm c has ⌊n/classes⌋ (or one more) points at radius r evenly spaced on (0, 1] and angle
    θ = 2πc/classes + 2π·turns·r: x = r(cos θ, sin θ) + N(0, noise²).

    Args:
      n: number of points, ≥ classes.
      key: PRNG key for the noise and the shuffle.
      classes: number of arms, ≥ 2.
      noise: standard deviation of the Gaussian noise, ≥ 0.
      turns: how many full turns each arm makes, > 0.
    """
    classes = _checks.positive_int("classes", classes, 2)
    n = _checks.positive_int("n", n, classes)
    _check_noise(noise)
    _checks.in_range("turns", turns, 0.0, low_open=True)
    return Dataset(*_spirals(key, n, classes, noise, turns))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _spirals(key, n, classes, noise, turns):
    xs, ys = [], []
    for c in range(classes):
        m = n // classes + (1 if c < n % classes else 0)
        r = jnp.linspace(1.0 / m, 1.0, m)
        theta = 2 * jnp.pi * c / classes + 2 * jnp.pi * turns * r
        xs.append(jnp.stack([r * jnp.cos(theta), r * jnp.sin(theta)], 1))
        ys.append(jnp.full((m,), c, jnp.int32))
    return _noisy_shuffled(key, jnp.concatenate(xs), jnp.concatenate(ys), noise)


def _noisy_shuffled(key: PRNGKey, x: Array, y: Array, noise: float) -> Dataset:
    noise_key, perm_key = jax.random.split(key)
    x = x + noise * jax.random.normal(noise_key, x.shape)
    perm = jax.random.permutation(perm_key, x.shape[0])
    return Dataset(x[perm].astype(jnp.float32), y[perm])


class QuadraticBowl(NamedTuple):
    """E(w) = ½(w − w*)ᵀA(w − w*) with A = U diag(λ) Uᵀ.

    Fields:
      loss: ``loss(w) -> scalar`` for ``w`` of shape ``(d,)``.
      matrix: A, shape ``(d, d)``, exactly symmetric: the Hessian of ``loss`` everywhere.
      minimizer: w*, shape ``(d,)`` (a saddle point if some λ < 0).
      eigenvalues: λ in ascending order, shape ``(d,)``.
      eigenvectors: U, orthonormal columns matching ``eigenvalues``, shape ``(d, d)``.
    """

    loss: Callable[[Array], Array]
    matrix: Array
    minimizer: Array
    eigenvalues: Array
    eigenvectors: Array

    @property
    def condition_number(self) -> float:
        """κ = λmax/λmin when every λ > 0, else infinity."""
        lam = np.asarray(self.eigenvalues)
        return float(lam[-1] / lam[0]) if lam[0] > 0 else math.inf


def quadratic_bowl(
    eigenvalues: Any, *, key: PRNGKey | None = None, minimizer: Any = None
) -> QuadraticBowl:
    """A quadratic with prescribed Hessian eigenvalues (and so a known condition number).

    Args:
      eigenvalues: λ_1..λ_d, finite reals (any order; stored ascending). Positive values
        make a bowl; a negative one makes w* a saddle point.
      key: if given, the eigenvectors are a random rotation (Haar-distributed, from the QR
        decomposition of a Gaussian matrix); if None, they are the coordinate axes.
      minimizer: w*, shape ``(d,)``; default zeros.

    Example:
      >>> bowl = quadratic_bowl([1.0, 100.0])
      >>> bowl.condition_number
      100.0
    """
    dtype = _float_dtype()
    lam = _checks.concrete(eigenvalues)
    if lam is None or lam.ndim != 1 or lam.size == 0:
        raise ValueError(
            f"eigenvalues must be a non-empty 1-D list of concrete numbers, got {eigenvalues!r:.80}"
        )
    _checks.finite("eigenvalues", lam)
    lam = np.sort(lam).astype(dtype)
    d = lam.shape[0]
    if key is None:
        u = np.eye(d, dtype=dtype)
    else:  # the QR of a Gaussian matrix, signs fixed: Haar-distributed (built on the host)
        q, r = np.linalg.qr(np.asarray(_draws.standard("normal", key, (d, d), dtype)))
        u = (q * np.where(np.diag(r) < 0, -1.0, 1.0)).astype(dtype)
    a = (u * lam) @ u.T
    a, lam, u = jax.device_put((0.5 * (a + a.T), lam, u))
    if minimizer is None:
        w_star = jax.device_put(np.zeros((d,), dtype))
    else:
        w_star = jnp.asarray(minimizer, dtype)
        if w_star.shape != (d,):
            raise ValueError(
                f"minimizer must have shape ({d},) to match the {d} eigenvalues, "
                f"got shape {w_star.shape}"
            )
        _checks.finite("minimizer", w_star)

    def loss(w: Array) -> Array:
        e = jnp.asarray(w) - w_star
        return 0.5 * e @ (a @ e)

    return QuadraticBowl(loss, a, w_star, lam, u)


def single_neuron() -> Dataset:
    """Notes 001's slow-learning problem: one example, input x = 1, target y = 0."""
    return Dataset(jnp.ones((1, 1), jnp.float32), jnp.zeros((1, 1), jnp.float32))


def single_neuron_params(w: float, b: float) -> Params:
    """Params of the one-weight, one-bias neuron a = wx + b, in :func:`jaxnn.init_mlp`'s
    layout (the notes start from w=0.6, b=0.9 and from w=2, b=2)."""
    return [{"w": jnp.full((1, 1), w, jnp.float32), "b": jnp.full((1,), b, jnp.float32)}]


def train_test_split(
    data: Dataset, *, key: PRNGKey, test_fraction: float = 0.2
) -> tuple[Dataset, Dataset]:
    """Shuffles the rows with ``key`` and splits off round(n·test_fraction) for testing.

    Raises:
      ValueError: if x and y differ in length, test_fraction is outside (0, 1), or either
        part would be empty.
    """
    x, y = data
    n = int(np.shape(x)[0]) if np.ndim(x) else 0
    if np.ndim(x) < 1 or np.ndim(y) < 1 or np.shape(y)[0] != n:
        raise ValueError(
            f"data.x and data.y must have the same number of rows, got shapes "
            f"{np.shape(x)} and {np.shape(y)}"
        )
    _checks.in_range("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    n_test = round(n * float(test_fraction))
    if n_test < 1 or n_test > n - 1:
        raise ValueError(
            f"test_fraction={test_fraction} of n={n} rows leaves an empty split "
            f"(test: {n_test}, train: {n - n_test})"
        )
    train, test = _split(key, jnp.asarray(x), jnp.asarray(y), n_test)
    return Dataset(*train), Dataset(*test)


@functools.partial(jax.jit, static_argnums=3)
def _split(key, x, y, n_test):
    perm = jax.random.permutation(key, x.shape[0])
    test, train = perm[:n_test], perm[n_test:]
    return (x[train], y[train]), (x[test], y[test])


def standardized(train: Dataset, test: Dataset) -> tuple[Dataset, Dataset, normalization.DataStats]:
    """Standardises both splits' inputs with μ, σ fitted on the training split only.

    Constant features (σ = 0, e.g. the digits' always-blank corner pixels) map to 0.

    Returns:
      ``(train, test, stats)`` with x̃ = (x − μ)/σ; the targets are unchanged.
    """
    stats = normalization.fit_standardizer(train.x, name="train.x")
    return (
        Dataset(normalization.standardize(train.x, stats, name="train.x"), train.y),
        Dataset(normalization.standardize(test.x, stats, name="test.x"), test.y),
        stats,
    )


def batch_indices(key: PRNGKey, n: int, batch_size: int) -> Array:
    """A random partition of range(n) into full minibatches, usable inside ``jit``.

    Returns:
      int array of shape ``(n // batch_size, batch_size)``: row k holds the indices of
      minibatch k. The n mod batch_size left-over examples are dropped for this pass; a
      fresh key per epoch drops different ones. ``n`` and ``batch_size`` are static ints.
    """
    n = _checks.positive_int("n", n)
    batch_size = _checks.positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size must be at most n={n}, got batch_size={batch_size}")
    batches = n // batch_size
    return permutation(key, n)[: batches * batch_size].reshape(batches, batch_size)


#: Above this many rows :func:`permutation` sorts (key, position) pairs as
#: ``jax.random.permutation`` does: too few random bits would be left beside the position.
PACKED_MAX_ROWS = 1 << 24


def permutation(key: PRNGKey, n: int) -> Array:
    """A uniformly random permutation of range(n), usable inside ``jit``: int32, shape (n,).

    Each round draws 32 random bits per position, keeps the top m = 32 − b of them
    (b = ⌈log₂ n⌉ bits hold a position) and writes the position into the low b bits, so
    that sorting these distinct keys, one array with no payload, orders the positions by
    their random bits. Rounds compose: sorting by round r's bits a sequence already sorted
    by round r − 1's is sorting by the concatenated (r·m)-bit keys, and the result is
    uniform unless two positions tie in all of them, which has probability at most
    n²/2 · 2^(−rm). r = ⌈3 log₂ n / m⌉ rounds bound it by 1/(2n), the rule
    ``jax.random.permutation`` applies to its 32-bit keys (it sorts (key, position) pairs,
    a slower sort on a CPU). Above :data:`PACKED_MAX_ROWS` rows this calls
    ``jax.random.permutation``.

    Args:
      key: PRNG key.
      n: the number of positions (a static int ≥ 1).

    Returns:
      int32 array (n,), every one of 0 … n − 1 once.
    """
    n = _checks.positive_int("n", n)
    if n > PACKED_MAX_ROWS:
        return jax.random.permutation(key, n).astype(jnp.int32)
    b = max(1, (n - 1).bit_length())  # positions 0 … n − 1 fit in b bits
    m = 32 - b
    rounds = max(1, math.ceil(3 * math.log2(n) / m))
    low = jnp.uint32((1 << b) - 1)
    position = jnp.arange(n, dtype=jnp.uint32)
    bits = jax.random.bits(key, (rounds, n), jnp.uint32)
    out = position
    for r in range(rounds):
        order = jnp.sort((bits[r] & ~low) | position) & low
        out = out[order]
    return out.astype(jnp.int32)


#: The classification datasets :func:`load` knows by name.
NAMES = ("digits", "mnist1d", "moons", "spirals", *TABULAR)


def load(name: str, *, key: PRNGKey | None = None, n: int = 200) -> Dataset:
    """The built-in classification dataset ``name`` (one of :data:`NAMES`).

    Args:
      name: "digits" (:func:`digits`, fixed: 1,797 examples), "mnist1d" (:func:`mnist1d`,
        generated; without a key, the published set), "moons" or "spirals" (generated:
        :func:`moons`, :func:`spirals`), or "breast_cancer", "wine", "iris" (fixed:
        :func:`tabular`).
      key: PRNG key for a generated dataset (typed or legacy ``uint32[2]``); required for
        "moons" and "spirals", optional for "mnist1d", unused for the fixed sets.
      n: how many examples to generate.

    Example:
      >>> import jax
      >>> from jaxnn import datasets
      >>> datasets.load("moons", key=jax.random.key(0), n=100).x.shape
      (100, 2)
    """
    if name not in NAMES:
        raise ValueError(f"name must be one of {', '.join(NAMES)}, got {name!r}")
    if name == "digits":
        return digits()
    if name in TABULAR:
        return tabular(name)
    if name == "mnist1d":
        return mnist1d(n, key=key)
    if key is None:
        raise ValueError(f"load({name!r}) generates its data: pass key=jax.random.key(seed)")
    return (moons if name == "moons" else spirals)(n, key=key)
