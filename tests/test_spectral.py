"""jaxnn.spectral against the exact Hessian (float64): HVPs, power iteration, Lanczos,
Hutchinson's trace, stochastic Lanczos quadrature, blocks, Gauss-Newton, batches, hooks; every
product at full float32 precision."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import datasets, hessian, losses, optimizers, spectral, train

pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest.py)


MOONS = datasets.moons(48, key=jax.random.key(0))
X, Y = np.asarray(MOONS.x, np.float64), np.asarray(MOONS.y)


def mlp_loss(params, x=X, y=Y):
    return losses.softmax_cross_entropy(jaxnn.forward(params, x, activation="tanh"), y)


@pytest.fixture(scope="module")
def mlp():
    """A 2-6-6-2 tanh MLP (P = 74) a few hundred Adam steps in, with its exact spectrum."""
    with jax.enable_x64(True):
        params = jaxnn.init_mlp(jax.random.key(1), (2, 6, 6, 2), dtype=jnp.float64)
        params = train.fit(
            mlp_loss,
            params,
            optimizers.adam(0.02),
            None,
            key=jax.random.key(2),
            steps=300,
        ).params
        spec = hessian.spectrum(mlp_loss, params)
        yield params, spec


def bowl(eigenvalues, seed=3):
    b = datasets.quadratic_bowl(jnp.asarray(eigenvalues, jnp.float64), key=jax.random.key(seed))
    return b, jnp.zeros(len(eigenvalues))


def test_hvp_is_the_hessian_times_v(mlp):
    params, _spec = mlp
    matrix, unravel = hessian.hessian_matrix(mlp_loss, params)
    flat = jax.random.normal(jax.random.key(4), (matrix.shape[0],))
    got = jax.flatten_util.ravel_pytree(spectral.hvp(mlp_loss, params, unravel(flat)))[0]
    np.testing.assert_allclose(got, matrix @ flat, rtol=1e-10, atol=1e-12)


def test_power_iteration_finds_the_largest_magnitude_and_labels_max_and_min():
    b, w = bowl([-3.0, 0.5, 1.0, 2.0])  # |λ| largest is the negative one
    found = spectral.power_iteration(b.loss, w, key=jax.random.key(0), tol=1e-12, max_iter=1000)
    assert float(found.eigenvalue) == pytest.approx(-3.0, rel=1e-9) and bool(found.converged)
    u = np.asarray(b.eigenvectors[:, 0])
    assert abs(float(jnp.dot(found.eigenvector, u))) == pytest.approx(1.0, abs=1e-8)
    ext = spectral.lambda_max_min(b.loss, w, key=jax.random.key(1), tol=1e-13, max_iter=5000)
    assert float(ext.lambda_max) == pytest.approx(2.0, rel=1e-7)
    assert float(ext.lambda_min) == pytest.approx(-3.0, rel=1e-7)


def test_lanczos_with_order_p_recovers_the_whole_spectrum():
    lam = np.linspace(0.1, 10.0, 12)
    b, w = bowl(lam)
    result = spectral.lanczos(b.loss, w, 12, key=jax.random.key(0))
    np.testing.assert_allclose(result.ritz_values, lam, atol=1e-10)
    q = jax.vmap(lambda v: v)(result.basis)
    np.testing.assert_allclose(q @ q.T, np.eye(12), atol=1e-12)  # orthonormal basis
    assert int(result.restarts) == 0


def test_lanczos_restarts_on_repeated_eigenvalues_and_keeps_multiplicities():
    lam = np.array([1.0, 1.0, 1.0, 2.0, 5.0, 5.0, 9.0])
    b, w = bowl(lam)
    result = spectral.lanczos(b.loss, w, 7, key=jax.random.key(1))
    # a Krylov space holds one copy of each eigenvalue: spaces of 4 ({1, 2, 5, 9}), then 2
    # ({1, 5}) and 1 ({1}) dimensions, so two restarts
    assert int(result.restarts) == 2
    np.testing.assert_allclose(result.ritz_values, lam, atol=1e-10)
    assert (np.asarray(result.beta) == 0).sum() == 2


def test_top_and_bottom_eigenvalues_of_a_bowl_and_an_mlp(mlp):
    # like a network's: a bulk, a few outliers on top, a few small or negative ones below
    lam = np.concatenate(
        [[-2.0, -1.0, 0.0, 0.1, 0.3], np.linspace(1.0, 10.0, 70), [20.0, 35.0, 50.0, 70.0, 100.0]]
    )
    b, w = bowl(lam)
    top = spectral.top_eigenvalues(b.loss, w, 5, key=jax.random.key(2))  # 30 steps
    bottom = spectral.bottom_eigenvalues(b.loss, w, 5, key=jax.random.key(2), order=60)
    np.testing.assert_allclose(top.values, lam[::-1][:5], atol=1e-4 * lam.max())
    np.testing.assert_allclose(bottom.values, lam[:5], atol=1e-4 * lam.max())
    assert top.residuals.max() < 1e-3 * lam.max()
    params, spec = mlp
    exact = np.asarray(spec.eigenvalues)
    top = spectral.top_eigenvalues(mlp_loss, params, 5, key=jax.random.key(3))
    bottom = spectral.bottom_eigenvalues(mlp_loss, params, 5, key=jax.random.key(3), order=74)
    scale = float(spec.lambda_max)
    np.testing.assert_allclose(top.values, exact[::-1][:5], atol=1e-4 * scale)
    np.testing.assert_allclose(bottom.values, exact[:5], atol=1e-4 * scale)


def test_converged_eigenvalues_meet_tol_against_the_exact_spectrum(mlp):
    """Thick-restart Lanczos (a 12-vector basis, so it must restart) until ‖Hv − θv‖ ≤
    tol·|θ|: each θ within its residual of an exact eigenvalue (|θ − λ| ≤ ‖r‖ for symmetric
    H), and the HVPs it reports are the HVPs it made."""
    params, spec = mlp
    exact = np.sort(np.asarray(spec.eigenvalues))
    calls = []

    def counted(loss):
        def matvec(p, v):
            jax.debug.callback(lambda: calls.append(1))
            return spectral.hvp(loss, p, v)

        return spectral.Curvature(matvec)

    # the MLP's top; a bowl's bottom (the MLP's is a cluster at 0, where no relative
    # tolerance can be met: its residuals stay near ε·λmax)
    lam = np.concatenate([[-2.0, -1.9, -1.8, -1.0], np.linspace(0.0, 5.0, 60)])
    b, w = bowl(lam)
    cases = (
        (spectral.top_eigenvalues, counted(mlp_loss), params, exact[::-1][:4]),
        (spectral.bottom_eigenvalues, counted(b.loss), w, lam[:4]),
    )
    for find, op, point, wanted in cases:
        calls.clear()
        pairs = find(op, point, 4, key=jax.random.key(3), order=12, tol=1e-8)
        assert np.asarray(pairs.converged).all() and pairs.lanczos is None
        res = np.asarray(pairs.residuals)
        assert (res <= 1e-8 * np.abs(np.asarray(pairs.values))).all()
        np.testing.assert_array_less(np.abs(np.asarray(pairs.values) - wanted), res + 1e-12)
        assert int(pairs.matvecs) == len(calls) > 12 + 4  # restarted at least once
    # one run of 12 steps does not get there, and says so
    plain = spectral.top_eigenvalues(mlp_loss, params, 4, key=jax.random.key(3), order=12)
    assert not np.asarray(plain.converged).all() and plain.matvecs == 16
    # the whole solver runs under jit; a budget too small stops it, unconverged
    solve = jax.jit(
        lambda p: (
            spectral.top_eigenvalues(
                mlp_loss, p, 4, key=jax.random.key(3), order=12, tol=1e-8
            ).values
        )
    )
    np.testing.assert_allclose(solve(params), exact[::-1][:4], rtol=1e-7)
    short = spectral.top_eigenvalues(
        mlp_loss, params, 4, key=jax.random.key(3), order=12, tol=1e-8, max_matvecs=16
    )
    assert int(short.matvecs) == 16 and not np.asarray(short.converged).all()


def test_hutchinson_trace_is_within_three_standard_errors(mlp):
    params, spec = mlp
    est = spectral.hutchinson_trace(mlp_loss, params, key=jax.random.key(4), probes=200)
    exact = float(np.sum(spec.eigenvalues))
    assert abs(est.trace - exact) < 3 * est.stderr and est.stderr < 0.5 * abs(exact)


def test_spectral_density_integrates_to_one_and_matches_the_moments():
    lam = np.concatenate([np.linspace(0.0, 1.0, 150), np.linspace(8.0, 10.0, 50)])
    b, w = bowl(lam, seed=5)
    dens = spectral.spectral_density(b.loss, w, key=jax.random.key(5), order=40, probes=30)
    assert np.trapezoid(dens.density, dens.grid) == pytest.approx(1.0, abs=1e-3)
    mean = np.trapezoid(dens.grid * dens.density, dens.grid)
    second = np.trapezoid(dens.grid**2 * dens.density, dens.grid)
    assert mean == pytest.approx(lam.mean(), rel=0.1)
    assert second == pytest.approx((lam**2).mean() + dens.sigma**2, rel=0.15)
    np.testing.assert_allclose(dens.weights.sum(1), 1.0, rtol=1e-10)
    assert abs(dens.mean - lam.mean()) < 3 * dens.mean_stderr  # tr(A)/P, with its spread
    assert dens.mean == pytest.approx(mean, rel=1e-4)


def test_a_block_is_the_sub_hessian(mlp):
    params, _ = mlp
    matrix, _ = hessian.hessian_matrix(mlp_loss, params)
    matrix = np.asarray(matrix)
    # ravel_pytree order: layer 0 {b (6), w (12)}, layer 1 {b (6), w (36)}, layer 2 ...
    sizes = [6, 12, 6, 36, 2, 12]
    start = sum(sizes[:2])
    sub = matrix[start : start + 42, start : start + 42]
    mask = [{"b": False, "w": False}, {"b": True, "w": True}, {"b": False, "w": False}]
    top = spectral.top_eigenvalues(mlp_loss, params, 2, key=jax.random.key(6), mask=mask, order=42)
    np.testing.assert_allclose(top.values, np.linalg.eigvalsh(sub)[::-1][:2], rtol=1e-8)
    est = spectral.hutchinson_trace(
        mlp_loss, params, key=jax.random.key(6), probes=50, mask=lambda path: path.startswith("[1]")
    )
    assert abs(est.trace - np.trace(sub)) < 4 * est.stderr + 1e-9
    with pytest.raises(ValueError, match="mask selects no parameter"):
        spectral.top_eigenvalues(
            mlp_loss, params, 2, key=jax.random.key(6), mask=lambda path: False
        )


def test_gauss_newton_is_the_hessian_for_least_squares_and_psd_on_an_mlp(mlp):
    w0 = {"w": jax.random.normal(jax.random.key(7), (2, 3)), "b": jnp.ones(3)}
    target = jax.random.normal(jax.random.key(8), (48, 3))
    model = lambda p: X @ p["w"] + p["b"]
    out_loss = lambda f: losses.quadratic(f, target)
    ggn = spectral.gauss_newton(model, out_loss)
    v = jax.tree.map(lambda a: jax.random.normal(jax.random.key(9), a.shape), w0)
    got, want = ggn.matvec(w0, v), spectral.hvp(lambda p: out_loss(model(p)), w0, v)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    params, spec = mlp
    mlp_ggn = spectral.gauss_newton(
        lambda p: jaxnn.forward(p, X, activation="tanh"),
        lambda f: losses.softmax_cross_entropy(f, Y),
    )
    lowest = spectral.bottom_eigenvalues(mlp_ggn, params, 3, key=jax.random.key(10), order=74)
    assert lowest.values.min() > -1e-10 * float(spec.lambda_max)
    assert np.min(np.asarray(spec.eigenvalues)) < -1e-6  # while the Hessian itself is not


def test_dataset_curvature_sums_batch_hvps():
    def batch_loss(p, batch):
        x, y = batch
        return mlp_loss(p, x, y)

    params = jaxnn.init_mlp(jax.random.key(11), (2, 5, 2), dtype=jnp.float64)
    v = jax.tree.map(lambda a: jnp.ones_like(a), params)
    full = spectral.hvp(mlp_loss, params, v)
    for batch_size in (16, 10):  # 48 rows: 3 batches; 4 batches and a remainder of 8
        curv = spectral.hessian_curvature(batch_loss, (X, Y), batch_size=batch_size)
        for a, b in zip(jax.tree.leaves(curv.matvec(params, v)), jax.tree.leaves(full)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_batch_norm_models_are_analysed_in_inference_mode_by_default():
    model = jaxnn.mlp((2, 5, 2), batch_norm=True)
    params, state = model.init(jax.random.key(12))
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    state = jax.tree.map(lambda a: a.astype(jnp.float64) + 0.3, state)  # running averages
    objective = train.objective(model, losses.softmax_cross_entropy)
    infer = spectral.objective_loss(objective, state, (X, Y))
    trained = spectral.objective_loss(objective, state, (X, Y), train=True)
    assert float(infer(params)) == pytest.approx(
        float(objective.evaluate(params, state, (X, Y))["loss"]), rel=1e-12
    )
    assert float(trained(params)) == pytest.approx(
        float(objective(params, state, (X, Y), None)[0]), rel=1e-12
    )
    v = jax.tree.map(jnp.ones_like, params)
    h_infer, h_train = spectral.hvp(infer, params, v), spectral.hvp(trained, params, v)
    gap = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(h_infer), jax.tree.leaves(h_train))
    )
    assert gap > 1e-3  # the two modes are different functions of w
    per_batch = spectral.objective_loss(objective, state)  # loss_fn(params, batch)
    assert float(per_batch(params, (X, Y))) == pytest.approx(float(infer(params)), rel=1e-12)


def test_sharpness_hook_on_a_quadratic_is_constant_and_knows_the_momentum_threshold():
    b, _ = bowl([0.5, 1.0, 4.0])
    objective = lambda p, s, batch, k: (b.loss(p), s)
    hook = spectral.sharpness_hook(
        objective, None, every=5, iters=50, tol=1e-12, lr=0.3, mu=0.5, key=jax.random.key(0)
    )
    result = train.fit(
        objective,
        jnp.array([1.0, -1.0, 0.5]),
        optimizers.momentum(0.3, 0.5),
        None,
        key=jax.random.key(0),
        steps=30,
        hooks={"sharpness": hook},
    )
    rec = result.history["hooks"]["sharpness"].record
    np.testing.assert_allclose(rec["sharpness"], 4.0, rtol=1e-9)
    np.testing.assert_allclose(rec["threshold"], 2 * 1.5 / 0.3)
    assert rec["iterations"][-1] < rec["iterations"][0]  # warm-started


@pytest.mark.parametrize(
    "call,error,message",
    [
        (
            lambda: spectral.power_iteration(lambda w: w @ w, jnp.ones(3), key=0),
            TypeError,
            "key must be one PRNG key",
        ),
        (
            lambda: spectral.lanczos(lambda w: w @ w, jnp.ones(3), 4, key=jax.random.key(0)),
            ValueError,
            "k must be at most the 3 parameters, got 4",
        ),
        (
            lambda: spectral.top_eigenvalues("loss", jnp.ones(3), 1, key=jax.random.key(0)),
            TypeError,
            "loss_fn must be a function",
        ),
        (
            lambda: spectral.top_eigenvalues(
                lambda w: w @ w, jnp.ones(3), 4, key=jax.random.key(0), tol=1e-6
            ),
            ValueError,
            "k must be at most the 3 parameters, got 4",
        ),
        (
            lambda: spectral.top_eigenvalues(
                lambda w: w @ w, jnp.ones(40), 2, key=jax.random.key(0), tol=0.0
            ),
            ValueError,
            "tol must satisfy 0.0 < tol, got 0.0",
        ),
        (
            lambda: spectral.bottom_eigenvalues(
                lambda w: w @ w, jnp.ones(40), 2, key=jax.random.key(0), tol=1e-6, max_matvecs=5
            ),
            ValueError,
            "max_matvecs must cover one cycle of order",
        ),
        (
            lambda: spectral.hutchinson_trace(
                lambda w: w @ w, jnp.ones(3), key=jax.random.key(0), probes=1
            ),
            ValueError,
            "probes must be an int >= 2",
        ),
        (
            lambda: spectral.hessian_curvature(mlp_loss, (X, Y[:5]), batch_size=4),
            ValueError,
            "same number of rows",
        ),
        (
            lambda: spectral.hessian_curvature(mlp_loss, (np.where(X > 1, np.nan, X), Y)),
            ValueError,
            r"data \(array 0\) must be finite",
        ),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_subspace_overlap_and_directional_curvature_against_the_dense_hessian(mlp):
    """‖Π_U v‖²/‖v‖² and vᵀHv/vᵀv against NumPy on the exact float64 Hessian (P = 74)."""
    params, _ = mlp
    matrix, unravel = hessian.hessian_matrix(mlp_loss, params)
    h = np.asarray(matrix)
    lam, u = np.linalg.eigh(h)
    rng = np.random.default_rng(0)
    v = rng.standard_normal(h.shape[0])
    top = [unravel(jnp.asarray(u[:, -i])) for i in (1, 2, 3)]
    expected = np.sum((u[:, -3:].T @ v) ** 2) / (v @ v)
    got = spectral.subspace_overlap(top, unravel(jnp.asarray(v)))
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # any basis of the same span gives the same projection; a vector inside has overlap 1
    mixed = [unravel(jnp.asarray(u[:, -1] + 2 * u[:, -2])), top[1], top[2]]
    np.testing.assert_allclose(spectral.subspace_overlap(mixed, unravel(jnp.asarray(v))), expected)
    inside = unravel(jnp.asarray(u[:, -3:] @ rng.standard_normal(3)))
    np.testing.assert_allclose(spectral.subspace_overlap(top, inside), 1.0, rtol=1e-12)
    outside = unravel(jnp.asarray(u[:, 0]))
    np.testing.assert_allclose(spectral.subspace_overlap(top, outside), 0.0, atol=1e-20)
    # the Eigenpairs of top_eigenvalues serve as the basis, and it all runs under jit
    pairs = spectral.top_eigenvalues(mlp_loss, params, 3, key=jax.random.key(5), order=74)
    np.testing.assert_allclose(
        jax.jit(spectral.subspace_overlap)(pairs, unravel(jnp.asarray(v))), expected, rtol=1e-6
    )
    # curvature along v, and along an eigenvector: its eigenvalue
    curv = jax.jit(spectral.directional_curvature, static_argnums=0)
    np.testing.assert_allclose(curv(mlp_loss, params, unravel(jnp.asarray(v))), v @ h @ v / (v @ v))
    np.testing.assert_allclose(curv(mlp_loss, params, top[0]), lam[-1], rtol=1e-10)
    # on a block: the masked vector against the masked matrix
    first = spectral.directional_curvature(
        mlp_loss, params, unravel(jnp.asarray(v)), mask=lambda path: path.startswith("[0]")
    )
    on = np.asarray(
        jax.flatten_util.ravel_pytree(
            [jax.tree.map(jnp.ones_like, params[0])]
            + [jax.tree.map(jnp.zeros_like, p) for p in params[1:]]
        )[0]
    )
    w = v * on
    np.testing.assert_allclose(first, w @ h @ w / (w @ w), rtol=1e-10)
    with pytest.raises(ValueError, match="every vector must have the 74 entries"):
        spectral.subspace_overlap([jnp.ones(3)], unravel(jnp.asarray(v)))


# ---- full precision: no TF32 or bfloat16 passes in any product (GPU/TPU) ----

SIZES32 = (3, 5, 4)  # P = 44: shapes no other test compiles, so every program is lowered anew
X32 = np.random.default_rng(5).standard_normal((9, 3)).astype(np.float32)
Y32 = np.arange(9) % 4
KEY = jax.random.key(0)


def _vectors(params, k, seed):
    size = jax.flatten_util.ravel_pytree(params)[0].size
    return jnp.asarray(np.random.default_rng(seed).standard_normal((k, size)), jnp.float32)


def _product(curvature, params):
    """A curvature's product inside a new jitted program (so that it is lowered here)."""
    return jax.jit(curvature.matvec)(params, params)


