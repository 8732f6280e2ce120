"""fit: one compiled scan, checked against closed forms and a step-by-step reference."""

import functools
import json
import os
import stat

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from jaxnn import checkpoint, datasets, losses, optimizers, schedules, train

FORWARD = functools.partial(jaxnn.forward, activation="tanh")
OBJECTIVE = train.objective(FORWARD, losses.softmax_cross_entropy)
SGD = optimizers.momentum(0.1, 0.9)


@pytest.fixture(scope="module")
def moons():
    data = datasets.moons(96, key=jax.random.key(0), noise=0.1)
    return datasets.train_test_split(data, key=jax.random.key(1), test_fraction=0.25)


@pytest.fixture(scope="module")
def params():
    return jaxnn.init_mlp(jax.random.key(2), [2, 8, 2])


@pytest.fixture(scope="module")
def reference_run(moons, params):
    train_set, test_set = moons
    return train.fit(
        OBJECTIVE,
        params,
        SGD,
        train_set,
        key=jax.random.key(3),
        epochs=6,
        batch_size=16,
        eval_data=test_set,
        eval_every=5,
    )


def test_fit_matches_a_step_by_step_reference(moons, params, reference_run):
    train_set, _ = moons
    step = jax.jit(train.make_step(OBJECTIVE, SGD))
    shuffle_key, step_key = jax.random.split(jax.random.key(3))
    p, s, opt_state, seen = params, {}, SGD.init(params), []
    for t in range(36):  # 72 rows / 16 = 4 full batches an epoch (8 rows left out)
        epoch, pos = divmod(t, 4)
        perm = datasets.permutation(jax.random.fold_in(shuffle_key, epoch), 72)
        idx = perm[pos * 16 : (pos + 1) * 16]
        p, s, opt_state, info = step(
            p, s, opt_state, (train_set.x[idx], train_set.y[idx]), jax.random.fold_in(step_key, t)
        )
        seen.append(info)
    h = reference_run.history
    assert h["loss"].shape == (24,)
    np.testing.assert_allclose(h["loss"], [i.loss for i in seen[:24]], rtol=1e-5)
    np.testing.assert_allclose(h["grad_norm"], [i.grad_norm for i in seen[:24]], rtol=1e-5)
    np.testing.assert_allclose(h["lr"], 0.1)


def test_optimisers_that_differ_only_in_numbers_share_one_compiled_program(moons, params):
    train_set, _ = moons
    traces = []

    def objective(p, state, batch, key):
        traces.append(1)  # runs once per trace of the training step
        return OBJECTIVE(p, state, batch, key)

    slow, fast = optimizers.momentum(0.05, 0.5), optimizers.momentum(0.2, 0.9)
    assert slow.update is fast.update and slow.init is not fast.init
    assert optimizers.momentum(0.1, 0.5, clip_norm=1.0).update is not slow.update
    runs = [
        train.fit(objective, params, opt, train_set, key=jax.random.key(3), epochs=2, batch_size=16)
        for opt in (slow, fast)
    ]
    assert len(traces) == 1
    # the second run is its own optimiser's, step for step
    step = jax.jit(train.make_step(OBJECTIVE, fast))
    shuffle_key, step_key = jax.random.split(jax.random.key(3))
    p, s, opt_state, seen = params, {}, fast.init(params), []
    for t in range(8):
        epoch, pos = divmod(t, 4)
        perm = datasets.permutation(jax.random.fold_in(shuffle_key, epoch), 72)
        idx = perm[pos * 16 : (pos + 1) * 16]
        p, s, opt_state, info = step(
            p, s, opt_state, (train_set.x[idx], train_set.y[idx]), jax.random.fold_in(step_key, t)
        )
        seen.append(float(info.loss))
    np.testing.assert_allclose(runs[1].history["loss"], seen, rtol=1e-5)
    np.testing.assert_allclose(runs[1].history["lr"], 0.2)
    assert not np.allclose(runs[0].history["loss"], runs[1].history["loss"])


def test_epochs_reshuffle_and_cover_distinct_rows(moons):
    train_set, _ = moons

    def objective(params, state, batch, key):
        x, _ = batch
        return jnp.sum(params * 0.0) + jnp.sum(x[:, 0]), state

    result = train.fit(
        objective,
        jnp.zeros(()),
        optax.sgd(0.0),
        train_set,
        key=jax.random.key(4),
        epochs=3,
        batch_size=24,
    )
    sums = np.asarray(result.history["loss"]).reshape(3, 3)
    # each epoch is a permutation of all 72 rows: the batch sums add up to the same total
    np.testing.assert_allclose(sums.sum(1), float(jnp.sum(train_set.x[:, 0])), rtol=1e-5)
    assert not np.allclose(sums[0], sums[1])


