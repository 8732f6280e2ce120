"""Notes 001: near a minimum, gradient descent shrinks the distance along each Hessian
eigendirection uᵢ by the factor 1 − ηλᵢ per step.

Quadratic bowls with condition numbers κ = 10, 100, 1000 (eigenvalues log-spaced in
[1, κ], a random rotation) and a tanh MLP taken to a strict minimum: the exact Hessian's
spectrum, then descent from a small perturbation of the minimum at η = 1/λmax, the best
fixed step η* = 2/(λmin + λmax), 1.9/λmax and 2.05/λmax, each direction's fitted rate
against 1 − ηλ (:func:`jaxnn.hessian.check_rates`, float64). Then the steps gradient
descent at η* and at the notes' 1/λmax needs to reduce E by 10¹⁰, against κ and against
the closed form Eₜ = ½ Σᵢ λᵢαᵢ(0)²(1 − ηλᵢ)^{2t}; the slowest direction's rate
(κ − 1)/(κ + 1) ≈ 1 − 2/κ bounds it by ln(10⁻¹⁰)/(2 ln((κ − 1)/(κ + 1))) ≈ 5.8 κ steps.
The MLP check runs at a minimum reached from each of 5 inits.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import (
    Claim,
    Outcome,
    listed,
    notes,
    save,
    tally,
    unconfirmed,
    vote,
)
from experiments.report import (
    Figure as Fig,
)
from jaxnn import datasets, hessian, losses, optimizers, plotting, train

TITLE = "convergence rates 1 − ηλ along Hessian eigendirections, and steps against κ"
NOTES = "001"
COST = 6  # seconds of --quick on 2 cores: parallel runs start the costliest first
KAPPAS = (10.0, 100.0, 1000.0)
REDUCTION = 1e-10  # E_t / E_0 the step count is measured at
SEEDS = 5
MLP_TOLERANCE = 1e-3  # the MLP's rate gap allowance: model error, not rounding


def _rates(loss_fn, w_star, spec, steps) -> dict:
    lam_max = float(spec.lambda_max)
    lrs = {
        "1/λmax": 1 / lam_max,
        "η*": float(spec.optimal_lr),
        "1.9/λmax": 1.9 / lam_max,
        "2.05/λmax": 2.05 / lam_max,
    }
    return {
        name: hessian.check_rates(loss_fn, w_star, lr, steps, spec=spec, key=jax.random.key(0))
        for name, lr in lrs.items()
    }


def _bowl_loss(w, state, batch, key):
    """E(w) = ½(w − w*)ᵀA(w − w*) with (A, w*) the one row of ``batch``: every bowl's
    descent is the same compiled program."""
    a, w_star = batch
    e = w - w_star[0]
    return 0.5 * e @ (a[0] @ e), state


def _steps_to_reduce(bowl, lr: float, limit: int) -> int:
    """Steps of gradient descent at ``lr`` from w* + 1 until E ≤ REDUCTION · E₀ (−1: not
    within ``limit``)."""
    w0 = bowl.minimizer + 1.0
    result = train.fit(
        _bowl_loss,
        w0,
        optimizers.sgd(lr),
        (bowl.matrix[None], bowl.minimizer[None]),
        key=jax.random.key(0),
        steps=limit,
    )
    loss = np.asarray(result.history["loss"])
    below = np.flatnonzero(loss <= REDUCTION * loss[0])
    return int(below[0]) if below.size else -1


def _exact_steps(spec, start_offset: np.ndarray, lr: float, limit: int) -> int:
    """The same count in closed form: Eₜ = ½ Σᵢ λᵢ αᵢ(0)² (1 − ηλᵢ)^{2t} with αᵢ(0) =
    uᵢᵀ(w₀ − w*); the first t with Eₜ ≤ REDUCTION · E₀ (−1: not within ``limit``)."""
    lam = np.asarray(spec.eigenvalues)
    alpha = np.asarray(spec.eigenvectors).T @ start_offset
    t = np.arange(limit)[:, None]
    energy = np.sum(lam * alpha**2 * (1 - lr * lam) ** (2.0 * t), axis=1)
    below = np.flatnonzero(energy <= REDUCTION * energy[0])
    return int(below[0]) if below.size else -1


def _predicted_steps(kappa: float) -> float:
    """ln(REDUCTION) / (2 ln((κ − 1)/(κ + 1))): the slowest direction's rate at η*."""
    return math.log(REDUCTION) / (2 * math.log((kappa - 1) / (kappa + 1)))


def run(out: Path, quick: bool = False) -> Outcome:
    with jax.enable_x64(True):
        return _run(out, quick)


