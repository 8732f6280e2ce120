"""Notes 000: the learning rate sets the step; too small is slow, too large overshoots.

A tanh MLP 2-16-16-2 on 200 two-moons points, full-batch gradient descent, from 5
initialisations (seeds). Three views:

* the notes' own: the *summed* cross-entropy (the "total loss") at η = 0.001 and 0.01;
  the summed loss has n times the gradient of the mean, so these are mean-loss steps of
  0.2 and 2;
* the notes' "too large never converges", where it is exact: gradient descent on a
  quadratic diverges for η > 2/λmax and converges below;
* against the curvature of the network: the mean loss at η = 0.1, 0.9, 1.5 and 20 ×
  2/λmax, with λmax the exact Hessian's largest eigenvalue of each seed's start
  (:func:`jaxnn.hessian.spectrum`), and λmax tracked along every run by warm-started
  power iteration (:func:`jaxnn.spectral.sharpness_hook`). A run is locally stable while
  ηλmax/2 < 1.

A *bump* is a step at which the loss goes up (by more than 10⁻⁶ of itself: float32
rounding of the sum is far below). A run *converges* when it ends below its start. A
*catapult* (Lewkowycz et al. 2020) is named only where it is seen: the loss rises above
its start while ηλmax/2 > 1, and λmax then falls below 2/η as the loss comes back down.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import OWN, Claim, Outcome, listed, notes, save, tally, vote
from experiments.report import Figure as Fig
from jaxnn import datasets, hessian, losses, optimizers, spectral, sweep, train

TITLE = "small steps are smooth and slow, larger ones bump, too large never converge"
NOTES = "000"
COST = 12  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (2, 16, 16, 2)
MULTIPLES = (0.1, 0.9, 1.5, 20.0)  # of 2/λmax at each seed's start
NOTES_LRS = (0.001, 0.01)  # on the summed loss, as in the notes
SEEDS = 5
EVERY = 5  # steps between sharpness measurements
ABOVE = 1.5  # the multiple above the threshold whose runs are examined


def _bumps(loss: np.ndarray) -> np.ndarray:
    """Steps at which the loss rose by more than 10⁻⁶ of itself, per run (last axis)."""
    return np.sum(np.diff(loss, axis=-1) > 1e-6 * np.abs(loss[..., :-1]), axis=-1)


def _quadratic_threshold() -> tuple[bool, str]:
    """Descent on a bowl with λ = 0.5 … 4 at η = 0.95 and 1.05 × 2/λmax, 200 steps: the
    first converges, the second's error along the top direction grows by 1.1 a step."""
    with jax.enable_x64(True):
        bowl = datasets.quadratic_bowl([0.5, 1.0, 2.0, 4.0], key=jax.random.key(3))
        w0 = bowl.minimizer + 1.0
        ends = {}
        for m in (0.95, 1.05):
            result = train.fit(
                bowl.loss,
                w0,
                optimizers.sgd(m * 2 / 4.0),
                None,
                key=jax.random.key(0),
                steps=200,
                blowup=1e30,
            )
            loss = np.asarray(result.history["loss"])
            ends[m] = float(loss[-1] / loss[0])
    holds = ends[0.95] < 1e-6 and ends[1.05] > 1e6
    return holds, (
        f"E₂₀₀/E₀ = {ends[0.95]:.2g} at 0.95 × 2/λmax, {ends[1.05]:.2g} at 1.05 × 2/λmax"
    )


