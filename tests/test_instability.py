"""train.loss_spikes: the rule on constructed histories, and a real catapult."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import optimizers, spectral, train


def test_spikes_follow_the_stated_rule():
    loss = np.array([1.0, 0.5, 0.4, 0.9, 2.0, 0.7, 0.3, 0.2, 0.5, 0.3, np.nan, np.nan])
    spikes = train.loss_spikes(loss, factor=2.0)
    # 0.9 > 2·0.4: a spike from step 3, peak at 4 (2.0 = 5× the running minimum 0.4),
    # back at step 5 (0.7 ≤ 0.8); 0.5 > 2·0.2 at step 8, back at 9; NaN from 10 on, unended
    assert [(s.start, s.peak, s.end) for s in spikes] == [(3, 4, 5), (8, 8, 9), (10, 10, None)]
    assert spikes[0].height == pytest.approx(2.0 / 0.4)
    assert not any(s.catapult for s in spikes)  # no sharpness given
    assert [s.start for s in train.loss_spikes(loss, factor=2.0, min_length=2)] == [3, 10]
    assert train.loss_spikes(np.linspace(1.0, 0.1, 50)) == []
    # sharpness as (steps, values): measured every 2 steps
    sharp = (np.arange(0, 12, 2), np.array([5.0, 5.0, 5.0, 3.0, 3.0, 3.0]))
    first = train.loss_spikes(loss, factor=2.0, sharpness=sharp)[0]
    assert (first.sharpness_before, first.sharpness_after, first.catapult) == (5.0, 3.0, True)


def test_a_catapult_on_a_two_layer_linear_model():
    """f = uᵀv/√m fitted to 1 (Lewkowycz et al. 2020): with η = 3/λ₀ (in 2/λ₀ < η < 4/λ₀)
    the loss spikes and comes back with λmax below 2/η; with η < 2/λ₀ it never spikes.
    Five seeds."""
    m = 100

    def loss(p):
        return 0.5 * (jnp.dot(p["u"], p["v"]) / jnp.sqrt(m) - 1.0) ** 2

    objective = lambda p, s, batch, k: (loss(p), s)
    with jax.enable_x64(True):
        for seed in range(5):
            k1, k2 = jax.random.split(jax.random.key(seed))
            p = {"u": jax.random.normal(k1, (m,)), "v": jax.random.normal(k2, (m,))}
            lam0 = float(spectral.power_iteration(loss, p, key=k1, tol=1e-12).eigenvalue)
            for c, expect in ((1.5, False), (3.0, True)):
                hook = spectral.sharpness_hook(
                    objective, None, every=1, iters=200, tol=1e-12, key=k1
                )
                run = train.fit(
                    objective,
                    p,
                    optimizers.sgd(c / lam0),
                    None,
                    key=k1,
                    steps=150,
                    blowup=1e12,  # the loss starts small: a spike is many times it
                    hooks={"sharpness": hook},
                )
                spikes = train.loss_spikes(
                    run.history["loss"], factor=2.0, sharpness=run.history["hooks"]["sharpness"]
                )
                assert bool(spikes) is expect and not bool(run.diverged)
                if expect:
                    assert spikes[0].catapult and spikes[0].end is not None
                    assert spikes[0].sharpness_after < 2 / (c / lam0) < spikes[0].sharpness_before


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"loss": np.ones((2, 2))}, ValueError, "loss must be a 1-D array"),
        ({"loss": np.ones(3), "factor": 1.0}, ValueError, "factor must satisfy"),
        ({"loss": np.ones(3), "sharpness": 3.0}, TypeError, "sharpness must be a HookHistory"),
        (
            {"loss": np.ones(3), "sharpness": (np.arange(3), np.ones(2))},
            ValueError,
            "sharpness steps and values must be 1-D of one length",
        ),
    ],
)
def test_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        train.loss_spikes(**kwargs)
