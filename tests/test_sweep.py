"""jaxnn.sweep: grids, vmapped sweeps against separate fits, chunks, devices, the lr report.

Sweeps are compared with the same runs made one at a time, in float64 so that the
batched and single programs agree to rounding; the quadratic-bowl sweeps are checked
against the closed form of gradient descent.
"""

import functools
import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import datasets, losses, optimizers, sweep, train
from jaxnn.sweep import _devices as sweep_devices

pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest.py)


# ---- grids -------------------------------------------------------------------------------


def test_grid_is_the_product_in_c_order():
    g = sweep.grid(lr=[0.1, 0.01, 1.0], mu=[0, 0.9], seed=range(2))
    assert g.names == ("lr", "mu", "seed") and g.shape == (3, 2, 2) and g.size == 12
    points = g.points()
    assert points["lr"].tolist() == [0.1] * 4 + [0.01] * 4 + [1.0] * 4
    assert points["mu"].tolist() == [0.0, 0.0, 0.9, 0.9] * 3
    assert points["seed"].tolist() == [0, 1] * 6 and points["seed"].dtype == np.int64
    assert g.point(7) == {"lr": 0.01, "mu": 0.9, "seed": 1}
    assert sweep.grid(lr=0.5).axes["lr"].tolist() == [0.5]  # a number is a one-value axis