def _hook(hook, params):
    """A hook's update once, jitted as fit would run it."""
    update = hook.update if not hook.with_opt_state else (
        lambda h, p, s, t: hook.update(h, p, s, t, None)
    )  # fmt: skip
    return jax.jit(update)(hook.init(params), params, None, 0)


def _model(q, x=X32):
    return jaxnn.forward(q, x)


#: each call(objective, loss, params) runs one tool on a float32 MLP
FULL_PRECISION_CALLS = {
    "hvp": lambda obj, loss, p: spectral.hvp(loss, p, p),
    "power_iteration": lambda obj, loss, p: spectral.power_iteration(loss, p, key=KEY, max_iter=3),
    "lambda_max_min": lambda obj, loss, p: spectral.lambda_max_min(loss, p, key=KEY, max_iter=3),
    "lanczos": lambda obj, loss, p: spectral.lanczos(loss, p, 6, key=KEY),
    "top_eigenvalues": lambda obj, loss, p: spectral.top_eigenvalues(loss, p, 2, key=KEY, tol=1e-3),
    "bottom_eigenvalues": lambda obj, loss, p: spectral.bottom_eigenvalues(loss, p, 2, key=KEY),
    "hutchinson_trace": lambda obj, loss, p: spectral.hutchinson_trace(loss, p, key=KEY, probes=3),
    "hutchpp_trace": lambda obj, loss, p: spectral.hutchpp_trace(loss, p, key=KEY, matvecs=9),
    "hessian_diagonal": lambda obj, loss, p: spectral.hessian_diagonal(loss, p, key=KEY, probes=3),
    "spectral_density": lambda obj, loss, p: spectral.spectral_density(
        loss, p, key=KEY, order=5, probes=2
    ),
    "gauss_newton": lambda obj, loss, p: _product(
        spectral.gauss_newton(_model, lambda f: losses.softmax_cross_entropy(f, Y32)), p
    ),
    "fisher": lambda obj, loss, p: _product(spectral.fisher(_model, (X32, Y32)), p),
    "empirical_fisher": lambda obj, loss, p: _product(
        spectral.empirical_fisher(_model, losses.softmax_cross_entropy, (X32, Y32)), p
    ),
    "dataset hessian": lambda obj, loss, p: _product(
        spectral.hessian_curvature(
            lambda q, b: losses.softmax_cross_entropy(_model(q, b[0]), b[1]),
            (X32, Y32),
            batch_size=4,
        ),
        p,
    ),
    "preconditioned": lambda obj, loss, p: _product(
        spectral.preconditioned(loss, jax.tree.map(jnp.ones_like, p)), p
    ),
    "directional_curvature": lambda obj, loss, p: spectral.directional_curvature(loss, p, p),
    "subspace_overlap": lambda obj, loss, p: spectral.subspace_overlap(
        _vectors(p, 2, 0), _vectors(p, 1, 1)[0]
    ),
    "principal_angles": lambda obj, loss, p: spectral.principal_angles(
        list(_vectors(p, 3, 0)), list(_vectors(p, 3, 1))
    ),
    "sharpness_hook": lambda obj, loss, p: _hook(
        spectral.sharpness_hook(obj, (X32, Y32), iters=3, key=KEY), p
    ),
    "eigen_tracking_hook": lambda obj, loss, p: _hook(
        spectral.eigen_tracking_hook(obj, (X32, Y32), k=2, iters=3, key=KEY), p
    ),
    "alignment_hook": lambda obj, loss, p: _hook(
        spectral.alignment_hook(obj, (X32, Y32), k=2, iters=3, key=KEY), p
    ),
}


