"""Every public function that draws randomness accepts both kinds of PRNG key.

A typed key (``jax.random.key(seed)``) and the legacy raw key (``jax.random.PRNGKey(seed)``,
``uint32[2]``, the form of optax's, Flax's and Equinox's examples) hold the same bits, so
each function must give the same numbers from either.
"""

import importlib
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import datasets, hessian, initializers, losses, model, optimizers, spectral, sweep, train

PUBLIC = [
    "curvature",
    "datasets",
    "hessian",
    "initializers",
    "landscape",
    "model",
    "spectral",
    "sweep",
    "train",
]


def _bowl_loss(w):
    return 0.5 * jnp.sum(jnp.arange(1.0, 7.0) * w**2)


def _fit(key):
    data = datasets.moons(64, key=jax.random.key(1))
    obj = train.objective(jaxnn.forward, losses.softmax_cross_entropy)
    params = jaxnn.init_mlp(jax.random.key(2), [2, 4, 2])
    return train.fit(obj, params, optimizers.sgd(0.1), data, key=key, steps=5, batch_size=16)


def _sweep(key):
    def run(hp, k):
        params = jaxnn.init_mlp(k, [2, 3, 2])
        obj = train.objective(jaxnn.forward, losses.softmax_cross_entropy)
        data = datasets.moons(32, key=jax.random.key(1))
        return train.fit(obj, params, optimizers.sgd(hp["lr"]), data, key=k, steps=3)

    return sweep.sweep(run, sweep.grid(lr=[0.1, 0.2], seed=[0, 1]), key=key).final_loss


def _hook(make):
    def go(key):
        obj = train.objective(jaxnn.forward, losses.softmax_cross_entropy)
        data = datasets.moons(32, key=jax.random.key(1))
        hook = make(obj, tuple(data), key)
        params = jaxnn.init_mlp(jax.random.key(2), [2, 4, 2])
        result = train.fit(
            obj, params, optimizers.sgd(0.1), data, key=jax.random.key(3), steps=4, hooks=[hook]
        )
        return jax.tree.leaves(result.history["hooks"])

    return go


W = jnp.ones(6)
MODEL = model.mlp([2, 4, 2], dropout=0.5)

