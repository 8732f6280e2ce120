"""jaxnn.landscape against loops of loss evaluations and NumPy's SVD (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxnn
from jaxnn import datasets, landscape, losses, optimizers, train

pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout (conftest.py)


MOONS = datasets.moons(40, key=jax.random.key(0))
X, Y = np.asarray(MOONS.x, np.float64), np.asarray(MOONS.y)


def loss(params):
    return losses.softmax_cross_entropy(jaxnn.forward(params, X, activation="tanh"), Y)


def _params():
    return jaxnn.init_mlp(jax.random.key(1), (2, 6, 2), dtype=jnp.float64)


def test_filter_normalised_direction_matches_each_columns_norm():
    params = _params()
    d = landscape.random_direction(jax.random.key(0), params)
    for dl, wl in zip(d, params):
        np.testing.assert_allclose(
            np.linalg.norm(dl["w"], axis=0), np.linalg.norm(wl["w"], axis=0), rtol=1e-12
        )
        np.testing.assert_array_equal(dl["b"], 0.0)  # biases: no direction
    layer = landscape.random_direction(jax.random.key(0), params, normalization="layer")
    for dl, wl in zip(layer, params):
        assert np.linalg.norm(dl["w"]) == pytest.approx(np.linalg.norm(wl["w"]), rel=1e-12)
    raw = landscape.random_direction(jax.random.key(0), params, normalization=None)
    assert all(np.linalg.norm(r["b"]) > 0 for r in raw)
    # a convolution kernel (3, 3, c_in, c_out): one norm per output filter
    kernel = {"k": jax.random.normal(jax.random.key(2), (3, 3, 4, 5), jnp.float64)}
    dk = landscape.random_direction(jax.random.key(3), kernel)["k"]
    np.testing.assert_allclose(
        np.linalg.norm(dk.reshape(-1, 5), axis=0),
        np.linalg.norm(kernel["k"].reshape(-1, 5), axis=0),
        rtol=1e-12,
    )


def test_plane_line_and_interpolate_equal_a_loop_of_loss_evaluations():
    params = _params()
    d1 = landscape.random_direction(jax.random.key(4), params)
    d2 = landscape.random_direction(jax.random.key(5), params)
    alphas, betas = np.linspace(-1, 1, 7), np.linspace(-0.5, 1.5, 5)
    at = lambda a, b: jax.tree.map(lambda w, x, y: w + a * x + b * y, params, d1, d2)
    expected = np.array([[float(loss(at(a, b))) for b in betas] for a in alphas])
    for chunk in (None, 1, 4, 35):  # chunks that divide the 35 points and that do not
        got = landscape.plane(loss, params, d1, d2, alphas, betas, chunk_size=chunk)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(
        landscape.line(loss, params, d1, alphas), expected[:, np.argmin(np.abs(betas))], rtol=1e-12
    )
    b = at(0.3, 0.7)
    ends = landscape.interpolate(loss, params, b, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(ends, [loss(params), loss(at(0.15, 0.35)), loss(b)], rtol=1e-12)


def test_trajectory_plane_against_numpy_svd_of_a_real_path():
    keep = train.Hook(lambda p: (), lambda s, p, st, t: (s, p), 5)
    run = train.fit(
        lambda p, s, batch, k: (loss(p), s),
        _params(),
        optimizers.sgd(0.5),
        None,
        key=jax.random.key(0),
        steps=100,
        hooks={"path": keep},
    )
    path = run.history["hooks"]["path"].record
    plane = landscape.trajectory_plane(path)
    rows = np.asarray(jax.vmap(lambda t: ravel_pytree(t)[0])(path))
    m = rows - rows[-1]
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    got = np.stack([ravel_pytree(d)[0] for d in plane.directions])
    signs = np.sign(np.sum(got * vt[:2], axis=1))  # singular vectors up to sign
    np.testing.assert_allclose(got * signs[:, None], vt[:2], atol=1e-10)
    np.testing.assert_allclose(plane.explained, s[:2] ** 2 / np.sum(s**2), rtol=1e-10)
    np.testing.assert_allclose(plane.coordinates * signs, m @ vt[:2].T, atol=1e-10)
    np.testing.assert_allclose(plane.coordinates[-1], 0.0, atol=1e-12)  # ends at the origin
    np.testing.assert_allclose(got @ got.T, np.eye(2), atol=1e-12)
    # the plane around the final point, with the path on it, drawn
    from jaxnn import plotting

    alphas = np.linspace(-1.2, 1.2, 9) * np.abs(plane.coordinates[:, 0]).max()
    betas = np.linspace(-1.2, 1.2, 9) * np.abs(plane.coordinates[:, 1]).max()
    grid = landscape.plane(loss, plane.origin, *plane.directions, alphas, betas)
    fig = plotting.landscape(alphas, betas, grid, path=plane.coordinates)
    assert len(fig.axes) == 2  # the contours and their colour bar


@pytest.mark.parametrize(
    "call,error,message",
    [
        (
            lambda: landscape.random_direction(jax.random.key(0), _params(), normalization="unit"),
            ValueError,
            r"normalization must be one of \['filter', 'layer', None\], got 'unit'",
        ),
        (
            lambda: landscape.line(loss, _params(), {"w": jnp.ones(2)}, [0.0, 1.0]),
            ValueError,
            "direction must be a pytree shaped like the params",
        ),
        (
            lambda: landscape.plane(loss, _params(), _params(), _params(), [], [0.0]),
            ValueError,
            "alphas must be a non-empty 1-D sequence",
        ),
        (
            lambda: landscape.plane(loss, _params(), _params(), _params(), [0.0], [np.nan]),
            ValueError,
            "betas must be finite",
        ),
        (
            lambda: landscape.plane(
                loss, _params(), _params(), _params(), [0.0], [0.0], chunk_size=10**9
            ),
            ValueError,
            r"chunk_size=1000000000 points would hold about .* over the .*-byte budget",
        ),
        (
            lambda: landscape.trajectory_plane(jax.tree.map(lambda a: a[None], _params())),
            ValueError,
            "path must hold at least 3 points",
        ),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