def run(out: Path, quick: bool = False) -> Outcome:
    steps = 150 if quick else 500
    moons = datasets.moons(200, key=jax.random.key(0))
    data = (moons.x, moons.y)
    n = data[0].shape[0]
    forward = functools.partial(jaxnn.forward, activation="tanh")
    mean_objective = train.objective(forward, losses.softmax_cross_entropy)
    summed_objective = train.objective(forward, lambda a, y: n * losses.softmax_cross_entropy(a, y))
    init = lambda key: jaxnn.init_mlp(key, SIZES)
    loss_fn = spectral.objective_loss(mean_objective, {}, data)
    starts = [init(jax.random.fold_in(jax.random.key(1), s)) for s in range(SEEDS)]
    lam0 = np.array([float(hessian.spectrum(loss_fn, p, vectors=False).lambda_max) for p in starts])
    thresholds = jnp.asarray(2 / lam0)
    hook = spectral.sharpness_hook(
        mean_objective, data, every=EVERY, iters=20, key=jax.random.key(0)
    )

    def curvature_run(hp, key):
        """Seed s's start at η = multiple × 2/λmax(start), λmax tracked."""
        s = hp["seed"]
        params = init(jax.random.fold_in(jax.random.key(1), s))
        return train.fit(
            mean_objective,
            params,
            optimizers.sgd(hp["multiple"] * thresholds[s]),
            data,
            key=key,
            steps=steps,
            hooks={"sharpness": hook},
        )

    def notes_run(hp, key):
        params = init(jax.random.fold_in(jax.random.key(1), hp["seed"]))
        return train.fit(
            summed_objective, params, optimizers.sgd(hp["lr"]), data, key=key, steps=steps
        )

    runs = sweep.sweep(
        curvature_run,
        sweep.grid(multiple=list(MULTIPLES), seed=range(SEEDS)),
        key=jax.random.key(2),
    )
    notes_runs = sweep.sweep(
        notes_run, sweep.grid(lr=list(NOTES_LRS), seed=range(SEEDS)), key=jax.random.key(2)
    )
    curves = runs.reshaped(np.asarray(runs.runs.history["loss"]))  # (multiple, seed, step)
    sharp = runs.reshaped(
        np.asarray(runs.runs.history["hooks"]["sharpness"].record["sharpness"])
    )  # (multiple, seed, calls)
    sharp_steps = np.asarray(runs.runs.history["hooks"]["sharpness"].step[0])
    # ηλmax/2 along each run: < 1 is locally stable
    relative = sharp * np.asarray(MULTIPLES)[:, None, None] / lam0[None, :, None]
    diverged = runs.reshaped(runs.diverged)
    notes_curves = notes_runs.reshaped(np.asarray(notes_runs.runs.history["loss"]))
    numbers = {
        "steps": steps,
        "seeds": SEEDS,
        "λmax at the start, per seed": lam0.tolist(),
        "2/λmax at the start, per seed": (2 / lam0).tolist(),
    }

    # the notes' pair on the summed loss
    small, large = notes_curves
    bumps_small, bumps_large = _bumps(small), _bumps(large)
    pair_ok = (bumps_small == 0) & (bumps_large > 0) & (small[:, -1] > large[:, -1])
    for lr, c in zip(NOTES_LRS, notes_curves):
        numbers[f"notes' η = {lr:g} (summed loss): bumps per seed"] = _bumps(c).tolist()
        numbers[f"notes' η = {lr:g} (summed loss): final summed loss per seed"] = c[:, -1].tolist()

    # the network against its curvature
    ends = curves[:, :, -1]
    converged = ~diverged & (ends < curves[:, :, 0])
    for m, c, d, r in zip(MULTIPLES, curves, converged, relative):
        numbers[f"η = {m:g} × 2/λmax: bumps per seed"] = _bumps(c).tolist()
        numbers[f"η = {m:g} × 2/λmax: final loss per seed"] = c[:, -1].tolist()
        numbers[f"η = {m:g} × 2/λmax: converged (ended below its start), per seed"] = d.tolist()
        numbers[f"η = {m:g} × 2/λmax: largest and final ηλmax/2, per seed"] = [
            np.nanmax(r, axis=1).tolist(),
            r[:, -1].tolist(),
        ]
    far = MULTIPLES.index(20.0)
    above = MULTIPLES.index(ABOVE)
    settled = converged[above] & (relative[above, :, -1] < 1)
    rose = np.nanmax(curves[above], axis=1) > curves[above, :, 0]
    catapults = [_catapult(curves[above, s], relative[above, s], sharp_steps) for s in range(SEEDS)]
    late = _late_spikes(curves[MULTIPLES.index(0.9)], relative[MULTIPLES.index(0.9)], sharp_steps)
    numbers[f"η = {ABOVE:g} × 2/λmax: seeds whose loss rose above its start"] = int(rose.sum())
    numbers[
        f"η = {ABOVE:g} × 2/λmax: catapults seen (loss above its start while ηλmax/2 "
        f"> 1, then λmax below 2/η)"
    ] = sum(c is not None for c in catapults)

    quad_ok, quad_evidence = _quadratic_threshold()
    holds_pair, rule_pair = vote(pair_ok)
    holds_far, rule_far = vote(~converged[far])
    holds_above, rule_above = vote(settled)
    claims = {
        "small_smooth_large_bumps": Claim(
            f"on the summed loss, η = {NOTES_LRS[1]:g} bumps (the loss rises at some steps) "
            f"while η = {NOTES_LRS[0]:g} never does, and the smaller η ends higher after "
            f"{steps} steps (it takes more iterations)",
            notes(
                "000",
                "Notice that the blue line doesn't have these overshoots, however "
                "it takes more iterations to approach the minimum.",
            ),
            rule_pair,
            holds_pair,
            f"{tally(pair_ok)}; bumps at η = {NOTES_LRS[0]:g}: {listed(bumps_small, 'g')}, at "
            f"{NOTES_LRS[1]:g}: {listed(bumps_large, 'g')}; final summed loss "
            f"{listed(small[:, -1], '.3g')} against {listed(large[:, -1], '.3g')}",
            SEEDS,
        ),
        "too_large_diverges_quadratic": Claim(
            "too large a step never converges, exactly on a quadratic: gradient descent at "
            "1.05 × 2/λmax diverges, at 0.95 × 2/λmax it converges",
            notes(
                "000", "then we consistently overshoot the minima - never converging on the minimum"
            ),
            "deterministic: an exact quadratic, float64",
            quad_ok,
            quad_evidence,
            1,
        ),
        "too_large_diverges_network": Claim(
            f"on the network, η = {MULTIPLES[far]:g} × 2/λmax never converges: its loss ends "
            "above where it started",
            notes(
                "000", "then we consistently overshoot the minima - never converging on the minimum"
            ),
            rule_far,
            holds_far,
            f"{tally(~converged[far])}; loss at the start {listed(curves[far, :, 0], '.3g')}, "
            f"at the end {listed(ends[far], '.3g')}",
            SEEDS,
        ),
        "above_threshold_self_stabilises": Claim(
            f"just above the quadratic threshold (η = {ABOVE:g} × 2/λmax at the start) the "
            "network still converges: λmax falls until η is stable again (ηλmax/2 < 1 at "
            "the end)",
            OWN,
            rule_above,
            holds_above,
            f"{tally(settled)}; final ηλmax/2 {listed(relative[above, :, -1], '.2g')}; the "
            f"loss rose above its start in {tally(rose)}, a catapult (that rise while "
            f"ηλmax/2 > 1, then λmax below 2/η) in "
            f"{sum(c is not None for c in catapults)} of {SEEDS}",
            SEEDS,
        ),
    }
    save(_figure(curves, relative, sharp_steps, notes_curves, steps), out / "loss_curves.png")
    return Outcome(
        TITLE,
        NOTES,
        f"Full-batch gradient descent for {steps} steps from {SEEDS} initialisations; λmax "
        f"at the start is {lam0.min():.3g} to {lam0.max():.3g}, so 2/λmax is "
        f"{2 / lam0.max():.3g} to {2 / lam0.min():.3g}. The notes' η = 0.001 learns "
        f"smoothly but slowly, 0.01 bumps and gets lower. Against the curvature: below "
        f"2/λmax the loss falls, far above it it never comes down. Just above it, at "
        f"{ABOVE:g} × 2/λmax, λmax does not stay put: ηλmax/2 stays near or above 1 for a "
        f"while, where the loss bumps, then falls below 1, and the run converges. "
        + _catapult_account(catapults, rose, sharp_steps)
        + late,
        numbers,
        claims,
        [
            Fig(
                "loss_curves.png",
                "Left: the mean cross-entropy against step at 0.1, 0.9, "
                "1.5 and 20 × 2/λmax (each seed's own λmax at the start; one line per seed, "
                "log scale). Middle: ηλmax/2 along the same runs, λmax tracked every "
                f"{EVERY} steps: above the dashed line at 1 the step is unstable along the top "
                "eigendirection (the 20 × runs are chaotic and left out). Right: the notes' "
                "view, the summed loss at η = 0.001 and 0.01, "
                "one line per seed.",
            )
        ],
    )