def test_same_key_same_history_bit_for_bit(moons, params, reference_run):
    train_set, test_set = moons
    again = train.fit(
        OBJECTIVE,
        params,
        SGD,
        train_set,
        key=jax.random.key(3),
        epochs=6,
        batch_size=16,
        eval_data=test_set,
        eval_every=5,
    )
    np.testing.assert_array_equal(again.history["loss"], reference_run.history["loss"])
    jax.tree.map(np.testing.assert_array_equal, again.params, reference_run.params)
    other = train.fit(
        OBJECTIVE, params, SGD, train_set, key=jax.random.key(5), epochs=6, batch_size=16
    )
    assert not np.array_equal(other.history["loss"], reference_run.history["loss"])


def test_evaluation_every_k_steps_and_at_the_end(moons, reference_run):
    _, test_set = moons
    ev = reference_run.history["eval"]
    np.testing.assert_array_equal(ev["step"], [0, 5, 10, 15, 20, 24])
    final = OBJECTIVE.evaluate(reference_run.params, {}, test_set)
    assert float(ev["loss"][-1]) == pytest.approx(float(final["loss"]), rel=1e-6)
    assert float(ev["accuracy"][-1]) == pytest.approx(float(final["accuracy"]))
    assert float(ev["accuracy"][-1]) > 0.8


def test_evaluate_checks_concrete_labels_and_matches_the_formula(moons, params):
    _, (x, y) = moons
    out = OBJECTIVE.evaluate(params, {}, (x, y))
    logits = np.asarray(FORWARD(params, x), np.float64)
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    y = np.asarray(y)
    assert float(out["loss"]) == pytest.approx(-log_p[np.arange(len(y)), y].mean(), rel=1e-5)
    assert float(out["accuracy"]) == pytest.approx(np.mean(logits.argmax(1) == y))
    inside = jax.jit(OBJECTIVE.evaluate)(params, {}, (x, y))  # traced: the same numbers
    assert float(inside["loss"]) == pytest.approx(float(out["loss"]), rel=1e-6)
    with pytest.raises(ValueError, match="labels"):
        OBJECTIVE.evaluate(params, {}, (x, np.where(y == 1, 7, y)))


def test_full_batch_gradient_descent_on_a_bowl_follows_the_closed_form():
    with jax.enable_x64(True):
        bowl = datasets.quadratic_bowl([0.5, 2.0, 4.0], key=jax.random.key(6))
        w0 = jnp.array([1.0, -2.0, 0.5])
        eta = 0.3
        result = train.fit(
            bowl.loss,
            w0,
            optimizers.sgd(eta),
            key=jax.random.key(7),
            steps=30,
        )
        alpha0 = np.asarray(bowl.eigenvectors).T @ np.asarray(w0 - bowl.minimizer)
        lam = np.asarray(bowl.eigenvalues)
        t = np.arange(30)[:, None]
        want = 0.5 * np.sum(lam * alpha0**2 * (1 - eta * lam) ** (2 * t), axis=1)
        np.testing.assert_allclose(result.history["loss"], want, rtol=1e-12)


def test_divergence_guard_reports_the_predicted_step():
    # eta = 2.1/lambda_max: the top direction grows by |1 - 2.1| = 1.1 a step; the loss
    # first exceeds 1e4 x its first value at the step the formula gives.
    bowl = datasets.quadratic_bowl([0.1, 1.0, 10.0], key=jax.random.key(8))
    eta = 2.1 / 10.0
    w0 = bowl.eigenvectors @ jnp.array([1.0, 1.0, 1e-3])
    result = train.fit(
        bowl.loss,
        w0,
        optimizers.sgd(eta),
        key=jax.random.key(9),
        steps=400,
    )
    lam = np.array([0.1, 1.0, 10.0])
    alpha0 = np.array([1.0, 1.0, 1e-3])
    loss = lambda t: 0.5 * np.sum(lam * alpha0**2 * (1 - eta * lam) ** (2 * t))
    expected = next(t for t in range(1000) if loss(t) > 1e4 * loss(0))
    assert bool(result.diverged)
    assert abs(int(result.diverged_at) - expected) <= 1
    h = result.history["loss"]
    assert bool(jnp.all(jnp.isfinite(h[: int(result.diverged_at) + 1])))
    assert bool(jnp.all(jnp.isnan(h[int(result.diverged_at) + 1 :])))
    assert bool(jnp.all(jnp.isfinite(result.params)))
    # the params are frozen at the divergent step: its loss is what the history says
    assert float(bowl.loss(result.params)) == pytest.approx(
        float(h[int(result.diverged_at)]), rel=1e-5
    )


