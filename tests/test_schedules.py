"""Schedules against their formulas at chosen steps; bad arguments."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import schedules

STEPS = np.array([0, 1, 2, 5, 9, 10, 11, 37, 100, 1000])


def sgdr(tau, eta0, period, t_mult, eta_min):
    t_i, start = period, 0
    while tau >= start + t_i:
        start += t_i
        t_i *= t_mult
    return eta_min + 0.5 * (eta0 - eta_min) * (1 + math.cos(math.pi * (tau - start) / t_i))


def triangle(tau, lo, hi, h):
    phase = tau % (2 * h)
    return lo + (hi - lo) * (phase / h if phase <= h else 2 - phase / h)


CASES = {
    "constant": (schedules.constant(0.3), lambda t: 0.3),
    "linear": (
        schedules.linear(0.5, 0.1, 10),
        lambda t: (1 - min(t, 10) / 10) * 0.5 + min(t, 10) / 10 * 0.1,
    ),
    "power_law": (schedules.power_law(0.5, 4.0, -0.75), lambda t: 0.5 * (1 + t / 4) ** -0.75),
    "exponential": (schedules.exponential(0.5, 0.1, 20.0), lambda t: 0.5 * 0.1 ** (t / 20)),
    "step": (schedules.step(0.5, 0.3, 10), lambda t: 0.5 * 0.3 ** (t // 10)),
    "cosine_restarts": (schedules.cosine_restarts(0.5, 10), lambda t: sgdr(t, 0.5, 10, 1, 0.0)),
    "cosine_restarts_growing": (
        schedules.cosine_restarts(0.5, 3, t_mult=2.0, lr_min=0.01),
        lambda t: sgdr(t, 0.5, 3, 2.0, 0.01),
    ),
    "cyclic": (schedules.cyclic(0.01, 0.1, 5), lambda t: triangle(t, 0.01, 0.1, 5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_formula(name):
    schedule, formula = CASES[name]
    want = [formula(int(t)) for t in STEPS]
    np.testing.assert_allclose([float(schedule(int(t))) for t in STEPS], want, rtol=1e-5, atol=1e-7)
    # traced step counts, inside jit and vmap
    np.testing.assert_allclose(
        jax.jit(jax.vmap(schedule))(jnp.asarray(STEPS)), want, rtol=1e-5, atol=1e-7
    )


def test_sgdr_restarts_at_cycle_boundaries():
    s = schedules.cosine_restarts(1.0, 3, t_mult=2.0)
    # cycles start at 0, 3, 9, 21, 45 with lengths 3, 6, 12, 24
    for start in [0, 3, 9, 21, 45]:
        assert float(s(start)) == pytest.approx(1.0)
    assert float(s(8)) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 6)), rel=1e-5)


def test_cyclic_keeps_its_phase_at_late_steps():
    # float32 holds 10^7 + 3 exactly but not (10^7 + 3)/5: the phase must come first
    late = np.array([10_000_000, 10_000_003, 10_000_005, 20_000_007])
    want = [triangle(int(t), 0.01, 0.1, 5) for t in late]
    s = schedules.cyclic(0.01, 0.1, 5)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(s))(jnp.asarray(late, jnp.int32)), want, rtol=1e-6, atol=1e-8
    )


def test_get_by_name():
    np.testing.assert_allclose(schedules.get("step", lr0=1.0, factor=0.5, every=2)(4), 0.25)
    with pytest.raises(ValueError, match=r"unknown schedule 'warmup'.*'cyclic'"):
        schedules.get("warmup")


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: schedules.constant(-0.1), r"lr must satisfy 0.0 <= lr, got -0.1"),
        (lambda: schedules.linear(0.1, -0.1, 10), r"lr_k must satisfy"),
        (lambda: schedules.linear(0.1, 0.01, 0), r"k must be an int >= 1, got 0"),
        (lambda: schedules.power_law(0.1, 0.0, -1.0), r"s must satisfy 0.0 < s, got 0.0"),
        (lambda: schedules.exponential(0.1, 0.0, 10), r"c must satisfy 0.0 < c, got 0.0"),
        (lambda: schedules.step(0.1, 0.5, 0), r"every must be an int >= 1, got 0"),
        (lambda: schedules.cosine_restarts(0.1, 0), r"period must be an int >= 1, got 0"),
        (lambda: schedules.cosine_restarts(0.1, 5, t_mult=0.5), r"t_mult must satisfy 1.0 <="),
        (lambda: schedules.cosine_restarts(0.1, 5, lr_min=0.2), r"lr_min must be at most"),
        (lambda: schedules.cyclic(0.1, 0.01, 5), r"lr_min must be at most lr_max=0.01"),
        (lambda: schedules.cyclic(0.01, 0.1, 0), r"half_period must be an int >= 1, got 0"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_the_keywords_of_jaxnn_0_1_still_work():
    np.testing.assert_allclose(
        schedules.linear(eta0=1.0, eta_k=0.1, k=10)(5), schedules.linear(lr0=1.0, lr_k=0.1, k=10)(5)
    )
    np.testing.assert_allclose(schedules.constant(eta=0.3)(7), 0.3)
    with pytest.raises(TypeError, match="got both eta0= and lr0="):
        schedules.step(eta0=1.0, lr0=1.0, factor=0.5, every=2)