def _catapult(loss: np.ndarray, relative: np.ndarray, steps: np.ndarray) -> int | None:
    """The step at which a run's loss peaked above its start while ηλmax/2 > 1 and after
    which ηλmax/2 fell below 1, or None when the run shows no such event."""
    peak = int(np.nanargmax(loss))
    if not loss[peak] > loss[0]:
        return None
    before = relative[steps <= peak]
    after = relative[steps > peak]
    if before.size and np.nanmax(before) > 1 and after.size and np.nanmin(after) < 1:
        return peak
    return None


def _catapult_account(catapults, rose, steps) -> str:
    seen = [p for p in catapults if p is not None]
    if seen:
        return (
            f"In {len(seen)} of {SEEDS} seeds this is a catapult: the loss peaks above "
            f"its start (at step {listed(seen, 'g')}) while ηλmax/2 > 1, and λmax then drops "
            f"below 2/η as the loss comes back down. "
        )
    return (
        f"The loss rose above its start in {int(rose.sum())} of {SEEDS} seeds, but no "
        "run shows a catapult (a loss spike above the start while ηλmax/2 > 1, "
        "followed by λmax below 2/η): λmax falls without a spike. "
    )


def _late_spikes(curves: np.ndarray, relative: np.ndarray, steps: np.ndarray) -> str:
    """A sentence on the runs below the threshold whose loss later jumps to over twice its
    lowest value so far, and whether ηλmax/2 had reached 1 by then (λmax grew)."""
    spikes = [train.loss_spikes(c, factor=2.0) for c in curves]
    jumped = [(s, found[0].start) for s, found in enumerate(spikes) if found]
    if not jumped:
        return "At 0.9 × 2/λmax no run's loss ever rose to twice its lowest value so far."
    sharpened = sum(np.nanmax(relative[s, steps <= t + EVERY]) >= 1 for s, t in jumped)
    return (
        f"At 0.9 × 2/λmax the loss of {len(jumped)} of {SEEDS} seeds later jumps to over "
        f"twice its lowest value so far (at step {listed([t for _, t in jumped], 'g')}); in "
        f"{sharpened} of them λmax had grown by then until ηλmax/2 ≥ 1 (the middle "
        f"panel), so the step overshoots the top direction there."
    )