def test_non_finite_loss_is_caught_and_params_stay_finite():
    def objective(p, s, b, k):
        return jnp.where(p > 3.0, jnp.nan, (p - 10.0) ** 2), s

    result = train.fit(
        objective, jnp.asarray(0.0), optimizers.sgd(0.1), key=jax.random.key(10), steps=20
    )
    # p: 0 -> 2 -> 3.6 (the loss at 3.6 is NaN): diverged at step 2, params frozen at 3.6
    assert int(result.diverged_at) == 2
    assert float(result.params) == pytest.approx(3.6)
    assert result.history["loss"].shape == (20,)


def test_an_update_that_overflows_a_parameter_is_caught():
    # loss, gradient and its norm finite (g = 1e18 in float32), but w - 1e21 g = -inf in one
    # leaf only
    def objective(p, s, b, k):
        return 1e18 * p["big"] + jnp.sum(p["small"] ** 2), s

    start = {"big": jnp.asarray(0.0), "small": jnp.ones(3)}
    result = train.fit(objective, start, optimizers.sgd(1e21), key=jax.random.key(10), steps=5)
    assert bool(result.diverged) and int(result.diverged_at) == 0
    assert float(result.params["big"]) == 0.0  # frozen before the step
    np.testing.assert_array_equal(result.params["small"], 1.0)
    assert np.isnan(np.asarray(result.history["loss"][1:])).all()


def test_learning_rate_history_follows_the_schedule(moons, params):
    train_set, _ = moons
    sched = schedules.step(0.2, 0.5, 4)
    result = train.fit(
        OBJECTIVE,
        params,
        optimizers.sgd(sched),
        train_set,
        key=jax.random.key(11),
        steps=12,
        batch_size=72,
    )
    np.testing.assert_allclose(result.history["lr"], [sched(t) for t in range(12)])


def test_model_state_and_dropout_keys(moons):
    train_set, test_set = moons
    model = jaxnn.mlp([2, 16, 2], batch_norm=True, dropout=0.3)
    p, s = model.init(jax.random.key(12))
    obj = train.objective(model, losses.softmax_cross_entropy)
    result = train.fit(
        obj,
        p,
        optimizers.adam(0.01),
        train_set,
        key=jax.random.key(13),
        epochs=2,
        batch_size=24,
        state=s,
        eval_data=test_set,
    )
    # running averages moved away from their (0, 1) start
    assert float(jnp.abs(result.state["batch_norm"][0]["mean"]).max()) > 1e-3
    # dropout: the step key differs per step, so repeating a step with another key changes
    # the loss, while the recorded first loss is reproducible from fold_in(step_key, 0)
    _, step_key = jax.random.split(jax.random.key(13))
    shuffle_key, _ = jax.random.split(jax.random.key(13))
    idx = datasets.permutation(jax.random.fold_in(shuffle_key, 0), 72)[:24]
    batch = (train_set.x[idx], train_set.y[idx])
    first, _ = obj(p, s, batch, jax.random.fold_in(step_key, 0))
    other, _ = obj(p, s, batch, jax.random.fold_in(step_key, 1))
    assert float(result.history["loss"][0]) == pytest.approx(float(first), rel=1e-6)
    assert float(first) != pytest.approx(float(other), rel=1e-6)


def test_hooks_record_layer_statistics_and_gradient_norms(moons, params):
    train_set, _ = moons
    probe = train_set.x[:32]
    hooks = {
        "stats": train.layer_stats_hook(probe, "tanh", every=3),
        "grads": train.layer_grad_norms_hook(
            OBJECTIVE, (train_set.x, train_set.y), every=4, key=jax.random.key(0)
        ),
    }
    result = train.fit(
        OBJECTIVE,
        params,
        SGD,
        train_set,
        key=jax.random.key(14),
        steps=10,
        batch_size=72,
        hooks=hooks,
    )
    stats = result.history["hooks"]["stats"]
    np.testing.assert_array_equal(stats.step, [0, 3, 6, 9])
    assert stats.record.std.shape == (4, 1)
    np.testing.assert_allclose(
        stats.record.std[0], jaxnn.hidden_stats(params, probe).std, rtol=1e-6
    )
    grads = result.history["hooks"]["grads"]
    np.testing.assert_array_equal(grads.step, [0, 4, 8])
    g = jax.grad(lambda p: OBJECTIVE(p, {}, (train_set.x, train_set.y), None)[0])(params)
    np.testing.assert_allclose(grads.record[0], [optax.tree.norm(l) for l in g], rtol=1e-5)
    # full batch: the step-0 gradient norm is the norm over all layers
    assert float(result.history["grad_norm"][0]) == pytest.approx(
        float(jnp.linalg.norm(grads.record[0])), rel=1e-5
    )


