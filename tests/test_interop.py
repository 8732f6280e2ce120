"""Flax NNX, Flax Linen and Equinox models through jaxnn.interop: batch-norm state threaded
through fit, sweeps equal separate runs, exact and matrix-free spectra agree (float64)."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import curvature, datasets, hessian, interop, losses, optimizers, spectral, sweep, train

pytestmark = pytest.mark.usefixtures("x64")

flax = pytest.importorskip("flax", reason="the Flax adapters need flax (the test extra)")
eqx = pytest.importorskip("equinox", reason="the Equinox adapter needs equinox (the test extra)")
nn = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")

WIDTH = 8


class NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(2, WIDTH, rngs=rngs)
        self.norm = nnx.BatchNorm(WIDTH, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)
        self.out = nnx.Linear(WIDTH, 2, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(nnx.tanh(self.norm(self.hidden(x)))))


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.BatchNorm(use_running_average=not train)(nn.Dense(WIDTH)(x))
        return nn.Dense(2)(nn.Dropout(0.1, deterministic=not train)(nn.tanh(x)))


class EqxNet(eqx.Module):
    hidden: eqx.nn.Linear
    norm: eqx.nn.BatchNorm
    drop: eqx.nn.Dropout
    out: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.hidden = eqx.nn.Linear(2, WIDTH, key=k1, dtype=jnp.float32)
        self.norm = eqx.nn.BatchNorm(WIDTH, axis_name="batch", mode="batch", dtype=jnp.float32)
        self.drop = eqx.nn.Dropout(0.1)
        self.out = eqx.nn.Linear(WIDTH, 2, key=k2, dtype=jnp.float32)

    def __call__(self, x, state, *, key=None):
        x, state = self.norm(self.hidden(x), state)
        return self.out(self.drop(jnp.tanh(x), key=key)), state


DATA = datasets.moons(128, key=jax.random.key(0))
MODELS = {
    "nnx": lambda: interop.from_nnx(NNXNet),
    "linen": lambda: interop.from_linen(LinenNet(), DATA.x[:2]),
    "equinox": lambda: interop.from_equinox(eqx.nn.make_with_state(EqxNet)),
}


def _float64(tree):
    return jax.tree.map(
        lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


@pytest.mark.parametrize("library", sorted(MODELS))
def test_trains_threads_batch_norm_and_agrees_exact_vs_matrix_free(library):
    model = MODELS[library]()
    params, state = model.init(jax.random.key(1))
    objective = train.objective(model, losses.softmax_cross_entropy)
    x = DATA.x[:16]
    # inference leaves the state as it is; training moves the running averages
    assert model.apply(params, state, x, train=False)[1] is state
    _, moved = model.apply(params, state, x, train=True, key=jax.random.key(2))
    changed = [
        not np.allclose(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(moved))
        if jnp.issubdtype(a.dtype, jnp.floating)
    ]
    assert any(changed)
    result = train.fit(
        objective, params, optimizers.sgd(0.2), DATA, state=state,
        key=jax.random.key(3), steps=200, batch_size=32,
    )  # fmt: skip
    before = objective.evaluate(params, state, tuple(DATA))
    after = objective.evaluate(result.params, result.state, tuple(DATA))
    assert float(after["loss"]) < 0.5 * float(before["loss"]) and float(after["accuracy"]) > 0.8
    # fit threaded the state: the trained model's running averages are not the init's
    assert not all(
        np.allclose(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(result.state))
        if jnp.issubdtype(a.dtype, jnp.floating)
    )
    # the inference-mode loss in float64: exact top eigenvalue against converged Lanczos
    batch = (DATA.x.astype(jnp.float64), DATA.y)
    loss_fn = curvature.objective_loss(objective, _float64(result.state), batch)
    p64 = _float64(result.params)
    exact = hessian.spectrum(loss_fn, p64, vectors=False)
    top = spectral.top_eigenvalues(loss_fn, p64, 2, key=jax.random.key(4), tol=1e-10)
    np.testing.assert_allclose(np.asarray(top.values), exact.eigenvalues[::-1][:2], rtol=1e-8)


@pytest.mark.parametrize("library", sorted(MODELS))
def test_a_sweep_equals_separate_runs(library):
    model = MODELS[library]()
    objective = train.objective(model, losses.softmax_cross_entropy)

    def run(hp, key):
        params, state = model.init(key)  # a seeded init inside run
        return train.fit(
            objective, params, optimizers.momentum(hp["lr"], 0.9), DATA, state=state,
            key=key, steps=40, batch_size=32,
        )  # fmt: skip

    grid = sweep.grid(lr=[0.02, 0.1], seed=range(2))
    swept = sweep.sweep(run, grid, key=jax.random.key(5))
    for i in range(len(grid)):
        point = grid.point(i)
        alone = run(
            {"lr": jnp.asarray(point["lr"])}, jax.random.fold_in(jax.random.key(5), point["seed"])
        )
        # float32 training: vmapped and single programs differ by 2e-7 relative, rounding
        np.testing.assert_allclose(
            swept.final_loss[i], float(alone.history["loss"][-1]), rtol=2e-5, atol=1e-7
        )


def test_what_the_adapters_cannot_find_is_named():
    class NoState(eqx.Module):
        norm: eqx.nn.BatchNorm

        def __init__(self, key):
            self.norm = eqx.nn.BatchNorm(2, axis_name="batch", mode="batch")

        def __call__(self, x, state):
            return self.norm(x, state)

    with pytest.raises(ValueError, match=r"stateful layers \(BatchNorm\).*make_with_state"):
        interop.from_equinox(NoState).init(jax.random.key(0))

    class Sneaky(nn.Module):  # creates a collection only in training
        @nn.compact
        def __call__(self, x, train):
            if train:
                counter = self.variable("counters", "n", lambda: jnp.zeros(()))
                counter.value += 1
            return nn.Dense(2)(x)

    model = interop.from_linen(Sneaky(), jnp.ones((1, 2)))
    params, state = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match="uses a collection in training that its init did not"):
        model.apply(params, state, jnp.ones((2, 2)), train=True)
    with pytest.raises(ValueError, match=r"train_kwarg='training', but LinenNet.__call__ takes x"):
        interop.from_linen(LinenNet(), jnp.ones((1, 2)), train_kwarg="training")

    class Frozen(nnx.Module):
        def __init__(self, rngs):
            self.scale = nnx.BatchStat(jnp.ones(2))

        def __call__(self, x):
            return x * self.scale.value

    with pytest.raises(ValueError, match=r"Frozen has no nnx.Param variables"):
        interop.from_nnx(Frozen).init(jax.random.key(0))
    with pytest.raises(TypeError, match=r"make\(rngs\) must return an nnx.Module, got int"):
        interop.from_nnx(lambda rngs: 3).init(jax.random.key(0))


def test_a_missing_library_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "equinox", None)
    with pytest.raises(ImportError, match=r"interop.from_equinox needs equinox: pip install"):
        interop.from_equinox(lambda key: None)