def _figure(curves, relative, sharp_steps, notes_curves, steps) -> Figure:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, middle, right = fig.subplots(1, 3)
    for i, m in enumerate(MULTIPLES):
        chaotic = m > 2  # far past the threshold: drawn faint, and not in the middle panel
        for s in range(SEEDS):
            label = f"{m:g} × 2/λmax" if s == 0 else None
            left.plot(
                curves[i, s],
                color=f"C{i}",
                lw=0.5 if chaotic else 0.8,
                alpha=0.35 if chaotic else 0.8,
                label=label,
            )
            if not chaotic:
                middle.plot(
                    sharp_steps, relative[i, s], color=f"C{i}", lw=0.8, alpha=0.8, label=label
                )
    middle.axhline(1.0, color="k", ls="--", lw=1, label="ηλmax/2 = 1")
    left.set(
        yscale="log",
        xlabel="step",
        ylabel="mean cross-entropy (log scale)",
        title="against the sharpness at the start",
    )
    middle.set(
        yscale="log",
        xlabel="step",
        ylabel="ηλmax/2 (log scale)",
        title="the sharpness along each run",
    )
    for i, lr in enumerate(NOTES_LRS):
        for s in range(SEEDS):
            right.plot(
                notes_curves[i, s],
                color=f"C{i + 4}",
                lw=0.8,
                label=f"η = {lr:g}" if s == 0 else None,
            )
    right.set(
        yscale="log",
        xlabel="step",
        ylabel="summed cross-entropy (log scale)",
        title="the notes' η on the summed loss",
    )
    for ax in (left, middle, right):
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
    fig.suptitle(
        f"tanh MLP {'-'.join(map(str, SIZES))} on two moons, full-batch gradient "
        f"descent, {steps} steps, {SEEDS} seeds (notes 000)"
    )
    return fig
