"""Beyond the notes: a large learning rate finds a flatter point at the same training loss.

A run at step η can only settle where λmax ≲ 2/η (notes 001's threshold, enforced by the
edge of stability), so a large η should reach a given training loss at a flatter point
than a small one, which sharpens freely (progressive sharpening, Cohen et al. 2021).
Compared at a fixed number of steps the two runs would sit at different losses, and
flatness follows the loss; so both runs are compared at the first recorded step at which
each reaches the same training loss (the higher of the two runs' lowest losses).
Flatness is read two ways: λmax (Lanczos, converged to 10⁻³), and the loss rise E(w +
αd) − E(w) averaged over α = ±0.25 and 4 filter-normalised random directions d
(:func:`jaxnn.landscape.random_direction`, Li et al. 2018). The edge-of-stability setup
(a tanh MLP 64-128-128-10, LeCun init at half scale, 500 standardised digits (200 in
--quick), quadratic loss), full-batch gradient descent at η = 0.05 and 0.3 from 5
initialisations; for the first seed, the loss over the plane of each run's path
(:func:`jaxnn.landscape.trajectory_plane`, the path's two principal directions) with
the path drawn on it.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.edge_of_stability import SIZES, problem
from experiments.report import (
    OWN,
    Claim,
    Outcome,
    difference,
    listed,
    lower,
    save,
    tally,
    unconfirmed,
    vote,
)
from experiments.report import (
    Figure as Fig,
)
from jaxnn import (
    landscape,
    losses,
    optimizers,
    spectral,
    train,
)

TITLE = "at the same training loss, a large η sits at a flatter point"
NOTES = "beyond the notes (001's 2/λmax threshold)"
COST = 25  # seconds of --quick on 2 cores: parallel runs start the costliest first
SMALL, LARGE = 0.05, 0.3
SEEDS = 5
EXAMPLES = {False: 500, True: 200}  # digits used: the full pass and --quick
EVERY = 10  # params recorded every EVERY steps
ALPHA = 0.25
DIRECTIONS = 4
GRID = 21


def run(out: Path, quick: bool = False) -> Outcome:
    steps = 400 if quick else 3000
    n = EXAMPLES[quick]
    (x, y), model, _ = problem(n)

    def loss(params):
        return losses.quadratic(jaxnn.forward(params, x, activation="tanh"), y)

    keep = train.Hook(lambda p: (), lambda s, p, st, t: (s, p), EVERY)
    lam = np.zeros((2, SEEDS))
    rise = np.zeros((2, SEEDS))
    reached = np.zeros((2, SEEDS), int)
    targets, explained, shown = [], np.zeros((2, SEEDS, 2)), {}
    for seed in range(SEEDS):
        start = model.init(jax.random.fold_in(jax.random.key(1), seed))[0]
        runs = [
            train.fit(
                loss,
                start,
                optimizers.sgd(lr),
                None,
                key=jax.random.key(0),
                steps=steps,
                hooks={"path": keep},
            )
            for lr in (SMALL, LARGE)
        ]
        recorded = [np.asarray(r.history["loss"])[::EVERY] for r in runs]
        target = max(float(np.min(r)) for r in recorded)  # both runs reach it
        targets.append(target)
        for i, run_ in enumerate(runs):
            at = int(np.argmax(recorded[i] <= target))
            reached[i, seed] = at * EVERY
            path = jax.tree.map(lambda a, at=at: a[: at + 1], run_.history["hooks"]["path"].record)
            point = jax.tree.map(lambda a, at=at: a[at], run_.history["hooks"]["path"].record)
            lam[i, seed] = float(
                spectral.top_eigenvalues(loss, point, 1, key=jax.random.key(2), tol=1e-3).values[0]
            )
            rises = []
            for d in range(DIRECTIONS):
                direction = landscape.random_direction(jax.random.key(10 + d), point)
                line = np.asarray(landscape.line(loss, point, direction, [-ALPHA, 0.0, ALPHA]))
                rises.append((line[0] + line[2]) / 2 - line[1])
            rise[i, seed] = float(np.mean(rises))
            plane = landscape.trajectory_plane(path)
            explained[i, seed] = np.asarray(plane.explained)
            if seed == 0:
                reach = 1.3 * np.abs(np.asarray(plane.coordinates)).max(axis=0)
                alphas = np.linspace(-reach[0], reach[0], GRID)
                betas = np.linspace(-reach[1], reach[1], GRID)
                surface = landscape.plane(loss, plane.origin, *plane.directions, alphas, betas)
                shown[i] = (alphas, betas, np.asarray(surface), np.asarray(plane.coordinates))
    flatter = lam[1] < lam[0]
    holds_lam, rule_lam = vote(flatter)
    holds_rise, rule_rise, diff = lower(rise[1], rise[0])
    numbers = {
        "steps": steps,
        "seeds": SEEDS,
        "the common training loss, per seed": targets,
        "step at which each run reaches it, per seed (small η, large η)": reached.tolist(),
        f"λmax there, η = {SMALL:g}": lam[0].tolist(),
        f"λmax there, η = {LARGE:g} (2/η = {2 / LARGE:.3g})": lam[1].tolist(),
        f"loss rise at |α| = {ALPHA:g}, η = {SMALL:g}": rise[0].tolist(),
        f"loss rise at |α| = {ALPHA:g}, η = {LARGE:g}": rise[1].tolist(),
        f"variance explained by the path's two principal directions, η = {SMALL:g}": explained[
            0
        ].tolist(),
        f"the same, η = {LARGE:g}": explained[1].tolist(),
    }
    claims = {
        "large_lr_lower_lambda_max": Claim(
            f"at the same training loss, the run at η = {LARGE:g} has a lower λmax than the "
            f"run at η = {SMALL:g} (its λmax is held near 2/η = {2 / LARGE:.3g}; the small η "
            "sharpens past it)",
            OWN,
            rule_lam,
            holds_lam,
            f"{tally(flatter)}; λmax {listed(lam[1])} against {listed(lam[0])}",
            SEEDS,
        ),
        "large_lr_flatter_along_random_directions": Claim(
            f"at the same training loss, the loss rises less along filter-normalised random "
            f"directions (|α| = {ALPHA:g}, mean of {DIRECTIONS}) around the run at η = "
            f"{LARGE:g} than around the run at η = {SMALL:g} (Li et al. 2018's flatness)",
            OWN,
            rule_rise,
            holds_rise,
            f"rise {listed(rise[1])} against {listed(rise[0])}; difference {difference(diff)}",
            SEEDS,
        ),
    }
    save(_figure(shown, lam, rise, n), out / "landscapes.png")
    return Outcome(
        TITLE,
        NOTES,
        f"Full-batch gradient descent for up to {steps} steps at η = {SMALL:g} and "
        f"{LARGE:g} from {SEEDS} initialisations, float32, compared where each first "
        f"reaches the same training loss. The small η gets there at λmax ≈ "
        f"{np.median(lam[0]):.3g}, the large one at {np.median(lam[1]):.3g}, next to its "
        f"2/η = {2 / LARGE:.3g}: the large step cannot settle anywhere sharper. Along "
        "filter-normalised random directions the difference is smaller "
        f"({np.median(rise[1] / rise[0]):.0%} of the small-η rise, median): λmax measures "
        "one direction, a random direction mostly sees the bulk of the spectrum. Each "
        f"path lies close to a plane (its two principal directions explain "
        f"{np.median(explained.sum(2)):.0%} of its squared deviations, median)."
        + unconfirmed(claims),
        numbers,
        claims,
        [
            Fig(
                "landscapes.png",
                "Left and middle: the training loss over the plane of each run's path "
                "(first seed; log contours), centred where it reaches the common loss, with "
                "the path from its start (circle) to that point (star). Right: λmax and the "
                f"loss rise at |α| = {ALPHA:g} there, one dot per seed, the two runs of a seed "
                "joined.",
            )
        ],
    )


def _figure(shown, lam, rise, n) -> Figure:
    fig = Figure(figsize=(13, 4.3), layout="constrained")
    axes = fig.subplots(1, 3)
    for i, lr in enumerate((SMALL, LARGE)):
        ax = axes[i]
        alphas, betas, surface, path = shown[i]
        filled = ax.contourf(alphas, betas, np.log10(surface).T, levels=25, cmap="viridis")
        ax.contour(
            alphas, betas, np.log10(surface).T, levels=25, colors="k", linewidths=0.3, alpha=0.4
        )
        fig.colorbar(filled, ax=ax, label="log₁₀ training loss")
        ax.plot(path[:, 0], path[:, 1], "-", color="w", lw=1.3)
        ax.plot(path[0, 0], path[0, 1], "o", color="w", mec="k")
        ax.plot(path[-1, 0], path[-1, 1], "*", color="r", mec="k", ms=12)
        ax.set(
            xlabel="first principal direction",
            ylabel="second principal direction",
            title=f"η = {lr:g}: the path's plane",
        )
    right = axes[2]
    for s in range(lam.shape[1]):
        right.plot(lam[:, s], rise[:, s], "-", color="0.6", lw=0.8)
    for i, lr in enumerate((SMALL, LARGE)):
        right.plot(lam[i], rise[i], "o", color=f"C{i}", label=f"η = {lr:g}")
    right.axvline(2 / LARGE, color="C1", ls="--", lw=1, label=f"2/η = {2 / LARGE:.3g}")
    right.set(
        xlabel="λmax at the common loss",
        ylabel=f"loss rise at |α| = {ALPHA:g}",
        title="flatness, two ways",
    )
    right.legend(fontsize=8)
    fig.suptitle(
        f"tanh MLP {'-'.join(map(str, SIZES))}, {n} digits, quadratic loss, full-batch "
        f"gradient descent, compared at equal training loss, {lam.shape[1]} seeds"
    )
    return fig