def test_log_range_is_geometric():
    values = sweep.log_range(1e-4, 1.0, 5)
    np.testing.assert_allclose(values, [1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-12)
    np.testing.assert_allclose(sweep.log_range(0.3, 0.3, 1), [0.3])


@pytest.mark.parametrize(
    "axes,error,message",
    [
        ({}, ValueError, "grid needs at least one axis"),
        ({"lr": []}, ValueError, "grid axis 'lr' is empty"),
        ({"lr": [0.1, 0.0]}, ValueError, "grid axis 'lr': lr must satisfy 0.0 < lr, got 0.0"),
        ({"mu": [0.5, 1.0]}, ValueError, "mu must satisfy 0.0 <= mu < 1.0, got 1.0"),
        ({"dropout": [-0.1]}, ValueError, "dropout must satisfy 0.0 <= dropout < 1.0, got -0.1"),
        ({"dropout": [1.0]}, ValueError, "dropout must satisfy 0.0 <= dropout < 1.0, got 1.0"),
        ({"weight_decay": [-1e-3]}, ValueError, "weight_decay must satisfy 0.0 <= weight_decay"),
        ({"seed": [0, 1.5]}, ValueError, "grid axis 'seed' must hold ints >= 0"),
        ({"seed": [-1]}, ValueError, "grid axis 'seed' must hold ints >= 0"),
        ({"lr": [0.1, 0.1]}, ValueError, "grid axis 'lr' repeats a value"),
        ({"scale": [1.0, np.nan]}, ValueError, "grid axis 'scale' must be finite"),
        ({"lr": [[0.1, 0.2]]}, ValueError, "grid axis 'lr' must be a flat sequence"),
        ({"lr": "0.1"}, TypeError, "grid axis 'lr' must be a sequence of numbers"),
        ({"lr": [True, False]}, TypeError, "grid axis 'lr' must hold real numbers"),
    ],
)
def test_bad_grids_are_refused(axes, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        sweep.grid(**axes)


@pytest.mark.parametrize(
    "args,message",
    [
        ((0.0, 1.0, 8), "low must satisfy 0.0 < low, got 0.0"),
        ((-1e-3, 1.0, 8), "low must satisfy 0.0 < low, got -0.001"),
        ((1.0, 0.1, 8), "high must satisfy 1.0 <= high, got 0.1"),
        ((0.1, 1.0, 0), "num must be an int >= 1, got 0"),
        ((0.1, 1.0, 1), "num=1 gives one value"),
    ],
)
def test_log_range_refuses_non_positive_and_empty_ranges(args, message):
    with pytest.raises(ValueError, match=message):
        sweep.log_range(*args)


# ---- a small MLP sweep against separate fits -------------------------------------------

MOONS = datasets.moons(64, key=jax.random.key(0))
DATA = (np.asarray(MOONS.x, np.float64), np.asarray(MOONS.y))
OBJECTIVE = train.objective(
    functools.partial(jaxnn.forward, activation="tanh"), losses.softmax_cross_entropy
)


def mlp_run(hp, key):
    init_key, fit_key = jax.random.split(key)
    params = jaxnn.init_mlp(init_key, (2, 8, 2), dtype=jnp.float64)
    params = jax.tree.map(lambda w: w * hp["init_scale"], params)
    return train.fit(
        OBJECTIVE,
        params,
        optimizers.momentum(hp["lr"], hp["mu"]),
        DATA,
        key=fit_key,
        steps=40,
        batch_size=16,
    )


@pytest.fixture(scope="module")
def mlp_sweep():
    with jax.enable_x64(True):
        g = sweep.grid(lr=[0.05, 0.5, 3.0], mu=[0.0, 0.9], init_scale=[1.0, 2.0], seed=range(2))
        return sweep.sweep(mlp_run, g, key=jax.random.key(1))


def test_sweep_equals_separate_fits(mlp_sweep):
    result = mlp_sweep
    one = jax.jit(mlp_run)
    assert result.runs.history["loss"].shape == (24, 40)
    for k in range(result.grid.size):
        point = result.grid.point(k)
        hp = {
            n: jnp.asarray(v, jnp.int32 if n == "seed" else jnp.float64) for n, v in point.items()
        }
        alone = one(hp, jax.random.fold_in(jax.random.key(1), point["seed"]))
        for name in ("loss", "grad_norm", "lr"):
            np.testing.assert_allclose(
                result.runs.history[name][k],
                alone.history[name],
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{name} of run {k}",
            )
        for got, want in zip(jax.tree.leaves(result.runs.params), jax.tree.leaves(alone.params)):
            np.testing.assert_allclose(got[k], want, rtol=1e-9, atol=1e-12)
        assert bool(result.diverged[k]) == bool(alone.diverged)
    np.testing.assert_array_equal(result.final_loss, result.runs.history["loss"][:, -1])
    assert result.devices == len(jax.devices()) and result.compile_seconds > 0


@pytest.mark.parametrize("make", [optimizers.momentum, optimizers.adam])
def test_a_float32_model_swept_under_x64_keeps_its_dtypes(make):
    """The grid's float64 values are strongly typed; the optimiser state must not follow
    them to float64 (a scan's carry keeps its types)."""

    def run(hp, key):
        params = jaxnn.init_mlp(key, (2, 8, 2))  # float32
        return train.fit(OBJECTIVE, params, make(hp["lr"]), DATA, key=key, steps=5)

    grid = sweep.grid(lr=[0.01, 0.1])
    result = sweep.sweep(run, grid, key=jax.random.key(2))
    assert {a.dtype for a in jax.tree.leaves(result.runs.params)} == {np.dtype(np.float32)}
    for k in range(2):
        alone = run({"lr": jnp.float32(grid.point(k)["lr"])}, jax.random.key(2))
        np.testing.assert_allclose(
            result.runs.history["loss"][k], alone.history["loss"], rtol=1e-5, atol=1e-7
        )


def test_zipped_points_are_the_matching_runs_of_the_product(mlp_sweep):
    # three points of the product grid, given one by one (seed 1 twice: values may repeat)
    picks = [(0.5, 0.9, 1.0, 1), (3.0, 0.0, 2.0, 1), (0.05, 0.9, 2.0, 0)]
    points = sweep.zipped(
        **{n: [p[i] for p in picks] for i, n in enumerate(("lr", "mu", "init_scale", "seed"))}
    )
    assert points.size == 3 and points.shape == (3,) and points.point(1)["lr"] == 3.0
    result = sweep.sweep(mlp_run, points, key=jax.random.key(1), chunk_size=2)
    product = mlp_sweep.reshaped(mlp_sweep.runs.history["loss"])
    lrs, mus, scales = [0.05, 0.5, 3.0], [0.0, 0.9], [1.0, 2.0]
    for k, (lr, mu, scale, seed) in enumerate(picks):
        want = product[lrs.index(lr), mus.index(mu), scales.index(scale), seed]
        np.testing.assert_allclose(result.runs.history["loss"][k], want, rtol=1e-9, atol=1e-12)
    with pytest.raises(TypeError, match="lr_report needs a sweep over a product grid"):
        sweep.lr_report(result)
    with pytest.raises(ValueError, match="zipped axes must all have the same length"):
        sweep.zipped(lr=[0.1, 0.2], seed=[0])
    with pytest.raises(ValueError, match=r"grid axis 'lr': lr must satisfy 0.0 < lr"):
        sweep.zipped(lr=[0.1, -1.0])


def test_every_axis_changes_the_runs(mlp_sweep):
    loss = mlp_sweep.reshaped(mlp_sweep.runs.history["loss"])  # (lr, mu, scale, seed, steps)
    assert loss.shape == (3, 2, 2, 2, 40)
    for axis in range(4):
        assert np.ptp(loss[..., -1], axis=axis).min() > 1e-6


def test_dropout_and_weight_decay_axes_equal_separate_fits():
    def run(hp, key):
        init_key, fit_key = jax.random.split(key)
        model = jaxnn.mlp((2, 8, 2), dropout=hp["dropout"])
        params, state = model.init(init_key)
        params = jax.tree.map(lambda w: w.astype(jnp.float64), params)
        return train.fit(
            train.objective(model, losses.softmax_cross_entropy),
            params,
            optimizers.sgd(0.3, weight_decay=hp["weight_decay"]),
            DATA,
            key=fit_key,
            steps=15,
            batch_size=32,
            state=state,
        )

    result = sweep.sweep(
        run, sweep.grid(dropout=[0.0, 0.5], weight_decay=[0.0, 0.1]), key=jax.random.key(4)
    )
    one = jax.jit(run)
    for k in range(4):
        hp = {n: jnp.float64(v) for n, v in result.grid.point(k).items()}
        np.testing.assert_allclose(
            result.runs.history["loss"][k], one(hp, jax.random.key(4)).history["loss"], rtol=1e-9
        )
    assert np.ptp(result.final_loss) > 1e-3


def quadratic_bowl_run(bowl, w0, steps, optimizer=optimizers.sgd):
    def run(hp, key):
        return train.fit(
            bowl.loss,
            w0,
            optimizer(hp["lr"]),
            None,
            key=key,
            steps=steps,
        )

    return run


def test_divergence_is_flagged_as_in_separate_fits():
    bowl = datasets.quadratic_bowl([1.0, 10.0], key=jax.random.key(2))
    run = quadratic_bowl_run(bowl, jnp.array([1.0, -1.0]), 300)
    result = sweep.sweep(run, sweep.grid(lr=[0.05, 0.15, 0.19, 0.21, 0.3]), key=jax.random.key(3))
    np.testing.assert_array_equal(result.diverged, [False, False, False, True, True])
    one = jax.jit(run)
    for k, lr in enumerate(result.grid.axes["lr"]):
        alone = one({"lr": jnp.float64(lr)}, jax.random.key(3))
        assert bool(alone.diverged) == bool(result.diverged[k])
        assert abs(int(alone.diverged_at) - int(result.diverged_at[k])) <= 1
    assert np.isnan(result.final_loss[3:]).all() and (result.diverged_at[3:] > 0).all()


def test_ten_thousand_points_run_in_chunks_and_follow_the_closed_form(monkeypatch):
    bowl = datasets.quadratic_bowl([0.5, 4.0], key=jax.random.key(4))
    w0, steps = jnp.array([1.0, 2.0]), 20
    run = quadratic_bowl_run(bowl, w0, steps)
    per_run = sum(
        np.dtype(s.dtype).itemsize * int(np.prod(s.shape))
        for s in jax.tree.leaves(
            jax.eval_shape(run, {"lr": jax.ShapeDtypeStruct((), jnp.float64)}, jax.random.key(0))
        )
    )
    monkeypatch.setattr(sweep_devices, "CHUNK_BYTES", 8 * per_run * 1500)  # 1,500 runs a chunk
    lrs = sweep.log_range(1e-3, 0.45, 10_000)  # 2/λmax = 0.5
    result = sweep.sweep(run, sweep.grid(lr=lrs), key=jax.random.key(5), keep_params=False)
    devices = len(jax.devices())
    assert result.chunk_size <= 1500 * devices and result.chunk_size % devices == 0
    assert -(-10_000 // result.chunk_size) == 7  # seven chunks, the last one padded
    assert result.runs.params is None and result.runs.opt_state is None
    # E(w_t) = Σ ½ λ_i (1 − ηλ_i)^(2t) α_i², at the params before the last step t = steps − 1
    alpha = np.asarray(bowl.eigenvectors).T @ np.asarray(w0 - bowl.minimizer)
    lam = np.asarray(bowl.eigenvalues)
    decay = (1 - lrs[:, None] * lam) ** (2 * (steps - 1))
    np.testing.assert_allclose(result.final_loss, (0.5 * lam * alpha**2 * decay).sum(1), rtol=1e-10)


def test_one_compilation_for_all_chunks():
    bowl = datasets.quadratic_bowl([1.0, 3.0])
    inner = quadratic_bowl_run(bowl, jnp.array([1.0, 1.0]), 10)
    traces = []

    def run(hp, key):
        traces.append(1)
        return inner(hp, key)

    result = sweep.sweep(
        run, sweep.grid(lr=np.linspace(0.1, 0.6, 10)), key=jax.random.key(0), chunk_size=3
    )
    assert result.chunk_size == -(-3 // len(jax.devices())) * len(jax.devices())
    assert len(traces) == 1  # traced once: the axis checks and the compiled program share it
    again = sweep.sweep(
        run, sweep.grid(lr=np.linspace(0.2, 0.7, 10)), key=jax.random.key(0), chunk_size=3
    )
    assert len(traces) == 1  # the same run, axes and chunks: the compiled program is reused
    assert again.runs.history["lr"][0, 0] == pytest.approx(0.2)
    unchunked = sweep.sweep(inner, sweep.grid(lr=np.linspace(0.1, 0.6, 10)), key=jax.random.key(0))
    np.testing.assert_allclose(
        result.runs.history["loss"], unchunked.runs.history["loss"], rtol=1e-12
    )


# ---- bad input ---------------------------------------------------------------------------


def bowl_loss(w):
    return 0.5 * (w[0] ** 2 + 2.0 * w[1] ** 2)


def bowl_fit(lr, key, steps=5):
    return train.fit(
        bowl_loss,
        jnp.ones(2),
        optimizers.sgd(lr),
        None,
        key=key,
        steps=steps,
    )


def test_an_axis_the_run_never_reads_is_refused():
    with pytest.raises(
        ValueError,
        match=r"grid axis 'mu' changes nothing: .* never reads "
        r"hparams\['mu'\] \(the axes it reads: \['lr'\]\)",
    ):
        sweep.sweep(
            lambda hp, key: bowl_fit(hp["lr"], key),
            sweep.grid(lr=[0.1, 0.2], mu=[0.0, 0.9]),
            key=jax.random.key(0),
        )

    def reads_but_discards(hp, key):
        _ = hp["mu"] * 2.0  # computed, but nothing the run returns depends on it
        return bowl_fit(hp["lr"], key)

    with pytest.raises(ValueError, match="grid axis 'mu' changes nothing"):
        sweep.sweep(reads_but_discards, {"lr": [0.1], "mu": [0.0, 0.5]}, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"grid axis 'seed' changes nothing: .* or its key"):
        sweep.sweep(
            lambda hp, key: bowl_fit(hp["lr"], jax.random.key(0)),
            sweep.grid(lr=[0.1], seed=range(3)),
            key=jax.random.key(0),
        )


def test_a_seed_axis_reaches_the_run_through_its_key():
    def noisy(hp, key):  # reads the key, not hparams["seed"]
        w0 = jax.random.normal(key, (2,))
        return train.fit(
            bowl_loss,
            w0,
            optimizers.sgd(hp["lr"]),
            None,
            key=key,
            steps=3,
        )

    result = sweep.sweep(noisy, sweep.grid(lr=[0.1], seed=range(3)), key=jax.random.key(0))
    first = result.runs.history["loss"][:, 0]
    assert len(np.unique(first)) == 3
    w0 = jax.random.normal(jax.random.fold_in(jax.random.key(0), 2), (2,))
    assert first[2] == pytest.approx(float(bowl_loss(w0)), rel=1e-12)


@pytest.mark.parametrize(
    "run,grid,key,error,message",
    [
        (
            lambda hp, key: bowl_fit(float(hp["lr"]), key),
            {"lr": [0.1]},
            jax.random.key(0),
            TypeError,
            "must use hparams as traced JAX scalars",
        ),
        (
            lambda hp, key: bowl_fit(hp["lr"], key, steps=int(hp["n"])),
            {"lr": [0.1], "n": [2, 3]},
            jax.random.key(0),
            TypeError,
            "must use hparams as traced JAX scalars",
        ),
        (
            lambda hp, key: bowl_fit(hp["lr"] * hp["mu"], key),
            {"lr": [0.1]},
            jax.random.key(0),
            KeyError,
            r"run\(hparams, key\) raised KeyError\('mu'\); the grid's axes are \['lr'\]",
        ),
        (
            lambda hp, key: bowl_loss(jnp.ones(2) * hp["lr"]),
            {"lr": [0.1]},
            jax.random.key(0),
            TypeError,
            "must return a jaxnn FitResult",
        ),
        ("fit", {"lr": [0.1]}, jax.random.key(0), TypeError, "run must be a function"),
        (
            lambda hp, key: bowl_fit(hp["lr"], key),
            [0.1, 0.2],
            jax.random.key(0),
            TypeError,
            "grid must be a jaxnn.sweep.Grid",
        ),
        (
            lambda hp, key: bowl_fit(hp["lr"], key),
            {"lr": [0.1]},
            0,
            TypeError,
            "key must be one PRNG key",
        ),
        (
            lambda hp, key: bowl_fit(hp["lr"], key),
            {"lr": [0.1]},
            jax.random.split(jax.random.key(0)),
            TypeError,
            "key must be one PRNG key",
        ),
    ],
)
def test_bad_sweeps_are_refused_before_running(run, grid, key, error, message):
    with pytest.raises(error, match=message):
        sweep.sweep(run, grid, key=key)


def test_bad_chunk_size_and_devices():
    run = lambda hp, key: bowl_fit(hp["lr"], key)
    with pytest.raises(ValueError, match="chunk_size must be an int >= 1, got 0"):
        sweep.sweep(run, {"lr": [0.1]}, key=jax.random.key(0), chunk_size=0)
    with pytest.raises(TypeError, match=r"devices must be a non-empty sequence of jax.Device"):
        sweep.sweep(run, {"lr": [0.1]}, key=jax.random.key(0), devices=[])


def test_use_cpu_devices_after_jax_started():
    have = len(jax.devices("cpu"))
    assert sweep.use_cpu_devices(have) == have  # already so: nothing to do
    with pytest.raises(RuntimeError, match=f"already runs the CPU as {have} device"):
        sweep.use_cpu_devices(have + 2)


# ---- devices -----------------------------------------------------------------------------

SHARDED = textwrap.dedent("""
    import json, jax, jax.numpy as jnp, numpy as np
    from jaxnn import datasets, losses, optimizers, sweep, train
    jax.config.update("jax_enable_x64", True)
    x, y = datasets.moons(48, key=jax.random.key(0))
    data = (jnp.asarray(x, jnp.float64), y)
    obj = train.objective(lambda p, x: x @ p["w"] + p["b"],  # linear regression
                          lambda out, y: losses.quadratic(out, jax.nn.one_hot(y, 2)))
    def run(hp, key):
      p = {"w": jax.random.normal(key, (2, 2)), "b": jnp.zeros(2)}
      return train.fit(obj, p, optimizers.momentum(hp["lr"], hp["mu"]), data, key=key,
                       steps=30, batch_size=12)
    g = sweep.grid(lr=[0.01, 0.1, 1.0, 30.0, 300.0], mu=[0.0, 0.9])  # 10 points
    many = sweep.sweep(run, g, key=jax.random.key(1))
    one = sweep.sweep(run, g, key=jax.random.key(1), devices=jax.devices()[:1])
    seeded = sweep.sweep(run, sweep.grid(lr=[0.1], mu=0.9, seed=range(3)),
                         key=jax.random.key(1))
    print(json.dumps({
        "devices": len(jax.devices()), "used": many.devices, "chunk": many.chunk_size,
        "diff": float(np.nanmax(np.abs(many.runs.history["loss"] - one.runs.history["loss"]))),
        "scale": float(np.nanmax(np.abs(one.runs.history["loss"]))),
        "same_nan": bool((np.isnan(many.runs.history["loss"])
                          == np.isnan(one.runs.history["loss"])).all()),
        "diverged": many.diverged.tolist(), "diverged_one": one.diverged.tolist(),
        "seeded_chunk": seeded.chunk_size,
        "seeded_first": seeded.runs.history["loss"][:, 0].tolist(),
    }))
""")


def test_sharded_over_four_host_devices_equals_one_device(four_host_devices):
    out = subprocess.run(
        [sys.executable, "-c", SHARDED],
        capture_output=True,
        text=True,
        env=four_host_devices,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["devices"] == 4 and got["used"] == 4
    assert got["chunk"] == 12  # 10 points padded to a multiple of 4
    # float64 rounding on the scale of the largest loss (the diverging runs reach 10⁶)
    assert got["diff"] <= 1e-12 * got["scale"] and got["same_nan"]
    assert got["diverged"] == got["diverged_one"] and any(got["diverged"])
    assert got["seeded_chunk"] == 4 and len(set(got["seeded_first"])) == 3


# ---- the learning-rate report --------------------------------------------------------


def test_lr_report_brackets_the_momentum_threshold():
    bowl = datasets.quadratic_bowl([1.0, 4.0], key=jax.random.key(7))  # λmax = 4

    def run(hp, key):
        return train.fit(
            bowl.loss,
            jnp.array([1.0, 1.0]),
            optimizers.momentum(hp["lr"], hp["mu"]),
            None,
            key=key,
            steps=300,
        )

    lrs = [0.1, 0.3, 0.45, 0.55, 0.7, 0.8, 1.0]
    result = sweep.sweep(run, sweep.grid(mu=[0.0, 0.5], lr=lrs[::-1]), key=jax.random.key(0))
    report = sweep.lr_report(result, lambda_max=4.0)
    np.testing.assert_array_equal(report.lrs, lrs)
    assert report.groups == [{"mu": 0.0}, {"mu": 0.5}]
    assert report.final_loss.shape == (2, 7, 1)
    gd, heavy = report.rows
    # gradient descent: 2/λmax = 0.5; heavy ball μ = 0.5: 2(1 + μ)/λmax = 0.75
    assert gd["threshold"] == pytest.approx(0.5) and heavy["threshold"] == pytest.approx(0.75)
    # gradient descent on a quadratic: both edges sit at the threshold (below it the loss
    # falls at every step; above it the top direction grows by |1 − ηλmax| > 1 a step)
    assert (gd["largest_stable_lr"], gd["first_unstable_lr"]) == (0.45, 0.55)
    assert (gd["largest_converging_lr"], gd["smallest_failed_lr"]) == (0.45, 0.55)
    # heavy ball converges up to its threshold, but its iterates overshoot on the way: from
    # η = 0.55 (complex roots of the recurrence) the loss rises above its start and returns
    assert (heavy["largest_converging_lr"], heavy["smallest_failed_lr"]) == (0.7, 0.8)
    assert heavy["largest_stable_lr"] == 0.45
    assert gd["ratio"] == pytest.approx(0.9) and gd["converging_ratio"] == pytest.approx(0.9)
    assert heavy["converging_ratio"] == pytest.approx(0.7 / 0.75)
    # the lowest final loss has the smallest max_i |1 − ηλ_i|: 0.7 at η = 0.3, 0.8 at 0.45
    assert gd["best_lr"] == 0.3
    assert report.failed[0, 3:].all() and not report.failed[0, :3].any()
    assert report.window == 300 and report.peak_ratio.shape == (2, 7, 1)
    np.testing.assert_array_equal(report.peak_ratio[0, :3, 0], 1.0)  # never above the start
    assert (report.peak_ratio[0, 3:, 0] > 1).all()


def test_lr_report_tells_a_run_that_rose_and_came_back_from_a_stable_one():
    # loss histories made by hand: η = 0.1 falls steadily; η = 0.2 doubles at step 2 and
    # ends below its start (unstable, yet converging); η = 0.4 ends above its start
    history = np.array(
        [[1.0, 0.9, 0.8, 0.7, 0.6], [1.0, 1.5, 2.0, 0.9, 0.5], [1.0, 3.0, 2.0, 1.5, 1.2]]
    )
    runs = train.FitResult(None, None, None, {"loss": history}, np.zeros(3, bool), np.full(3, -1))
    result = sweep.SweepResult(
        sweep.grid(lr=[0.1, 0.2, 0.4]),
        runs,
        history[:, -1],
        np.zeros(3, bool),
        np.full(3, -1),
        0.0,
        0.0,
        3,
        1,
    )
    row = sweep.lr_report(result, lambda_max=10.0).rows[0]  # 2/λmax = 0.2
    assert (row["largest_stable_lr"], row["first_unstable_lr"]) == (0.1, 0.2)
    assert (row["largest_converging_lr"], row["smallest_failed_lr"]) == (0.2, 0.4)
    assert row["ratio"] == pytest.approx(0.5) and row["converging_ratio"] == pytest.approx(1.0)
    report = sweep.lr_report(result, window=2)  # the first 2 steps: η = 0.2 rose already
    assert report.rows[0]["largest_stable_lr"] == 0.1
    np.testing.assert_allclose(report.peak_ratio[0, :, 0], [1.0, 1.5, 3.0])
    assert sweep.lr_report(result, window=1).rows[0]["largest_stable_lr"] == 0.4
    assert (
        sweep.stability_edge([0.1, 0.2], [[True], [True]])[0]
        != sweep.stability_edge([0.1, 0.2], [[True], [True]])[0]
    )  # NaN: the smallest η is bad already
    with pytest.raises(ValueError, match="window must be at most the sweep's 5 recorded"):
        sweep.lr_report(result, window=6)


def test_lr_report_without_lambda_max_and_bad_input(mlp_sweep):
    report = sweep.lr_report(mlp_sweep)
    assert len(report.groups) == 4 and "threshold" not in report.rows[0]
    assert report.final_loss.shape == (4, 3, 2)
    with pytest.raises(ValueError, match="lr_report needs a grid with an 'lr' axis"):
        sweep.lr_report(mlp_sweep._replace(grid=sweep.grid(rate=[1.0])))
    with pytest.raises(ValueError, match=r"lambda_max must satisfy 0.0 < lambda_max"):
        sweep.lr_report(mlp_sweep, lambda_max=-1.0)
    with pytest.raises(TypeError, match="result must be a SweepResult"):
        sweep.lr_report({"lr": [0.1]})


def test_lr_sweep_is_the_common_case():
    result = sweep.lr_sweep(
        OBJECTIVE,
        lambda key: jaxnn.init_mlp(key, (2, 4, 2), dtype=jnp.float64),
        DATA,
        lrs=[0.1, 1.0],
        key=jax.random.key(3),
        optimizer="nesterov",
        hyper={"mu": 0.5},
        seeds=2,
        steps=10,
    )
    assert result.grid.names == ("lr", "seed") and result.runs.params is None
    init_key, fit_key = jax.random.split(jax.random.fold_in(jax.random.key(3), 1))
    alone = train.fit(
        OBJECTIVE,
        jaxnn.init_mlp(init_key, (2, 4, 2), dtype=jnp.float64),
        optimizers.nesterov(1.0, 0.5),
        DATA,
        key=fit_key,
        steps=10,
    )
    np.testing.assert_allclose(result.runs.history["loss"][3], alone.history["loss"], rtol=1e-9)
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'"):
        sweep.lr_sweep(
            OBJECTIVE, {}, DATA, lrs=[0.1], key=jax.random.key(0), optimizer="sgdd", steps=1
        )