def _run(out: Path, quick: bool) -> Outcome:
    numbers, gaps, threshold_ok, top_zero, slowest_gap = {}, [], [], [], []
    steps = {"η*": [], "1/λmax": []}
    exact = {"η*": [], "1/λmax": []}
    # one run length for every bowl and η: enough for κ = 1000 at 1/λmax, rate 1 − 1/κ
    limit = int(1.2 * math.log(REDUCTION) / (2 * math.log(1 - 1 / max(KAPPAS))))
    for i, kappa in enumerate(KAPPAS):
        bowl = datasets.quadratic_bowl(np.geomspace(1.0, kappa, 10), key=jax.random.key(i))
        spec = hessian.spectrum(bowl.loss, bowl.minimizer)
        checks = _rates(bowl.loss, bowl.minimizer, spec, 40)
        gaps.append(max(c.max_gap for c in checks.values()))
        stable = not checks["1.9/λmax"].diverging.any()
        top_only = (
            bool(checks["2.05/λmax"].diverging[-1])
            and int(checks["2.05/λmax"].diverging.sum()) == 1
        )
        threshold_ok.append(stable and top_only)
        at_top = checks["1/λmax"]
        # the λmax direction is at 0 after one step (its rate is NaN: nothing left to fit)
        top_zero.append(abs(float(at_top.alpha[1, -1])) <= float(at_top.floor[1, 0]))
        slowest_gap.append(abs(float(at_top.observed[0]) - (1 - 1 / kappa)))
        for name, lr in (("η*", float(spec.optimal_lr)), ("1/λmax", 1 / float(spec.lambda_max))):
            steps[name].append(_steps_to_reduce(bowl, lr, limit))
            exact[name].append(_exact_steps(spec, np.ones(10), lr, limit))
        numbers[f"κ = {kappa:g}: largest |predicted − observed| rate"] = gaps[-1]
        numbers[f"κ = {kappa:g}: steps to reduce E by 10¹⁰ at η*, at 1/λmax (measured)"] = [
            steps["η*"][-1],
            steps["1/λmax"][-1],
        ]
        numbers[f"κ = {kappa:g}: the same in closed form"] = [exact["η*"][-1], exact["1/λmax"][-1]]
        numbers[f"κ = {kappa:g}: bound from the slowest direction at η*"] = round(
            _predicted_steps(kappa), 1
        )
    hidden = (4,) if quick else (8, 8)
    minima = [_mlp(hidden, quick, seed) for seed in range(SEEDS)]
    mlp_gaps = np.array([m[0] for m in minima])
    mlp_ok = (mlp_gaps < MLP_TOLERANCE) & np.array([m[2].kind == "minimum" for m in minima])
    numbers["MLP minima (one per seed)"] = [m[3] for m in minima]
    numbers["MLP: largest rate gap at η*, per seed"] = mlp_gaps.tolist()
    counted = all(
        a == b or (a > 0 and abs(a - b) <= 1)
        for name in steps
        for a, b in zip(steps[name], exact[name])
    )
    grows = all(a < b for a, b in zip(steps["η*"], steps["η*"][1:]))
    slower = [a > b > 0 for a, b in zip(steps["1/λmax"], steps["η*"])]
    holds_mlp, rule_mlp = vote(mlp_ok)
    closed = "deterministic: exact quadratics, float64, one computation per bowl"
    claims = {
        "rates_match": Claim(
            "each eigendirection's observed rate equals 1 − ηλ: bowls to 10⁻⁶ (float64 "
            f"rounding), MLPs at a strict minimum to {MLP_TOLERANCE:g} (the quadratic model "
            "leaves out cubic terms)",
            notes(
                "001",
                "these distances evolve independently and at each step it is "
                "reduced by a quantity proportional to …",
            ),
            f"bowls: {closed}; MLPs: {rule_mlp} (a minimum from each init)",
            bool(max(gaps) < 1e-6 and holds_mlp),
            f"largest gaps: bowls {max(gaps):.2g}, MLPs {mlp_gaps.max():.2g} "
            f"({tally(mlp_ok)} within {MLP_TOLERANCE:g} at a strict minimum)",
            SEEDS,
        ),
        "threshold_2_over_lambda_max": Claim(
            "no direction diverges at 1.9/λmax; at 2.05/λmax the top one (only) does",
            notes("001", "to ensure convergence we must set …"),
            closed,
            bool(all(threshold_ok)),
            f"held for {sum(threshold_ok)} of {len(KAPPAS)} bowls",
            1,
        ),
        "one_step_along_top": Claim(
            "at η = 1/λmax the λmax direction reaches the minimum in one step (rate 0), and "
            "the slowest direction's rate is 1 − λmin/λmax",
            notes("001", "In this case the rate of convergence in the direction of …"),
            closed,
            bool(all(top_zero) and max(slowest_gap) < 1e-6),
            f"top direction at rounding level after one step in {sum(top_zero)} of "
            f"{len(KAPPAS)} bowls; slowest rate off 1 − 1/κ by at most {max(slowest_gap):.2g}",
            1,
        ),
        "fastest_at_1_over_lambda_max": Claim(
            "gradient descent converges fastest at η = 1/λmax",
            notes("001", "The fastest convergence is obtained when …"),
            closed,
            not any(slower),
            "steps to reduce E by 10¹⁰ at 1/λmax: "
            + listed(steps["1/λmax"], "g")
            + "; at η* = 2/(λmin + λmax): "
            + listed(steps["η*"], "g")
            + f" for κ = {listed(KAPPAS, 'g')}",
            1,
        ),
        "steps_grow_with_kappa": Claim(
            "the steps gradient descent needs at η* grow with κ, and equal the closed form "
            "Eₜ = ½ Σ λᵢαᵢ(0)²(1 − ηλᵢ)²ᵗ (±1 step for rounding)",
            notes(
                "001",
                "The larger the condition number, the slower will be the "
                "convergence of gradient descent.",
            ),
            closed,
            bool(counted and grows and all(s > 0 for s in steps["η*"])),
            f"steps at η* {listed(steps['η*'], 'g')} for κ = {listed(KAPPAS, 'g')}; closed form "
            f"{listed(exact['η*'], 'g')} (at 1/λmax {listed(steps['1/λmax'], 'g')} against "
            f"{listed(exact['1/λmax'], 'g')}); bound from the slowest direction "
            f"{listed([round(_predicted_steps(k)) for k in KAPPAS], 'g')}",
            1,
        ),
    }
    why = {
        "fastest_at_1_over_lambda_max": (
            "The notes' η = 1/λmax is fastest along the λmax direction only (rate 0 there), "
            "while the slowest direction contracts by 1 − 1/κ; the best fixed step is η* = "
            "2/(λmin + λmax), which gives every direction a rate of at most (κ − 1)/(κ + 1) ≈ "
            "1 − 2/κ and so needs about half the steps (erratum)."
        )
    }
    _, mlp_check, _, _ = minima[0]
    save(
        plotting.rate_check(
            mlp_check.eigenvalues,
            mlp_check.predicted,
            mlp_check.observed,
            title=f"tanh MLP 2-{'-'.join(map(str, hidden))}-2 at a minimum (seed 0), η* = "
            f"{mlp_check.lr:.4g}: observed rates against 1 − ηλ",
        ),
        out / "mlp_rates.png",
    )
    save(_steps_figure(steps, exact), out / "steps_vs_kappa.png")
    return Outcome(
        TITLE,
        NOTES,
        "Quadratic bowls (where the claims are exact) and tanh MLPs at strict minima "
        f"(where they hold to the accuracy of the quadratic model; {SEEDS} inits), in "
        "float64. The stability threshold is 2/λmax; the best fixed step η* gives every "
        "direction a rate of at most (κ − 1)/(κ + 1), so ill-conditioned problems need "
        "about κ times more steps." + unconfirmed(claims, why),
        numbers,
        claims,
        [
            Fig(
                "mlp_rates.png",
                "Left: the predicted rate 1 − ηλ (line) and the fitted "
                "observed rate (dots) for every Hessian eigendirection of the MLP at its "
                "minimum, at η*. Right: their gap, of the order of the cubic terms of the loss "
                "that the quadratic model leaves out (float64 rounding is far smaller).",
            ),
            Fig(
                "steps_vs_kappa.png",
                "Steps for gradient descent to reduce the loss of a bowl "
                "by 10¹⁰, against the condition number, at η* and at the notes' 1/λmax: "
                "measured (dots) and in closed form (lines).",
            ),
        ],
    )