def test_chunked_progress_run_equals_one_call(moons, params, reference_run, capsys):
    train_set, test_set = moons
    chunked = train.fit(
        OBJECTIVE,
        params,
        SGD,
        train_set,
        key=jax.random.key(3),
        epochs=6,
        batch_size=16,
        eval_data=test_set,
        eval_every=5,
        progress=True,
        chunk_steps=7,
    )
    np.testing.assert_array_equal(chunked.history["loss"], reference_run.history["loss"])
    np.testing.assert_array_equal(
        chunked.history["eval"]["loss"], reference_run.history["eval"]["loss"]
    )
    err = capsys.readouterr().err
    assert "fit:" in err and "/24" in err


def test_write_json_is_plain_json_with_non_finite_numbers_as_strings(tmp_path):
    path = checkpoint.write_json(
        tmp_path / "out" / "results.json",
        {
            "a": np.float32(1.5),
            2: (np.int64(3), float("nan")),
            "b": [float("inf"), -float("inf")],
            "c": jnp.asarray(2.0),
        },
    )
    assert json.loads(path.read_text()) == {
        "a": 1.5,
        "2": [3, "nan"],
        "b": ["inf", "-inf"],
        "c": 2.0,
    }
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary left


def test_written_files_are_readable_like_any_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        for path in (
            checkpoint.write_json(tmp_path / "r.json", {"a": 1}),
            checkpoint.write_text(tmp_path / "index.html", "<p>é</p>"),
            checkpoint.save(tmp_path / "c.ckpt", {"w": jnp.ones(2)}),
        ):
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
        os.umask(0o077)
        private = checkpoint.write_json(tmp_path / "private.json", {})
        assert stat.S_IMODE(private.stat().st_mode) == 0o600  # the user's umask is honoured
    finally:
        os.umask(old)
    assert (tmp_path / "index.html").read_text() == "<p>é</p>"


def test_checkpoint_resume_is_bit_for_bit(moons, params, reference_run, tmp_path):
    train_set, test_set = moons
    path = tmp_path / "run.ckpt"
    common = dict(
        key=jax.random.key(3),
        epochs=6,
        batch_size=16,
        eval_data=test_set,
        eval_every=5,
        checkpoint=path,
        checkpoint_every=5,
    )
    paused = train.fit(OBJECTIVE, params, SGD, train_set, until=10, **common)
    assert paused.history["loss"].shape == (10,)
    assert checkpoint.read_header(path)["metadata"]["step"] == 10
    resumed = train.fit(OBJECTIVE, params, SGD, train_set, resume=True, **common)
    np.testing.assert_array_equal(resumed.history["loss"], reference_run.history["loss"])
    np.testing.assert_array_equal(
        resumed.history["eval"]["loss"], reference_run.history["eval"]["loss"]
    )
    jax.tree.map(np.testing.assert_array_equal, resumed.params, reference_run.params)
    jax.tree.map(np.testing.assert_array_equal, resumed.opt_state, reference_run.opt_state)
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temp files left
    with pytest.raises(ValueError, match="different key"):
        train.fit(
            OBJECTIVE, params, SGD, train_set, resume=True, **{**common, "key": jax.random.key(99)}
        )


