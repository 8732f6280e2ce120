"""Data and params on a 4-device host mesh give what one device gives (float64), run in a
subprocess with --xla_force_host_platform_device_count=4; and the placement errors."""

import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import datasets, sharding

SCRIPT = textwrap.dedent("""
    import json, jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import jaxnn
    from jaxnn import curvature, datasets, losses, optimizers, sharding, spectral, sweep, train
    from jax.flatten_util import ravel_pytree

    assert len(jax.devices()) == 4
    moons = datasets.moons(64, key=jax.random.key(0))
    data = datasets.Dataset(moons.x.astype(jnp.float64), moons.y)
    model = jaxnn.mlp([2, 16, 16, 2], activation="tanh", dtype=jnp.float64)
    params, state = model.init(jax.random.key(1))
    objective = train.objective(model, losses.softmax_cross_entropy)
    out = {}

    def rel(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))

    # data parallel: the dataset split over 4 devices
    mesh = sharding.make_mesh((4,), ("data",))
    split = sharding.shard_batch(data, mesh)
    out["data_spec"] = list(split.x.sharding.spec)
    hook = lambda d: spectral.sharpness_hook(objective, tuple(d), every=10, iters=30,
                                             key=jax.random.key(2))
    fits = [train.fit(objective, params, optimizers.momentum(0.1, 0.9), d, key=jax.random.key(3),
                      steps=40, batch_size=16, hooks=[hook(d)]) for d in (data, split)]
    out["fit"] = rel(fits[1].history["loss"], fits[0].history["loss"])
    out["hook"] = rel(jax.tree.leaves(fits[1].history["hooks"])[0],
                      jax.tree.leaves(fits[0].history["hooks"])[0])
    losses_on = [curvature.objective_loss(objective, state, tuple(d)) for d in (data, split)]
    traces = [spectral.hutchinson_trace(f, fits[0].params, key=jax.random.key(5), probes=20)
              for f in losses_on]
    out["hutchinson"] = rel(traces[1].samples, traces[0].samples)
    # the batch as an argument of the compiled program: the products run split over the
    # devices (all-reduces in the program), with the same numbers
    @jax.jit
    def analyse(p, batch):
        f = curvature.objective_loss(objective, state, batch)
        return (spectral.top_eigenvalues(f, p, 3, key=jax.random.key(4), tol=1e-10).values,
                spectral.hutchpp_trace(f, p, key=jax.random.key(5)).samples)
    jitted = [analyse(fits[0].params, tuple(d)) for d in (data, split)]
    out["jit_lanczos"] = rel(jitted[1][0], jitted[0][0])
    out["jit_hutchpp"] = rel(jitted[1][1], jitted[0][1])
    out["all_reduces"] = analyse.lower(fits[0].params, tuple(split)).compile().as_text().count(
        "all-reduce")
    per_batch = curvature.objective_loss(objective, state)
    ops = [curvature.hessian_curvature(per_batch, tuple(d), batch_size=16) for d in (data, split)]
    v = jax.tree.map(jnp.ones_like, fits[0].params)
    flat = lambda op: ravel_pytree(op.matvec(fits[0].params, v))[0]
    out["batched"] = rel(flat(ops[1]), flat(ops[0]))

    # fully sharded params: every weight split over 4 devices
    model_mesh = sharding.make_mesh((4,), ("model",))
    spread = sharding.shard_params(fits[0].params, model_mesh)
    out["param_specs"] = [list(a.sharding.spec) for a in jax.tree.leaves(spread)]
    whole = spectral.lanczos(losses_on[0], fits[0].params, 12, key=jax.random.key(7))
    parts = spectral.lanczos(losses_on[0], spread, 12, key=jax.random.key(7))
    out["sharded_lanczos"] = rel(parts.alpha, whole.alpha)
    out["basis_specs"] = [list(q.sharding.spec) for q in jax.tree.leaves(parts.basis)]

    # a 2 x 2 sweep: runs over one axis, each run's data over the other
    grid_mesh = sharding.make_mesh((2, 2), ("runs", "data"))
    grid_data = sharding.shard_batch(data, grid_mesh, "data")
    def runner(d):
        def run(hp, key):
            p, s = model.init(key)
            return train.fit(objective, p, optimizers.sgd(hp["lr"]), d, key=key, steps=30,
                             batch_size=16)
        return run
    g = sweep.grid(lr=[0.05, 0.5], seed=range(2))
    two = sweep.sweep(runner(grid_data), g, key=jax.random.key(8), devices=grid_mesh)
    one = sweep.sweep(runner(data), g, key=jax.random.key(8), devices=jax.devices()[:1])
    out["sweep"] = rel(two.runs.history["loss"], one.runs.history["loss"])
    out["sweep_devices"] = two.devices
    print(json.dumps(out))
""")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_four_host_devices_equal_one_device(four_host_devices):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=four_host_devices,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["data_spec"] == ["data"], got
    # float64: the sharded reductions sum in another order, a few ulps apart
    for name in (
        "fit", "hook", "hutchinson", "batched", "jit_lanczos", "jit_hutchpp",
        "sharded_lanczos", "sweep",
    ):  # fmt: skip
        assert got[name] < 1e-10, (name, got[name])
    assert got["all_reduces"] > 0
    # every weight matrix and every bias of 16 is split; the output bias (2) is replicated
    assert got["param_specs"].count([]) == 1
    assert all("model" in spec for spec in got["basis_specs"] if spec), got["basis_specs"]
    assert got["sweep_devices"] == 4


def test_placement_errors_name_the_argument():
    mesh = sharding.make_mesh((1,), ("data",))
    data = datasets.moons(10, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"axis='batch' is not an axis of the mesh.*\('data',\)"):
        sharding.shard_batch(data, mesh, "batch")
    with pytest.raises(TypeError, match=r"mesh must be a jax.sharding.Mesh"):
        sharding.shard_params({"w": jnp.ones(3)}, jax.devices())
    with pytest.raises(ValueError, match="remainder must be one of error, drop, pad"):
        sharding.shard_batch(data, mesh, remainder="wrap")
    with pytest.raises(ValueError, match=r"first-axis lengths \[3, 10\]"):
        sharding.shard_batch((data.x, jnp.ones(3)), mesh)


def test_remainders_on_an_axis_that_does_not_divide(monkeypatch):
    """What "drop" and "pad" keep, checked with a 3-device axis faked by its size."""
    mesh = sharding.make_mesh((1,), ("data",))
    monkeypatch.setattr(sharding, "_axis_size", lambda mesh, axis, argument: 3)
    data = datasets.Dataset(jnp.arange(20.0).reshape(10, 2), jnp.arange(10))
    with pytest.raises(ValueError, match="10 examples, which the mesh axis 'data' of 3 devices"):
        sharding.shard_batch(data, mesh)
    dropped = sharding.shard_batch(data, mesh, remainder="drop")
    np.testing.assert_array_equal(np.asarray(dropped.y), np.arange(9))
    padded = sharding.shard_batch(data, mesh, remainder="pad")
    np.testing.assert_array_equal(np.asarray(padded.y), [*range(10), 0, 1])
    np.testing.assert_array_equal(np.asarray(padded.x[10:]), np.asarray(data.x[:2]))


def test_sweep_mesh_needs_a_runs_axis():
    from jaxnn import sweep

    with pytest.raises(ValueError, match=r"Mesh with axes \('data',\).*named 'runs'"):
        sweep.sweep(
            lambda hp, key: None, sweep.grid(lr=[0.1]), key=jax.random.key(0),
            devices=sharding.make_mesh((1,), ("data",)),
        )  # fmt: skip
