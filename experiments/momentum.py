"""Notes 001, 002: momentum in an elongated valley.

The valley is E(w) = ½(λ₁w₁² + λ₂w₂²) with λ = (1, 50) (κ = 50). Gradient descent at
η = 1.95/λmax, a step where it zig-zags as in the notes' figure, bounces across the valley
(rate 1 − ηλmax = −0.95 along w₂) while it crawls along the floor (rate 1 − 1.95/κ =
0.961 a step); heavy-ball momentum, Δw ← −η∇E + μΔw (notes 001's form; erratum, notes 002:
descent *subtracts* the velocity), turns the steady part of the gradient into speed and
cancels the oscillating part:

* on a constant slope, Δw → −η∇E/(1 − μ): an effective rate η/(1 − μ);
* near a minimum, each eigendirection follows αₜ₊₁ = (1 + μ − ηλ)αₜ − μαₜ₋₁, whose rate is
  the spectral radius of that recurrence (:func:`jaxnn.hessian.predicted_rates_momentum`);
* Polyak's η = 4/(√λmax + √λmin)², μ = ((√κ − 1)/(√κ + 1))² gives every direction the
  rate √μ = (√κ − 1)/(√κ + 1) ≈ 1 − 2/√κ, against ≈ 1 − 2/κ at the best plain step.

The trajectories are jaxnn's own optimisers run by :func:`jaxnn.fit`; rates are fitted
by :func:`jaxnn.hessian.check_rates` (float64).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments.report import OWN, Claim, Outcome, notes, save, unconfirmed
from experiments.report import Figure as Fig
from jaxnn import datasets, hessian, optimizers, train

TITLE = "momentum: effective rate η/(1 − μ), predicted rates, Polyak's optimum"
NOTES = "001, 002"
COST = 2  # seconds of --quick on 2 cores: parallel runs start the costliest first
LAMBDAS = (1.0, 50.0)
START = (-9.0, 1.5)
TOLERANCE = 1e-6  # ‖w − w*‖ / ‖w₀ − w*‖ the step count is measured at
ZIGZAG = 1.95  # η·λmax of the runs compared: plain descent's steep rate is −0.95
SHOWN = 40  # steps drawn and measured across the valley


#: records the params before every step
_RECORD = train.Hook(lambda p: (), lambda s, p, st, t: (s, p), 1)


def _iterates(objective, start, lr, mu, steps) -> np.ndarray:
    """w₀ … w_steps of ``momentum(lr, mu)`` (μ = 0: plain descent), shape (steps + 1, 2).
    Runs of the same ``objective`` and length share one compiled program."""
    result = train.fit(
        objective,
        jnp.asarray(start),
        optimizers.momentum(lr, mu),
        None,
        key=jax.random.key(0),
        steps=steps,
        hooks={"w": _RECORD},
    )
    return np.concatenate(
        [np.asarray(result.history["hooks"]["w"].record), np.asarray(result.params)[None]]
    )


_SLOPE = np.array([0.3, -1.2])


def _on_slope(w, state, batch, key):
    """E(w) = g·w: a constant gradient g."""
    return jnp.dot(jnp.asarray(_SLOPE, w.dtype), w), state


def _constant_slope(lr, mu, steps=400) -> float:
    """The last step Δw over −η g on E(w) = g·w, after ``steps`` steps: tends to 1/(1 − μ)."""
    path = _iterates(_on_slope, np.zeros(2), lr, mu, steps)
    return float(np.mean((path[-1] - path[-2]) / (-lr * _SLOPE)))


def _short(name: str) -> str:
    return name.split(",")[0].split(":")[0]


def _steps_to(distance: np.ndarray) -> int:
    hit = np.flatnonzero(distance <= TOLERANCE * distance[0])
    return int(hit[0]) if hit.size else -1


def run(out: Path, quick: bool = False) -> Outcome:
    with jax.enable_x64(True):
        return _run(out, quick)


def _across(path: np.ndarray) -> float:
    """Σₜ |Δw₂|: the distance a path travels across the valley (the steep coordinate)."""
    return float(np.sum(np.abs(np.diff(path[:, 1]))))


def _run(out: Path, quick: bool) -> Outcome:
    bowl = datasets.quadratic_bowl(list(LAMBDAS))
    lam_min, lam_max = LAMBDAS
    kappa = lam_max / lam_min
    polyak = hessian.polyak_momentum(lam_min, lam_max)
    lr = ZIGZAG / lam_max
    plain, half, heavy = (
        f"gradient descent, η = {ZIGZAG:g}/λmax",
        f"momentum μ = 0.5, η = {ZIGZAG:g}/λmax",
        f"momentum μ = 0.9, η = {ZIGZAG:g}/λmax",
    )
    methods = {
        plain: (lr, 0.0),
        half: (lr, 0.5),
        heavy: (lr, 0.9),
        f"Polyak: η = {polyak.lr:.3g}, μ = {polyak.mu:.3g}": (polyak.lr, polyak.mu),
    }
    steps = 1000
    paths = {name: _iterates(bowl.loss, START, *hp, steps) for name, hp in methods.items()}
    distance = {name: np.linalg.norm(p, axis=1) for name, p in paths.items()}
    needed = {name: _steps_to(d) for name, d in distance.items()}
    across = {name: _across(p[: SHOWN + 1]) for name, p in paths.items()}
    spec = hessian.spectrum(bowl.loss, bowl.minimizer)
    checks = {
        name: hessian.check_rates(
            bowl.loss, bowl.minimizer, hp[0], 60, mu=hp[1], spec=spec, key=jax.random.key(0)
        )
        for name, hp in methods.items()
    }
    rate_gap = max(c.max_gap for c in checks.values())
    mus = (0.5, 0.9) if quick else (0.0, 0.5, 0.9, 0.99)
    slope = {mu: _constant_slope(0.01, mu, 400 if mu < 0.95 else 4000) for mu in mus}
    slope_gap = max(abs(v * (1 - mu) - 1) for mu, v in slope.items())
    polyak_name = list(methods)[-1]
    polyak_rate = float(np.max(checks[polyak_name].observed))
    steep = {name: float(check.predicted[-1]) for name, check in checks.items()}
    flips = np.mean(np.diff(np.sign(paths[plain][: SHOWN + 1, 1])) != 0)
    numbers = {
        "λ": list(LAMBDAS),
        "κ": kappa,
        "start": list(START),
        "Polyak η, μ, rate √μ": [polyak.lr, polyak.mu, polyak.rate],
        "largest |predicted − observed| rate (all four runs)": rate_gap,
        "largest |(Δw/(−ηg))·(1 − μ) − 1| on a constant slope": slope_gap,
        f"gradient descent: share of the first {SHOWN} steps that cross the floor": float(flips),
    }
    for name, check in checks.items():
        numbers[f"{name}: predicted rates (λ = 1, 50)"] = check.predicted.tolist()
        numbers[f"{name}: steps to shrink ‖w − w*‖ by 10⁶"] = needed[name]
        numbers[f"{name}: distance across the valley in {SHOWN} steps, Σ|Δw₂|"] = across[name]
    for mu, v in slope.items():
        numbers[f"constant slope, μ = {mu:g}: Δw / (−ηg) (1/(1 − μ) = {1 / (1 - mu):.4g})"] = v
    fastest = min((n for n in needed if needed[n] > 0), key=needed.get, default=None)
    closed = "deterministic: an exact quadratic, float64, one run per setting"
    smooths = flips == 1.0 and across[half] < across[plain] and 0 < needed[half] < needed[plain]
    claims = {
        "effective_rate": Claim(
            "on a constant slope the step tends to −η∇E/(1 − μ): an effective rate "
            "η/(1 − μ) (to 10⁻⁶)",
            notes("001", "the momentum is increasing the learning rate by a factor of …"),
            closed,
            bool(slope_gap < 1e-6),
            ", ".join(f"μ = {mu:g}: {v:.6g} against {1 / (1 - mu):.6g}" for mu, v in slope.items()),
            1,
        ),
        "rates_match": Claim(
            "each eigendirection's observed rate equals the spectral radius of the "
            "momentum recurrence (and 1 − ηλ without momentum), to 10⁻⁶",
            OWN,
            closed,
            bool(rate_gap < 1e-6),
            f"largest gap {rate_gap:.2g} over four (η, μ) pairs",
            1,
        ),
        "momentum_smooths_zigzag": Claim(
            f"at η = {ZIGZAG:g}/λmax plain descent zig-zags across the valley (w₂ changes "
            "sign at every step); momentum μ = 0.5 at the same η travels less across it "
            f"in the first {SHOWN} steps and reaches the tolerance in fewer steps",
            notes("001", "This adds inertia to the motion and smooths out the obscillations"),
            closed,
            bool(smooths),
            f"w₂ changed sign at {flips:.0%} of plain descent's steps; Σ|Δw₂|: plain "
            f"{across[plain]:.3g}, μ = 0.5 {across[half]:.3g}; steps to 10⁻⁶: plain "
            f"{needed[plain]}, μ = 0.5 {needed[half]}",
            1,
        ),
        "polyak_fastest": Claim(
            "Polyak's (η, μ) reaches the tolerance in the fewest steps, at rate "
            "(√κ − 1)/(√κ + 1) in every direction",
            OWN,
            closed,
            bool(fastest == polyak_name and abs(polyak_rate - polyak.rate) < 1e-6),
            "steps: " + ", ".join(f"{_short(n)}: {k}" for n, k in needed.items()) + "; "
            f"observed Polyak rate {polyak_rate:.6f} against {polyak.rate:.6f}",
            1,
        ),
    }
    save(_figure(bowl, paths, distance, needed), out / "valley.png")
    return Outcome(
        TITLE,
        NOTES,
        f"A two-dimensional valley with κ = {kappa:g}, from w₀ = ({START[0]:g}, "
        f"{START[1]:g}), float64. Plain descent at η = {ZIGZAG:g}/λmax zig-zags: the steep "
        f"direction's rate is 1 − ηλmax = {steep[plain]:+.2f}, so w₂ flips sign every step "
        f"while the floor direction crawls at {1 - ZIGZAG / kappa:.3f} a step. Momentum "
        f"turns the steep direction's recurrence complex, with spectral radius √μ: μ = 0.5 "
        f"damps the oscillation faster ({abs(steep[half]):.3f} against {abs(steep[plain]):.2f} "
        f"a step) and speeds up the floor, so it smooths the path; μ = 0.9 at the same η has "
        f"radius {abs(steep[heavy]):.3f}, hardly below {abs(steep[plain]):.2f}, and its "
        f"swings across the valley die out no sooner (Σ|Δw₂| over {SHOWN} steps "
        f"{across[heavy]:.3g}, against {across[half]:.3g} at μ = 0.5 and {across[plain]:.3g} "
        f"without momentum): momentum damps the steep direction by √μ a step, which smooths "
        f"the path only while √μ < |1 − ηλmax|. Polyak's setting balances both directions "
        f"and is fastest." + unconfirmed(claims),
        numbers,
        claims,
        [
            Fig(
                "valley.png",
                f"Left: the first {SHOWN} iterates of plain descent and of "
                "momentum μ = 0.5 at the same η on the contours of E (the valley floor runs "
                "along w₁), as in the notes' figure. Right: the distance to the minimum against "
                "step for all four settings, log scale: the slopes are the rates (μ = 0.9 and "
                "Polyak's setting swing across the valley with radius √μ while they speed along "
                "it).",
            )
        ],
    )


def _figure(bowl, paths, distance, needed) -> Figure:
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.4, 1))
    g1, g2 = np.meshgrid(np.linspace(-10, 1.5, 200), np.linspace(-2, 2, 150))
    e = 0.5 * (LAMBDAS[0] * g1**2 + LAMBDAS[1] * g2**2)
    left.contour(g1, g2, e, levels=np.geomspace(0.05, e.max(), 14), colors="0.75", linewidths=0.7)
    for name, p in list(paths.items())[:2]:  # the notes' figure: plain descent and μ = 0.5
        left.plot(p[: SHOWN + 1, 0], p[: SHOWN + 1, 1], ".-", ms=3, lw=0.9, label=name)
    left.plot(0, 0, "k*", ms=10, label="minimum")
    left.set(
        xlabel="w₁ (λ = 1, the valley floor)",
        ylabel="w₂ (λ = 50)",
        title=f"first {SHOWN} steps on the contours of E",
    )
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    for name, d in distance.items():
        right.plot(d / d[0], lw=1.0, label=f"{_short(name)} ({needed[name]} steps)")
    right.axhline(TOLERANCE, color="k", ls=":", lw=0.8, label="tolerance 10⁻⁶")
    right.set(
        yscale="log",
        xlabel="step",
        ylabel="‖w − w*‖ / ‖w₀ − w*‖ (log scale)",
        ylim=(1e-9, 10),
        xlim=(0, 1.3 * max(needed.values())),
        title="distance to the minimum",
    )
    right.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Momentum in a valley with κ = {LAMBDAS[1] / LAMBDAS[0]:g} (notes 001, 002)")
    return fig