def test_fit_runs_under_vmap(moons, params):
    train_set, _ = moons

    def run(lr):
        return train.fit(
            OBJECTIVE,
            params,
            optimizers.sgd(lr),
            train_set,
            key=jax.random.key(15),
            steps=8,
            batch_size=24,
        ).history["loss"]

    both = jax.jit(jax.vmap(run))(jnp.array([0.05, 0.5]))
    np.testing.assert_allclose(both[1], run(0.5), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(epochs=2, steps=5), ValueError, r"exactly one of epochs and steps"),
        (dict(epochs=1, batch_size=100), ValueError, r"batch_size must be at most the 72 rows"),
        (dict(epochs=1, batch_size=0), ValueError, r"batch_size must be an int >= 1, got 0"),
        (dict(steps=5, until=6), ValueError, r"until must be at most the run's 5 steps"),
        (dict(steps=5, blowup=0.5), ValueError, r"blowup must satisfy 1.0 < blowup"),
        (dict(steps=5, hooks={"h": lambda p: p}), TypeError, r"hooks\['h'\] must be a jaxnn"),
        (dict(steps=5, checkpoint_every=2), ValueError, r"checkpoint_every needs checkpoint"),
    ],
)
def test_bad_arguments(moons, params, kwargs, error, match):
    train_set, _ = moons
    with pytest.raises(error, match=match):
        train.fit(OBJECTIVE, params, SGD, train_set, key=jax.random.key(0), **kwargs)


def test_bad_data(params):
    x = np.ones((10, 2), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"data \(array 0\) must be finite"):
        train.fit(
            OBJECTIVE, params, SGD, (x, np.zeros(10, np.int32)), key=jax.random.key(0), steps=2
        )
    with pytest.raises(ValueError, match=r"same number of rows"):
        train.fit(
            OBJECTIVE,
            params,
            SGD,
            (np.ones((10, 2)), np.zeros(9, np.int32)),
            key=jax.random.key(0),
            steps=2,
        )
    with pytest.raises(ValueError, match=r"data=None .* needs steps"):
        train.fit(OBJECTIVE, params, SGD, None, key=jax.random.key(0), epochs=2)
    with pytest.raises(TypeError, match=r"eval_data needs an objective with an evaluate"):
        train.fit(
            lambda p, s, b, k: (0.0, s),
            params,
            SGD,
            (np.ones((10, 2)),),
            key=jax.random.key(0),
            steps=2,
            eval_data=(np.ones((3, 2)),),
        )


def test_a_plain_loss_trains_like_the_objective_it_stands_for(moons):
    """fit(loss(params, batch)) is fit(objective) with the state passed through: the same
    steps, the same numbers."""
    train_set, _ = moons
    params = jaxnn.init_mlp(jax.random.key(1), [2, 8, 2])

    def loss(p, batch):
        return losses.softmax_cross_entropy(jaxnn.forward(p, batch[0]), batch[1])

    def full(p, s, batch, key):
        return loss(p, batch), s

    kwargs = dict(key=jax.random.key(2), steps=40, batch_size=16)
    plain = train.fit(loss, params, optimizers.sgd(0.3), train_set, **kwargs)
    reference = train.fit(full, params, optimizers.sgd(0.3), train_set, **kwargs)
    np.testing.assert_allclose(plain.history["loss"], reference.history["loss"], rtol=1e-6)
    assert float(plain.history["loss"][-1]) < 0.9 * float(plain.history["loss"][0])
    # loss(params) with data=None, and what is refused
    bowl = datasets.quadratic_bowl([1.0, 4.0])
    run = train.fit(bowl.loss, jnp.ones(2), optimizers.sgd(0.2), None, key=kwargs["key"], steps=60)
    assert float(run.history["loss"][-1]) < 1e-6 * float(run.history["loss"][0])
    with pytest.raises(TypeError, match="objective must be"):
        train.fit(lambda: 0.0, params, optimizers.sgd(0.1), None, key=kwargs["key"], steps=2)


def test_execution_options_group_and_change_no_number(moons, params, tmp_path):
    """Execution(...) and its fields as keywords run the same; chunks and checkpoints do
    not change the numbers; both at once is refused."""
    train_set, _ = moons
    kwargs = dict(key=jax.random.key(3), steps=30, batch_size=16)
    whole = train.fit(OBJECTIVE, params, SGD, train_set, **kwargs)
    grouped = train.fit(
        OBJECTIVE,
        params,
        SGD,
        train_set,
        execution=train.Execution(chunk_steps=7, checkpoint=tmp_path / "a.ckpt"),
        **kwargs,
    )
    spelled = train.fit(
        OBJECTIVE, params, SGD, train_set, chunk_steps=7, checkpoint=tmp_path / "b.ckpt", **kwargs
    )
    for run in (grouped, spelled):
        np.testing.assert_allclose(run.history["loss"], whole.history["loss"], rtol=1e-6)
    assert (tmp_path / "a.ckpt").exists() and (tmp_path / "b.ckpt").exists()
    with pytest.raises(TypeError, match="got execution= and its fields"):
        train.fit(
            OBJECTIVE, params, SGD, train_set, execution=train.Execution(), progress=False, **kwargs
        )
