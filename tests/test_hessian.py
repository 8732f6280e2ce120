"""jaxnn.hessian: the exact Hessian, its spectrum, and notes 001's rates 1 − ηλ, checked
against closed forms (quadratic bowls), finite differences and NumPy/LAPACK references.

Every test runs in float64 (the module's autouse fixture), where the rate comparisons can
be tight; the float32 defaults are checked in one test that switches x64 off.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import datasets, hessian, losses
from jaxnn.hessian import _lapack, _matrix

pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest.py)


def _bowl(kappa, d=12, seed=0):
    return datasets.quadratic_bowl(
        np.geomspace(1.0, kappa, d), key=jax.random.key(seed), minimizer=np.linspace(-1.0, 2.0, d)
    )


KAPPAS = (1.0, 10.0, 1e4)


@pytest.fixture(scope="module")
def bowls():
    """One bowl (and its spectrum) per κ, shared by the tests below."""
    with jax.enable_x64(True):
        out = {}
        for kappa in KAPPAS:
            bowl = _bowl(kappa)
            out[kappa] = bowl, hessian.spectrum(bowl.loss, bowl.minimizer)
        return out


@pytest.mark.parametrize("kappa", KAPPAS)
def test_hessian_and_spectrum_of_a_bowl_are_exact(bowls, kappa):
    bowl, spec = bowls[kappa]
    matrix, unravel = hessian.hessian_matrix(bowl.loss, bowl.minimizer)
    assert matrix.dtype == jnp.float64
    np.testing.assert_allclose(matrix, bowl.matrix, atol=1e-12 * kappa)
    np.testing.assert_allclose(unravel(jnp.arange(12.0)), jnp.arange(12.0))
    np.testing.assert_allclose(spec.eigenvalues, bowl.eigenvalues, rtol=1e-10, atol=1e-12)
    assert spec.kind == "minimum" and spec.n_negative == spec.n_zero == 0
    assert spec.condition_number == pytest.approx(kappa, rel=1e-10)
    assert spec.stability_threshold == pytest.approx(2 / kappa, rel=1e-12)
    assert spec.lr_top == pytest.approx(1 / kappa, rel=1e-12)
    assert spec.optimal_lr == pytest.approx(2 / (1 + kappa), rel=1e-10)
    assert spec.optimal_rate == pytest.approx((kappa - 1) / (kappa + 1), abs=1e-10)
    # eigenvectors: orthonormal columns with H u = λ u
    u = spec.eigenvectors
    np.testing.assert_allclose(u.T @ u, np.eye(12), atol=1e-10)
    np.testing.assert_allclose(
        np.asarray(bowl.matrix) @ u, u * spec.eigenvalues, atol=1e-10 * kappa
    )


@pytest.mark.parametrize("kappa", KAPPAS)
@pytest.mark.parametrize("which", ["1/lambda_max", "optimal", "1.9/lambda_max"])
def test_observed_rates_are_one_minus_eta_lambda(bowls, kappa, which):
    bowl, spec = bowls[kappa]
    lr = {
        "1/lambda_max": spec.lr_top,
        "optimal": spec.optimal_lr,
        "1.9/lambda_max": 1.9 / spec.lambda_max,
    }[which]
    check = hessian.check_rates(bowl.loss, bowl.minimizer, lr, 40, spec=spec, key=jax.random.key(0))
    np.testing.assert_allclose(check.predicted, 1 - lr * np.asarray(bowl.eigenvalues), atol=1e-12)
    measured = np.isfinite(check.observed)
    np.testing.assert_allclose(check.observed[measured], check.predicted[measured], atol=1e-6)
    assert not check.diverging.any()
    if which == "1/lambda_max":
        # the top direction is solved in one step: rate exactly 0, nothing left to measure
        assert np.isnan(check.observed[-1]) and check.steps_used[-1] == 0
        assert measured.sum() == (0 if kappa == 1 else 11)
    elif np.all(np.abs(check.predicted) < 1e-12):  # κ = 1: η* = 1/λmax solves every direction
        assert not measured.any()
    else:
        assert measured.all() and check.max_gap < 1e-6
    if which == "1.9/lambda_max":
        assert check.observed[-1] == pytest.approx(-0.9, abs=1e-6)  # oscillates in sign


def test_above_two_over_lambda_max_the_top_direction_diverges(bowls):
    bowl, spec = bowls[1e4]
    lr = 2.05 / spec.lambda_max
    check = hessian.check_rates(bowl.loss, bowl.minimizer, lr, 40, spec=spec, key=jax.random.key(0))
    assert check.diverging.tolist() == [False] * 11 + [True]
    assert check.growth[-1] == pytest.approx(abs(1 - lr * spec.lambda_max), abs=1e-6)
    assert check.growth[-1] > 1 and check.max_gap < 1e-6
    np.testing.assert_allclose(
        np.abs(check.alpha[-1, -1] / check.alpha[0, -1]), 1.05**40, rtol=1e-6
    )


def test_any_pytree_flattens_like_ravel_pytree():
    def loss_fn(p):
        return jnp.sum(jnp.sin(p["a"]) * p["b"][0]) + jnp.sum(p["a"] ** 2) * p["b"][1] ** 2

    params = {"a": jnp.array([0.3, -1.2, 0.7]), "b": (jnp.array(1.5), jnp.array(-0.4))}
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    expected = jax.hessian(lambda x: loss_fn(unravel(x)))(flat)
    for chunk in (None, 1, 2):  # remainders of lax.map's batches included
        matrix, unravel2 = hessian.hessian_matrix(loss_fn, params, hvp_batch=chunk)
        np.testing.assert_allclose(matrix, expected, rtol=1e-12, atol=1e-14)
    assert jax.tree.structure(unravel2(flat)) == jax.tree.structure(params)
    spec = hessian.spectrum(loss_fn, params, hvp_batch=2)
    np.testing.assert_allclose(spec.eigenvalues, np.linalg.eigvalsh(expected), atol=1e-12)


def test_a_saddle_is_reported_as_such():
    def loss_fn(w):
        return w[0] ** 2 - w[1] ** 2

    spec = hessian.spectrum(loss_fn, jnp.zeros(2))
    np.testing.assert_allclose(spec.eigenvalues, [-2.0, 2.0])
    assert spec.kind == "saddle" and spec.n_negative == 1 and spec.n_zero == 0
    assert spec.condition_number == math.inf
    assert math.isnan(spec.optimal_lr) and spec.optimal_rate == 1.0
    found = hessian.find_minimum(loss_fn, jnp.zeros(2), steps=0)
    assert found.kind == "saddle" and found.converged and found.newton_steps == 0
    assert "saddle point, not a minimum" in found.report and "1 of 2" in found.report
    # near it, the saddle-free step leaves along −y² (plain Newton would jump onto it)
    away = hessian.find_minimum(loss_fn, jnp.array([0.3, 0.2]), steps=0, newton_steps=3)
    np.testing.assert_allclose(away.params, [0.0, 1.6], atol=1e-12)
    assert away.loss == pytest.approx(-2.56) and not away.converged


# ---------------------------------------------------------------- an MLP at a minimum


@pytest.fixture(scope="module")
def mlp_problem():
    """Tanh MLP 2-6-6-2 on 64 two-moons points, softmax cross-entropy + (c/2)‖θ‖² on every
    parameter (biases too), taken to a minimum with Adam + Newton, in float64."""
    with jax.enable_x64(True):
        data = datasets.moons(64, key=jax.random.key(0), noise=0.2)
        x, y = jnp.asarray(data.x, jnp.float64), data.y
        params = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float64), jaxnn.init_mlp(jax.random.key(1), [2, 6, 6, 2])
        )

        def data_loss(p):
            return losses.softmax_cross_entropy(jaxnn.forward(p, x, activation="tanh"), y)

        def loss_fn(p):
            return data_loss(p) + 0.5e-2 * sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(p))

        def weights_only(p):  # notes 000's L2: weights, not biases
            return data_loss(p) + losses.l2_penalty(p, 0.64, 64)

        return loss_fn, weights_only, hessian.find_minimum(loss_fn, params)


def test_find_minimum_reaches_a_strict_minimum(mlp_problem):
    _, _, found = mlp_problem
    assert found.kind == "minimum" and found.converged and found.report.startswith("strict")
    assert found.grad_norm < 1e-11 and found.newton_steps >= 1
    assert found.spectrum.n_zero == 0 and found.spectrum.lambda_min > 0
    assert math.isfinite(found.spectrum.condition_number)


def test_mlp_hessian_is_symmetric_and_matches_finite_differences(mlp_problem):
    loss_fn, _, found = mlp_problem
    matrix, unravel = hessian.hessian_matrix(loss_fn, found.params)
    scale = found.spectrum.lambda_max
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12 * scale)
    flat = jax.flatten_util.ravel_pytree(found.params)[0]
    grad = jax.jit(jax.grad(lambda v: loss_fn(unravel(v))))
    h = 1e-5
    columns = [(grad(flat + h * e) - grad(flat - h * e)) / (2 * h) for e in np.eye(flat.size)]
    fd = np.stack(columns, axis=1)
    np.testing.assert_allclose(matrix, fd, atol=1e-6 * scale)
    fd_eigs = np.linalg.eigvalsh(0.5 * (fd + fd.T))
    assert np.max(np.abs(fd_eigs - found.spectrum.eigenvalues)) < 1e-4 * scale


@pytest.mark.parametrize("which", ["1/lambda_max", "optimal", "1.9/lambda_max", "2.05"])
def test_mlp_observed_rates_match_predicted(mlp_problem, which):
    loss_fn, _, found = mlp_problem
    spec = found.spectrum
    lr = {
        "1/lambda_max": spec.lr_top,
        "optimal": spec.optimal_lr,
        "1.9/lambda_max": 1.9 / spec.lambda_max,
        "2.05": 2.05 / spec.lambda_max,
    }[which]
    check = hessian.check_rates(loss_fn, found.params, lr, 12, spec=spec, key=jax.random.key(0))
    assert check.grad_norm < 1e-11
    assert np.isfinite(check.observed[:-1]).all() and check.max_gap < 1e-3
    # at η = 1/λmax the top direction's rate is 0: solved in one step, down to round-off
    assert np.isfinite(check.observed[-1]) or which == "1/lambda_max"
    assert check.diverging.sum() == (1 if which == "2.05" else 0)


def test_penalising_weights_only_leaves_an_exact_zero_eigenvalue(mlp_problem):
    _, weights_only, found = mlp_problem
    spec = hessian.spectrum(weights_only, found.params)
    # shifting both output biases by the same amount changes no softmax output
    shift = jax.flatten_util.ravel_pytree(
        [{"w": jnp.zeros_like(l["w"]), "b": jnp.zeros_like(l["b"])} for l in found.params[:-1]]
        + [{"w": jnp.zeros((6, 2)), "b": jnp.ones(2) / math.sqrt(2)}]
    )[0]
    matrix, _ = hessian.hessian_matrix(weights_only, found.params)
    assert np.max(np.abs(matrix @ shift)) < 1e-12
    assert spec.n_zero >= 1 and spec.condition_number == math.inf
    assert spec.kind in ("degenerate", "saddle")
    again = hessian.find_minimum(weights_only, found.params, steps=0)
    assert again.kind == "degenerate" and again.spectrum.n_zero == 1
    assert "not a strict minimum" in again.report and again.converged


# ---------------------------------------------------------------- momentum


@pytest.mark.parametrize(
    "nesterov,setting",
    [(False, "mu=0.5"), (False, "mu=0.9"), (False, "polyak"), (True, "mu=0.5"), (True, "mu=0.9")],
)
def test_momentum_recurrence_and_radius_match_on_a_bowl(bowls, nesterov, setting):
    bowl, spec = bowls[1e4]
    if setting == "polyak":
        lr, mu, _ = hessian.polyak_momentum(spec.lambda_min, spec.lambda_max)
    else:
        mu = float(setting[3:])
        lr = 0.9 * hessian.max_stable_lr(spec.lambda_max, mu, nesterov)
    # A quadratic has no higher-order terms, so a large perturbation is free and keeps the
    # double roots at Polyak's optimum (ρ error ~ √(error in p, q)) far above round-off.
    check = hessian.check_rates(
        bowl.loss,
        bowl.minimizer,
        lr,
        150,
        mu=mu,
        nesterov=nesterov,
        spec=spec,
        perturbation=1e-3,
        key=jax.random.key(0),
    )
    lam = np.asarray(bowl.eigenvalues)
    p, q = (1 - lr * lam) * (1 + mu), -(1 - lr * lam) * mu
    if not nesterov:
        p, q = 1 + mu - lr * lam, np.full_like(lam, -mu)
    np.testing.assert_allclose(check.predicted_pq, np.stack([p, q], 1), rtol=1e-12, atol=1e-15)
    matrices = np.stack([np.array([[a, b], [1.0, 0.0]]) for a, b in zip(p, q)])
    radius = np.abs(np.linalg.eigvals(matrices)).max(axis=1)
    np.testing.assert_allclose(check.predicted, radius, atol=1e-7)  # eigvals at a double root
    assert np.isfinite(check.observed).all()
    np.testing.assert_allclose(check.observed_pq, check.predicted_pq, atol=1e-6)
    np.testing.assert_allclose(check.observed, check.predicted, atol=1e-6)
    assert check.max_gap < 1e-6 and not check.diverging.any()
    if setting == "polyak":
        np.testing.assert_allclose(check.predicted, math.sqrt(mu), rtol=1e-7)


@pytest.mark.parametrize("nesterov", [False, True])
def test_just_above_the_momentum_threshold_the_top_direction_diverges(bowls, nesterov):
    bowl, spec = bowls[1e4]
    mu = 0.6
    edge = hessian.max_stable_lr(spec.lambda_max, mu, nesterov)
    expected = 2 * (1 + mu) / spec.lambda_max / ((1 + 2 * mu) if nesterov else 1)
    assert edge == pytest.approx(expected, rel=1e-12)
    at_edge = hessian.predicted_rates_momentum(spec.lambda_max, edge, mu, nesterov)
    assert float(at_edge) == pytest.approx(1.0, abs=1e-12)
    check = hessian.check_rates(
        bowl.loss,
        bowl.minimizer,
        1.02 * edge,
        100,
        mu=mu,
        nesterov=nesterov,
        spec=spec,
        key=jax.random.key(0),
    )
    assert check.diverging.tolist() == [False] * 11 + [True]
    assert check.growth[-1] > 1 and check.max_gap < 1e-6
    below = hessian.check_rates(
        bowl.loss,
        bowl.minimizer,
        0.98 * edge,
        100,
        mu=mu,
        nesterov=nesterov,
        spec=spec,
        key=jax.random.key(0),
    )
    assert not below.diverging.any() and below.growth[-1] < 1


def test_polyak_rate_is_the_same_in_every_direction():
    step = hessian.polyak_momentum(1.0, 100.0)
    assert step.lr == pytest.approx(4 / 121) and step.mu == pytest.approx((9 / 11) ** 2)
    lam = np.linspace(1.0, 100.0, 50)
    radius = hessian.predicted_rates_momentum(lam, step.lr, step.mu)
    np.testing.assert_allclose(radius, step.rate, rtol=1e-6)  # sqrt sensitivity at the ends
    plain = np.abs(hessian.predicted_rates(lam, 2 / 101)).max()
    assert step.rate == pytest.approx(9 / 11) and plain == pytest.approx(99 / 101)


# ---------------------------------------------------------------- LAPACK paths, memory


def test_eigen_solvers_agree_with_numpy(monkeypatch):
    rng = np.random.default_rng(0)
    b = rng.standard_normal((60, 60))
    a = b + b.T
    expected = np.linalg.eigvalsh(a)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-4)):
        w, v = _lapack.eigh_host(np.asfortranarray(a, dtype), vectors=False)
        assert v is None and w.dtype == dtype
        np.testing.assert_allclose(w, expected, atol=tol * 20)
        w, v = _lapack.eigh_host(np.asfortranarray(a, dtype), vectors=True)
        np.testing.assert_allclose(w, expected, atol=tol * 20)
        np.testing.assert_allclose((a @ v) / v, w[None, :] * np.ones((60, 1)), rtol=tol * 50)
    # tiny and huge matrices are scaled into LAPACK's safe range first, as ?syevd does
    for factor in (1e-30, 1e30):
        w, _ = _lapack.eigh_host(np.asfortranarray(a * factor, np.float32), vectors=False)
        np.testing.assert_allclose(w / factor, expected, atol=2e-3)
    w, _ = _lapack.eigh_host(np.array([[3.0]], order="F"), vectors=False)
    assert w.tolist() == [3.0]
    # without scipy's two-stage routines, and on an accelerator, the answers are the same
    bowl = _bowl(100.0)
    reference = hessian.spectrum(bowl.loss, bowl.minimizer, vectors=False).eigenvalues
    monkeypatch.setattr(_lapack, "_two_stage_lapack", lambda: None)
    fallback = hessian.spectrum(bowl.loss, bowl.minimizer, vectors=False).eigenvalues
    monkeypatch.setattr(_matrix.jax, "default_backend", lambda: "gpu")
    device = hessian.spectrum(bowl.loss, bowl.minimizer)
    for got in (fallback, device.eigenvalues):
        np.testing.assert_allclose(got, reference, rtol=1e-10)
    np.testing.assert_allclose(
        np.abs(device.eigenvectors.T @ np.asarray(bowl.eigenvectors)), np.eye(12), atol=1e-8
    )


def test_float32_by_default():
    with jax.enable_x64(False):
        bowl = datasets.quadratic_bowl([1.0, 3.0, 10.0])
        matrix, _ = hessian.hessian_matrix(bowl.loss, bowl.minimizer)
        spec = hessian.spectrum(bowl.loss, bowl.minimizer)
    assert matrix.dtype == jnp.float32 and spec.eigenvalues.dtype == np.float32
    np.testing.assert_allclose(spec.eigenvalues, [1.0, 3.0, 10.0], rtol=1e-6)


def test_a_matrix_over_the_memory_budget_is_refused_before_it_is_built():
    params = jnp.zeros(3000)
    with pytest.raises(
        ValueError,
        match=r"3,000 parameters needs about 0.07 GiB.*max_bytes="
        r"1,000,000.*jaxnn.spectral",
    ):
        hessian.hessian_matrix(jnp.sum, params, max_bytes=1_000_000)
    with pytest.raises(ValueError, match=r"3 × a 3,000×3,000 float64"):
        hessian.spectrum(jnp.sum, params, max_bytes=0.1 * 2**30)
    hessian.spectrum(jnp.sum, params, vectors=False, max_bytes=0.1 * 2**30)  # 1 × fits


def test_bad_input_is_named():
    bowl = _bowl(10.0)
    w = bowl.minimizer
    with pytest.raises(ValueError, match="loss_fn must return a float scalar"):
        hessian.hessian_matrix(lambda p: p * 2, w)
    with pytest.raises(TypeError, match="floating-point"):
        hessian.spectrum(bowl.loss, jnp.arange(12))
    with pytest.raises(ValueError, match=r"params \(leaf 0\) must be finite"):
        hessian.spectrum(bowl.loss, w.at[3].set(jnp.nan))
    with pytest.raises(TypeError, match="loss_fn must be a function"):
        hessian.spectrum("loss", w)
    with pytest.raises(ValueError, match="NaN or infinite entries"):
        hessian.spectrum(lambda p: jnp.sum(jnp.sqrt(p)), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"lr must satisfy 0.0 < lr"):
        hessian.check_rates(bowl.loss, w, 0.0, 10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="mu must satisfy"):
        hessian.check_rates(bowl.loss, w, 0.1, 10, mu=1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="steps must be an int >= 3"):
        hessian.check_rates(bowl.loss, w, 0.1, 2, mu=0.5, key=jax.random.key(0))
    with pytest.raises(ValueError, match="vectors=True"):
        hessian.check_rates(
            bowl.loss,
            w,
            0.1,
            10,
            spec=hessian.spectrum(bowl.loss, w, vectors=False),
            key=jax.random.key(0),
        )
    with pytest.raises(ValueError, match="lambda_max must satisfy"):
        hessian.max_stable_lr(-1.0)
    with pytest.raises(ValueError, match=r"lambda_max must satisfy 1.0 <= lambda_max"):
        hessian.polyak_momentum(1.0, 0.5)