@pytest.mark.parametrize("name", FULL_PRECISION_CALLS)
def test_every_matrix_product_runs_at_full_precision(name, tmp_path):
    """At JAX's default precision a float32 product rounds its operands to TF32 on recent
    NVIDIA GPUs (bfloat16 on TPUs), a relative error near 1e-3 that no tolerance can get
    below. On the CPU the rounding cannot be seen, but the precision each product is
    compiled with can: every dot_general of every program a tool lowers must say HIGHEST."""

    def objective(p, state, batch, key):  # a new function: no compiled program is reused
        return losses.softmax_cross_entropy(_model(p, batch[0]), batch[1]), state

    params = jaxnn.init_mlp(jax.random.key(1), SIZES32, dtype=jnp.float32)
    jax.config.update("jax_dump_ir_to", str(tmp_path))
    try:
        loss = lambda p: objective(p, None, (X32, Y32), None)[0]
        jax.block_until_ready(FULL_PRECISION_CALLS[name](objective, loss, params))
    finally:
        jax.config.update("jax_dump_ir_to", "")
    lines = [
        line
        for path in tmp_path.glob("*.mlir")
        for line in path.read_text().splitlines()
        if "stablehlo.dot_general" in line
    ]
    assert lines, f"{name} lowered no matrix product"
    default = [line.strip() for line in lines if "precision = [HIGHEST, HIGHEST]" not in line]
    assert not default, f"{name}: {len(default)} of {len(lines)} products at default: {default[0]}"
