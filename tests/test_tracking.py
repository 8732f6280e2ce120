"""The eigen-tracking and alignment hooks inside fit, against the dense float64 Hessian of
the params they saw."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxnn
from jaxnn import datasets, hessian, losses, optimizers, spectral, train

pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest.py)


MOONS = datasets.moons(40, key=jax.random.key(0))
X, Y = np.asarray(MOONS.x, np.float64), np.asarray(MOONS.y)


def loss(params):
    return losses.softmax_cross_entropy(jaxnn.forward(params, X, activation="tanh"), Y)


def objective(p, s, batch, k):
    return loss(p), s


KEEP = train.Hook(lambda p: (), lambda s, p, st, t: (s, p), 10)  # the params it measured


def _run(hooks, opt=None, steps=31):
    params = jaxnn.init_mlp(jax.random.key(1), (2, 6, 2), dtype=jnp.float64)
    opt = optimizers.sgd(0.5) if opt is None else opt
    run = train.fit(
        objective,
        params,
        opt,
        None,
        key=jax.random.key(0),
        steps=steps,
        hooks={"params": KEEP, **hooks},
    )
    seen = run.history["hooks"]["params"].record
    return run, [jax.tree.map(lambda a, i=i: a[i], seen) for i in range(4)]


def test_tracking_hook_follows_the_exact_top_eigenvalues_warm_started():
    hook = spectral.eigen_tracking_hook(
        objective, None, k=3, every=10, key=jax.random.key(2), iters=300, tol=1e-9
    )
    run, seen = _run({"eig": hook})
    rec = run.history["hooks"]["eig"].record
    for i, p in enumerate(seen):
        exact = np.linalg.eigvalsh(np.asarray(hessian.hessian_matrix(loss, p)[0]))[::-1]
        np.testing.assert_allclose(rec["values"][i], exact[:3], rtol=1e-7)
        assert (rec["residuals"][i] <= 1e-9 * np.abs(rec["values"][i])).all()
    # later measurements start from the previous vectors: fewer products than the first
    assert (rec["matvecs"][1:] < rec["matvecs"][0]).all()
    assert (rec["matvecs"] == 3 + 2 * 3 * rec["iterations"]).all()


def test_tracking_hook_grows_to_every_eigenvalue_above_the_fraction_of_two_over_eta():
    lr, c = 0.5, 0.05  # tracks λ > c·2/η = 0.2
    hook = spectral.eigen_tracking_hook(
        objective,
        None,
        k=1,
        every=10,
        key=jax.random.key(3),
        lr=lr,
        grow_above=c,
        max_k=8,
        iters=400,
        tol=1e-8,
    )
    run, seen = _run({"eig": hook})
    rec = run.history["hooks"]["eig"].record
    for i, p in enumerate(seen):
        exact = np.linalg.eigvalsh(np.asarray(hessian.hessian_matrix(loss, p)[0]))[::-1]
        above = max(1, int(np.sum(exact > c * 2 / lr)))
        assert 1 < above < 8  # the test means something: more than k, fewer than the cap
        assert int(rec["tracked"][i]) == above
        np.testing.assert_allclose(rec["values"][i][:above], exact[:above], rtol=1e-6)
        assert np.isnan(rec["values"][i][above:]).all()


def test_alignment_hook_against_explicit_projections():
    opt = optimizers.adam(0.02)
    hook = spectral.alignment_hook(
        objective, None, opt, k=2, every=10, key=jax.random.key(4), iters=300, tol=1e-10
    )
    run, seen = _run({"align": hook}, opt)
    rec = run.history["hooks"]["align"].record
    for i, p in enumerate(seen):
        h = np.asarray(hessian.hessian_matrix(loss, p)[0])
        lam, u = np.linalg.eigh(h)
        top = u[:, -2:]
        g = np.asarray(ravel_pytree(jax.grad(loss)(p))[0])
        np.testing.assert_allclose(rec["values"][i], lam[::-1][:2], rtol=1e-8)
        np.testing.assert_allclose(
            rec["gradient_overlap"][i], np.sum((top.T @ g) ** 2) / (g @ g), rtol=1e-6, atol=1e-12
        )
        np.testing.assert_allclose(rec["gradient_curvature"][i], g @ h @ g / (g @ g), rtol=1e-9)
    # the update Adam takes at step 10 is the one the hook projected
    before = train.fit(objective, seen[0], opt, None, key=jax.random.key(0), steps=10)
    after = train.fit(objective, seen[0], opt, None, key=jax.random.key(0), steps=11)
    u = np.asarray(ravel_pytree(after.params)[0] - ravel_pytree(before.params)[0])
    top = np.linalg.eigh(np.asarray(hessian.hessian_matrix(loss, seen[1])[0]))[1][:, -2:]
    np.testing.assert_allclose(
        rec["update_overlap"][1], np.sum((top.T @ u) ** 2) / (u @ u), rtol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"grow_above": 0.5}, "grow_above needs lr"),
        ({"max_k": 8}, "max_k needs grow_above"),
        ({"tol": 0.0}, "tol must satisfy"),
        ({"k": 0}, "k must be"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        spectral.eigen_tracking_hook(objective, None, key=jax.random.key(0), **kwargs)