def _mlp(hidden, quick, seed):
    """(largest rate gap at η*, the rate check, the spectrum, a report) at a strict minimum
    of a regularised tanh MLP on moons, found from init ``seed``."""
    loss_fn = _mlp_loss(quick)
    params = jaxnn.init_mlp(jax.random.key(6 + seed), (2, *hidden, 2), dtype=jnp.float64)
    found = hessian.find_minimum(loss_fn, params, steps=500 if quick else 2000)
    check = hessian.check_rates(
        loss_fn,
        found.params,
        float(found.spectrum.optimal_lr),
        40,
        spec=found.spectrum,
        key=jax.random.key(0),
    )
    return check.max_gap, check, found.spectrum, found.report


@functools.lru_cache(maxsize=2)
def _mlp_loss(quick: bool):
    """The regularised loss on moons, one function object per pass (its programs compile
    once for every init)."""
    moons = datasets.moons(100 if quick else 200, key=jax.random.key(5))
    x, y = jnp.asarray(moons.x, jnp.float64), moons.y

    def loss_fn(p):
        data = losses.softmax_cross_entropy(jaxnn.forward(p, x, activation="tanh"), y)
        return data + 0.5e-2 * sum(jnp.sum(a**2) for a in jax.tree.leaves(p))

    return loss_fn


def _steps_figure(steps, exact) -> Figure:
    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.subplots()
    for (name, measured), color in zip(steps.items(), ("tab:blue", "tab:orange")):
        ax.plot(KAPPAS, exact[name], "-", color=color, label=f"closed form, η = {name}")
        ax.plot(KAPPAS, measured, "o", color=color, label=f"measured, η = {name}")
    ax.plot(
        KAPPAS,
        [_predicted_steps(k) for k in KAPPAS],
        ":",
        color="0.4",
        label=r"bound $\ln 10^{-10} / (2 \ln\frac{\kappa-1}{\kappa+1})$ at η*",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="condition number κ (log scale)",
        ylabel="steps to reduce E by 10¹⁰ (log scale)",
        title="Steps against condition number (notes 001)",
    )
    ax.legend(fontsize=8)
    return fig