# name -> function of a key; each must give the same numbers from both kinds of key
CALLS = {
    "datasets.batch_indices": lambda k: datasets.batch_indices(k, 10, 3),
    "datasets.load": lambda k: datasets.load("spirals", key=k, n=30).x,
    "datasets.mnist1d": lambda k: datasets.mnist1d(20, key=k).x,
    "datasets.moons": lambda k: datasets.moons(20, key=k).x,
    "datasets.permutation": lambda k: datasets.permutation(k, 10),
    "datasets.quadratic_bowl": lambda k: datasets.quadratic_bowl([1.0, 2.0, 3.0], key=k).matrix,
    "datasets.spirals": lambda k: datasets.spirals(20, key=k).x,
    "datasets.train_test_split": lambda k: (
        datasets.train_test_split(datasets.moons(20, key=jax.random.key(0)), key=k)[0].x
    ),
    "hessian.check_rates": lambda k: (
        hessian.check_rates(_bowl_loss, jnp.zeros(6), 0.1, 5, key=k).alpha
    ),
    **{
        f"initializers.{name}": (lambda k, name=name: getattr(initializers, name)(k, (5, 3)))
        for name in ("zeros", "small", "normal", "lecun", "xavier", "glorot", "he")
    },
    "model.init_mlp": lambda k: jaxnn.init_mlp(k, [3, 4, 2]),
    "conv.cnn.init": lambda k: jaxnn.cnn(input_shape=(4, 1), channels=(2,), classes=2).init(k),
    "model.dropout": lambda k: model.dropout(jnp.ones((4, 5)), 0.5, key=k),
    "model.mlp.init": lambda k: MODEL.init(k),
    "model.mlp.apply": lambda k: MODEL.apply(
        MODEL.init(jax.random.key(0))[0], {}, jnp.ones((3, 2)), train=True, key=k
    )[0],
    "curvature.objective_loss": lambda k: spectral.objective_loss(
        train.objective(MODEL, losses.softmax_cross_entropy),
        batch=(jnp.ones((3, 2)), jnp.array([0, 1, 0])),
        train=True,
        key=k,
    )(MODEL.init(jax.random.key(0))[0]),
    "spectral.power_iteration": lambda k: spectral.power_iteration(_bowl_loss, W, key=k).eigenvalue,
    "spectral.lambda_max_min": lambda k: spectral.lambda_max_min(_bowl_loss, W, key=k)[:2],
    "spectral.lanczos": lambda k: spectral.lanczos(_bowl_loss, W, 4, key=k).alpha,
    "spectral.top_eigenvalues": lambda k: spectral.top_eigenvalues(_bowl_loss, W, 2, key=k).values,
    "spectral.bottom_eigenvalues": lambda k: (
        spectral.bottom_eigenvalues(_bowl_loss, W, 2, key=k).values
    ),
    "curvature.fisher": lambda k: spectral.fisher(
        lambda p, x: x @ p, (jnp.ones((4, 6)), jnp.zeros(4)), key=k
    ).matvec(jnp.ones((6, 3)), jnp.ones((6, 3))),
    "landscape.random_direction": lambda k: jaxnn.landscape.random_direction(k, {"w": W[:, None]}),
    "spectral.hutchpp_trace": lambda k: spectral.hutchpp_trace(_bowl_loss, W, key=k).samples,
    "spectral.hessian_diagonal": lambda k: spectral.hessian_diagonal(_bowl_loss, W, key=k),
    "spectral.hutchinson_trace": lambda k: spectral.hutchinson_trace(_bowl_loss, W, key=k).samples,
    "spectral.spectral_density": lambda k: (
        spectral.spectral_density(_bowl_loss, W, key=k, order=4, probes=2).nodes
    ),
    "spectral.sharpness_hook": _hook(
        lambda obj, batch, k: spectral.sharpness_hook(obj, batch, every=2, iters=5, key=k)
    ),
    "spectral.eigen_tracking_hook": _hook(
        lambda obj, batch, k: spectral.eigen_tracking_hook(obj, batch, k=2, every=2, key=k)
    ),
    "spectral.alignment_hook": _hook(
        lambda obj, batch, k: spectral.alignment_hook(obj, batch, k=2, every=2, key=k)
    ),
    "sweep.sweep": _sweep,
    "sweep.lr_sweep": lambda k: (
        sweep.lr_sweep(
            train.objective(jaxnn.forward, losses.softmax_cross_entropy),
            jaxnn.init_mlp(jax.random.key(2), [2, 3, 2]),
            datasets.moons(32, key=jax.random.key(1)),
            lrs=[0.1, 0.2],
            key=k,
            steps=3,
            batch_size=8,
        ).final_loss
    ),
    "train.fit": lambda k: _fit(k).history["loss"],
    "train.layer_grad_norms": lambda k: train.layer_grad_norms(
        train.objective(MODEL, losses.softmax_cross_entropy),
        MODEL.init(jax.random.key(0))[0],
        {},
        (jnp.ones((3, 2)), jnp.array([0, 1, 0])),
        key=k,
    ),
    "train.layer_grad_norms_hook": _hook(
        lambda obj, batch, k: train.layer_grad_norms_hook(obj, batch, every=2, key=k)
    ),
}


def test_every_function_with_a_key_is_covered():
    """A new public function that takes ``key`` must be added to CALLS."""
    found = set()
    for name in PUBLIC:
        module = importlib.import_module(f"jaxnn.{name}")
        for attr in module.__all__:
            f = getattr(module, attr)
            if inspect.isfunction(f) and "key" in inspect.signature(f).parameters:
                home = f.__module__.split(".")[1]
                found.add(f"{home}.{attr}")
    assert found - set(CALLS) == set()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_typed_and_legacy_keys_give_the_same_numbers(name):
    typed = CALLS[name](jax.random.key(7))
    legacy = CALLS[name](jax.random.PRNGKey(7))
    a, b = jax.tree.leaves(typed), jax.tree.leaves(legacy)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        scale = max(float(np.max(np.abs(x), initial=0.0)), 1.0)
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("bad", [7, jnp.zeros(2), jnp.zeros(3, jnp.uint32), "key"])
def test_anything_else_is_refused_by_name(bad):
    with pytest.raises(TypeError, match="key must be one PRNG key"):
        spectral.power_iteration(_bowl_loss, W, key=bad)
