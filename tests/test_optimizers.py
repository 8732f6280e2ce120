"""Optimisers against their reference equations written out in NumPy, step by step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import losses, optimizers, schedules

STEPS = 25
SHAPES = {"w": (3, 2), "b": (2,)}


def _grads():
    rng = np.random.default_rng(0)
    return [
        {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()} for _ in range(STEPS)
    ]


def _params():
    rng = np.random.default_rng(1)
    return {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}


GRADS = _grads()
LRS = {
    "constant": (0.1, lambda t: 0.1),
    "schedule": (schedules.exponential(0.1, 0.5, 5), lambda t: 0.1 * 0.5 ** (t / 5)),
}


def run_jaxnn(opt, params=None, grads=GRADS):
    """Applies opt to the fixed gradient sequence; returns the params after every step."""
    p = jax.tree.map(jnp.asarray, _params() if params is None else params)
    state = opt.init(p)
    update = jax.jit(opt.update)
    out = []
    for g in grads:
        u, state = update(g, state, p)
        p = optax.apply_updates(p, u)
        out.append(jax.tree.map(np.asarray, p))
    return out


# ---- NumPy references: each keeps its own state and returns the update for g ----


def ref_sgd(lr):
    return lambda t, g, w, key=None: -lr(t) * g


def ref_momentum(lr, mu):
    dw = {}

    def step(t, g, w, key=None):
        dw[key] = -lr(t) * g + mu * dw.get(key, 0.0)  # notes 001: dw <- -eta g + mu dw
        return dw[key]

    return step


def ref_nesterov(lr, mu):
    v = {}

    def step(t, g, w, key=None):
        v[key] = mu * v.get(key, 0.0) - lr(t) * g
        return mu * v[key] - lr(t) * g

    return step


def ref_adagrad(lr, eps):
    big_g = {}

    def step(t, g, w, key=None):
        big_g[key] = big_g.get(key, 0.0) + g**2
        return -lr(t) * g / (np.sqrt(big_g[key]) + eps)

    return step


def ref_rmsprop(lr, rho, eps):
    s = {}

    def step(t, g, w, key=None):
        s[key] = rho * s.get(key, 0.0) + (1 - rho) * g**2
        return -lr(t) * g / (np.sqrt(s[key]) + eps)

    return step


def ref_adam(lr, b1, b2, eps, decoupled_decay=0.0):
    m, v = {}, {}

    def step(t, g, w, key=None):
        m[key] = b1 * m.get(key, 0.0) + (1 - b1) * g
        v[key] = b2 * v.get(key, 0.0) + (1 - b2) * g**2
        m_hat, v_hat = m[key] / (1 - b1 ** (t + 1)), v[key] / (1 - b2 ** (t + 1))
        decay = decoupled_decay * w if key == "w" else 0.0
        return -lr(t) * (m_hat / (np.sqrt(v_hat) + eps) + decay)

    return step


def run_reference(step, params=None, grads=GRADS, coupled_decay=0.0):
    w = {k: v.astype(np.float64) for k, v in (_params() if params is None else params).items()}
    out = []
    for t, g in enumerate(grads):
        for k in SHAPES:
            gk = g[k] + (coupled_decay * w[k] if k == "w" else 0.0)
            w[k] = w[k] + step(t, gk, w[k], key=k)
        out.append(dict(w))
    return out


CASES = {
    "sgd": (lambda lr: optimizers.sgd(lr), lambda lr: ref_sgd(lr)),
    "momentum": (lambda lr: optimizers.momentum(lr, 0.9), lambda lr: ref_momentum(lr, 0.9)),
    "nesterov": (lambda lr: optimizers.nesterov(lr, 0.8), lambda lr: ref_nesterov(lr, 0.8)),
    "adagrad": (lambda lr: optimizers.adagrad(lr, 1e-3), lambda lr: ref_adagrad(lr, 1e-3)),
    "rmsprop": (
        lambda lr: optimizers.rmsprop(lr, 0.9, 1e-3),
        lambda lr: ref_rmsprop(lr, 0.9, 1e-3),
    ),
    "adam": (
        lambda lr: optimizers.adam(lr, 0.9, 0.99, 1e-3),
        lambda lr: ref_adam(lr, 0.9, 0.99, 1e-3),
    ),
}


def assert_trajectories_close(got, want, rtol=2e-5, atol=1e-6):
    assert len(got) == len(want) >= 20
    for t, (g, w) in enumerate(zip(got, want)):
        for k in SHAPES:
            np.testing.assert_allclose(g[k], w[k], rtol=rtol, atol=atol, err_msg=f"step {t}, {k}")


@pytest.mark.parametrize("lr_kind", sorted(LRS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_equations(name, lr_kind):
    make_opt, make_ref = CASES[name]
    lr, lr_ref = LRS[lr_kind]
    assert_trajectories_close(run_jaxnn(make_opt(lr)), run_reference(make_ref(lr_ref)))


def test_seed_momentum_and_optax_trace_agree_at_constant_lr_and_part_under_a_schedule():
    const = run_jaxnn(optax.sgd(0.1, momentum=0.9))
    assert_trajectories_close(run_jaxnn(optimizers.momentum(0.1, 0.9)), const)
    sched = schedules.step(0.1, 0.1, 10)
    seed_form = run_jaxnn(optimizers.momentum(sched, 0.9))
    optax_form = run_jaxnn(optax.sgd(sched, momentum=0.9))
    # optax scales the whole accumulated velocity by the new, smaller eta; the seed's form
    # keeps the velocity built with the old eta.
    assert_trajectories_close(
        seed_form, run_reference(ref_momentum(lambda t: 0.1 * 0.1 ** (t // 10), 0.9))
    )
    gap = np.max(np.abs(seed_form[-1]["w"] - optax_form[-1]["w"]))
    assert gap > 0.05
    np.testing.assert_allclose(seed_form[9]["w"], optax_form[9]["w"], rtol=1e-5)


def test_momentum_step_on_a_constant_gradient_tends_to_eta_over_one_minus_mu():
    g = {"w": np.full((3, 2), 2.0, np.float32), "b": np.ones(2, np.float32)}
    opt = optimizers.momentum(0.01, 0.9)
    state = opt.init(jax.tree.map(jnp.zeros_like, g))
    for _ in range(300):
        u, state = opt.update(g, state)
    np.testing.assert_allclose(u["w"], -0.01 / (1 - 0.9) * 2.0, rtol=1e-5)


def test_weight_decay_factor_on_weights_only():
    p = _params()
    zero = [{k: np.zeros(s, np.float32) for k, s in SHAPES.items()}]
    eta, lam, n = 0.1, 2.0, 10
    (after,) = run_jaxnn(optimizers.sgd(eta, weight_decay=lam / n), p, zero)
    np.testing.assert_allclose(after["w"], (1 - eta * lam / n) * p["w"], rtol=1e-6)
    np.testing.assert_array_equal(after["b"], p["b"])
    # the same as adding the L2 penalty lam/(2n) sum w^2 to the loss
    pj = jax.tree.map(jnp.asarray, p)
    g = jax.grad(lambda q: losses.l2_penalty(q, lam, n))(pj)
    plain = optax.apply_updates(
        pj, optimizers.sgd(eta).update(g, optimizers.sgd(eta).init(pj), pj)[0]
    )
    np.testing.assert_allclose(after["w"], plain["w"], rtol=1e-6)


def test_coupled_and_decoupled_weight_decay_for_adam():
    kappa = 0.05
    coupled = run_jaxnn(optimizers.adam(0.01, 0.9, 0.99, 1e-3, weight_decay=kappa))
    assert_trajectories_close(
        coupled, run_reference(ref_adam(lambda t: 0.01, 0.9, 0.99, 1e-3), coupled_decay=kappa)
    )
    decoupled = run_jaxnn(
        optimizers.adam(0.01, 0.9, 0.99, 1e-3, weight_decay=kappa, decoupled=True)
    )
    assert_trajectories_close(
        decoupled, run_reference(ref_adam(lambda t: 0.01, 0.9, 0.99, 1e-3, decoupled_decay=kappa))
    )
    adamw = run_jaxnn(
        optax.adamw(
            0.01, 0.9, 0.99, 1e-3, weight_decay=kappa, mask=lambda p: {"w": True, "b": False}
        )
    )
    assert_trajectories_close(decoupled, adamw)
    assert np.max(np.abs(coupled[-1]["w"] - decoupled[-1]["w"])) > 1e-3


def test_proximal_l1_gives_exact_zeros_and_the_subgradient_does_not():
    p = {
        "w": np.array([[0.05, -0.3], [0.5, -0.02], [0.001, 1.0]], np.float32),
        "b": np.array([0.01, -0.01], np.float32),
    }
    zero = [{k: np.zeros(s, np.float32) for k, s in SHAPES.items()}] * 20
    eta, kappa = 0.1, 0.1  # shrinks |w| by eta * kappa = 0.01 a step
    out = run_jaxnn(optimizers.sgd(eta, l1=kappa), p, zero)
    w = out[-1]["w"]
    assert np.count_nonzero(w == 0.0) == 3  # 0.05, -0.02, 0.001 hit exactly zero
    np.testing.assert_allclose(w[[0, 1, 2], [1, 0, 1]], [-0.1, 0.3, 0.8], rtol=1e-5)
    np.testing.assert_allclose(out[2]["w"][2, 1], 1.0 - 0.03, rtol=1e-6)
    np.testing.assert_array_equal(out[-1]["b"], p["b"])  # biases untouched
    # plain subgradient steps on lam/n sum |w| overshoot zero and oscillate around it
    pj = jax.tree.map(jnp.asarray, p)
    opt = optimizers.sgd(eta)
    state = opt.init(pj)
    for _ in range(30):
        g = jax.grad(lambda q: losses.l1_penalty(q, kappa, 1))(pj)
        u, state = opt.update(g, state, pj)
        pj = optax.apply_updates(pj, u)
    assert np.count_nonzero(np.asarray(pj["w"]) == 0.0) == 0


def test_clipping():
    g = {"w": np.full((3, 2), 3.0, np.float32), "b": np.full(2, 4.0, np.float32)}
    norm = np.sqrt(6 * 9 + 2 * 16)
    opt = optimizers.sgd(1.0, clip_norm=1.0)
    u, _ = opt.update(g, opt.init(g))
    np.testing.assert_allclose(u["w"], -3.0 / norm, rtol=1e-6)
    assert float(optax.tree.norm(u)) == pytest.approx(1.0, rel=1e-6)
    opt = optimizers.sgd(1.0, clip_value=3.5)
    u, _ = opt.update(g, opt.init(g))
    np.testing.assert_allclose(u["w"], -3.0)
    np.testing.assert_allclose(u["b"], -3.5)


def test_clipping_bounds_may_be_traced_and_share_the_update():
    g = {"w": np.full((3, 2), 3.0, np.float32), "b": np.full(2, 4.0, np.float32)}
    norm = np.sqrt(6 * 9 + 2 * 16)

    def step(c):
        opt = optimizers.sgd(1.0, clip_norm=c)
        return opt.update(g, opt.init(g))[0]["w"]

    bounds = jnp.array([1.0, 2.0, 100.0])  # the last one clips nothing
    got = jax.jit(jax.vmap(step))(bounds)
    expected = -3.0 * np.minimum(1.0, np.asarray(bounds) / norm)
    np.testing.assert_allclose(got[:, 0, 0], expected, rtol=1e-6)
    # bounds that differ only in value share one update function (one compiled fit)
    assert optimizers.sgd(0.1, clip_norm=1.0).update is optimizers.sgd(0.3, clip_norm=5.0).update
    assert optimizers.sgd(0.1, clip_norm=1.0).update is not optimizers.sgd(0.1).update


def test_learning_rate_is_readable_from_the_state():
    opt = optimizers.adam(schedules.step(1.0, 0.5, 2))
    p = {"w": jnp.ones((2, 2))}
    state = opt.init(p)
    seen = []
    for _ in range(5):
        _, state = opt.update(p, state, p)
        seen.append(float(optimizers.learning_rate(state)))
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert np.isnan(optimizers.learning_rate(optax.sgd(0.1).init(p)))


# ---- conformance: every optimiser, jitted, on nested pytrees, reaches known minima ----


def rosenbrock(p):
    x, y = p["xy"][0], p["xy"][1]["y"]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def bowl(p):
    return 0.5 * (p["xy"][0] ** 2 + 10 * p["xy"][1]["y"] ** 2)


def descend(opt, f, steps):
    p = {"xy": [jnp.array(-1.0), {"y": jnp.array(1.0)}]}

    def step(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(f)(p), s, p)
        return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=steps)
    return jnp.stack([p["xy"][0], p["xy"][1]["y"]])


CONFORMANCE = {
    "sgd": {"lr": 2e-3},
    "momentum": {"lr": 1e-3, "mu": 0.9},
    "nesterov": {"lr": 1e-3, "mu": 0.9},
    "adagrad": {"lr": 0.5},
    "rmsprop": {"lr": 1e-3},
    "adam": {"lr": 1e-2},
}


@pytest.mark.parametrize("name", optimizers.NAMES)
def test_conformance(name):
    assert set(CONFORMANCE) == set(optimizers.NAMES)
    opt = optimizers.get(name, **CONFORMANCE[name])
    assert isinstance(opt, optax.GradientTransformation)
    rosen_end, bowl_end = jax.jit(
        lambda: (descend(opt, rosenbrock, 20_000), descend(opt, bowl, 5_000))
    )()
    # minima: (1, 1) and (0, 0); fixed-step adaptive methods hover within ~1e-3 of them
    assert bool(jnp.all(jnp.isfinite(rosen_end))) and bool(jnp.all(jnp.isfinite(bowl_end)))
    np.testing.assert_allclose(rosen_end, [1.0, 1.0], atol=2e-3)
    np.testing.assert_allclose(bowl_end, [0.0, 0.0], atol=2e-3)


def test_hyperparameters_may_be_traced():
    def final(lr):
        return descend(optimizers.momentum(lr, 0.5), bowl, 50)

    ends = jax.jit(jax.vmap(final))(jnp.array([0.01, 0.1]))
    np.testing.assert_allclose(ends[1], final(0.1), rtol=1e-5)
    assert float(jnp.abs(ends[0]).max()) > float(jnp.abs(ends[1]).max())


def test_switch_runs_the_chosen_optimiser_and_vmaps_over_the_choice():
    names = ["sgd", "momentum", "adam"]

    def final(index, lr):
        choices = [optimizers.get(n, lr) for n in names]
        return descend(optimizers.switch(index, choices), bowl, 30)

    index, lrs = jnp.array([0, 1, 2, 1]), jnp.array([0.1, 0.1, 0.05, 0.02])
    ends = jax.jit(jax.vmap(final))(index, lrs)
    for k in range(4):
        alone = descend(optimizers.get(names[int(index[k])], float(lrs[k])), bowl, 30)
        np.testing.assert_allclose(ends[k], alone, rtol=1e-5, atol=1e-7)
    # the chosen optimiser's learning rate, read through the switch
    p = {"w": jnp.ones(2)}
    opt = optimizers.switch(1, [optimizers.sgd(0.3), optimizers.adam(schedules.step(1.0, 0.5, 1))])
    state = opt.init(p)
    _, state = opt.update(p, state, p)
    assert float(optimizers.learning_rate(state)) == 1.0
    _, state = opt.update(p, state, p)
    assert float(optimizers.learning_rate(state)) == 0.5


def test_switch_rejects_bad_choices():
    with pytest.raises(ValueError, match=r"index must be an int in \[0, 2\)"):
        optimizers.switch(2, [optimizers.sgd(0.1), optimizers.adam(0.1)])
    with pytest.raises(ValueError, match="index"):
        optimizers.switch(0.5, [optimizers.sgd(0.1), optimizers.adam(0.1)])
    with pytest.raises(TypeError, match="GradientTransformations"):
        optimizers.switch(0, ["sgd"])
