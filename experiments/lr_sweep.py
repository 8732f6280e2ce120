"""Notes 001 and sweeps: a network's two learning-rate edges beside 2/λmax.

A 64-32-10 ReLU MLP on the digits (standardised), full-batch gradient descent, trained
at 64 log-spaced learning rates from 5 initialisations (seeds) as one vmapped sweep
(:mod:`jaxnn.sweep`). λmax of the training loss at each seed's start comes from Lanczos
(:func:`jaxnn.spectral.top_eigenvalues`, matrix-free). On a quadratic, descent is stable
exactly for η < 2/λmax: below it the loss falls at every step, above it the error along
the top eigendirection grows by |1 − ηλmax| a step. A network's λmax changes as it
trains, so :func:`jaxnn.sweep.lr_report` finds two edges per seed:

* the *stable* edge: the largest η at and below which the loss never rises above its
  start within the first WINDOW steps, what 2/λmax at the start speaks of;
* the *converging* edge: the largest η at and below which the run ends below its start.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import (
    OWN,
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
from jaxnn import datasets, losses, optimizers, spectral, sweep, train

TITLE = "the stable and the converging learning-rate edges of a sweep against 2/λmax"
NOTES = "001"
COST = 20  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (64, 32, 10)
SEEDS = 5
WINDOW = 20  # steps in which a stable run's loss never rises above its start
PROBE = (0.9, 1.5, 2.0, 3.0)  # multiples of 2/λmax whose first steps are measured
PROBE_STEPS = {False: 20, True: 12}  # the full pass and --quick


def run(out: Path, quick: bool = False) -> Outcome:
    steps, count = (40, 12) if quick else (200, 64)
    data_key, init_key, fit_key = jax.random.split(jax.random.key(0), 3)
    train_set, _ = datasets.train_test_split(datasets.digits(), key=data_key)
    train_set, _, _ = datasets.standardized(train_set, train_set)
    model = jaxnn.mlp(SIZES, activation="relu", init="he")
    objective = train.objective(model, losses.softmax_cross_entropy)
    loss_fn = spectral.objective_loss(objective, {}, (train_set.x, train_set.y))
    starts = [model.init(jax.random.fold_in(init_key, s))[0] for s in range(SEEDS)]
    lam0 = np.array(
        [
            float(spectral.top_eigenvalues(loss_fn, p, 1, key=jax.random.key(1)).values[0])
            for p in starts
        ]
    )
    threshold = 2 / lam0
    init = lambda seed: model.init(jax.random.fold_in(init_key, seed))

    def one_run(hp, key):
        params, state = init(hp["seed"])
        return train.fit(
            objective,
            params,
            optimizers.sgd(hp["lr"]),
            train_set,
            key=key,
            steps=steps,
            state=state,
        )

    lrs = sweep.log_range(1e-2, 10.0, count)
    result = sweep.sweep(one_run, sweep.grid(lr=lrs, seed=range(SEEDS)), key=fit_key)
    rep = sweep.lr_report(result, window=WINDOW)
    stable = np.array(
        [sweep.stability_edge(rep.lrs, rep.unstable[0, :, s])[0] for s in range(SEEDS)]
    )
    converging = np.array(
        [sweep.stability_edge(rep.lrs, rep.failed[0, :, s])[0] for s in range(SEEDS)]
    )
    step = float(rep.lrs[1] / rep.lrs[0])

    # the first WINDOW steps at multiples of each seed's 2/λmax, λmax measured every step
    hook = spectral.sharpness_hook(
        objective, (train_set.x, train_set.y), every=1, iters=10, key=jax.random.key(0)
    )
    per_seed = jax.numpy.asarray(threshold)

    def probe_run(hp, key):
        params, state = init(hp["seed"])
        return train.fit(
            objective,
            params,
            optimizers.sgd(hp["multiple"] * per_seed[hp["seed"]]),
            train_set,
            key=key,
            steps=PROBE_STEPS[quick],
            state=state,
            hooks={"sharpness": hook},
        )

    probe = sweep.sweep(
        probe_run,
        sweep.grid(multiple=list(PROBE), seed=range(SEEDS)),
        key=fit_key,
        keep_params=False,
    )
    sharp = probe.reshaped(
        np.asarray(probe.runs.history["hooks"]["sharpness"].record["sharpness"])
    )  # (multiple, seed, step)
    relative = sharp * np.asarray(PROBE)[:, None, None] / lam0[None, :, None]  # ηλmax/2
    settle = [int(np.argmax(r < 1)) if (r < 1).any() else -1 for r in relative[PROBE.index(2.0)]]

    # the claims
    must_below = converging < threshold * step  # no converging run above the threshold
    conservative = stable >= threshold
    holds_must, rule_must = vote(must_below)
    holds_cons, rule_cons = vote(conservative)
    numbers = {
        "runs": result.grid.size,
        "steps": steps,
        "seeds": SEEDS,
        "learning rates": f"{count} log-spaced in [0.01, 10] (× {step:.3f} a step)",
        "window (steps)": WINDOW,
        "compile seconds": result.compile_seconds,
        "sweep seconds": result.seconds,
        "λmax at the start, per seed": lam0.tolist(),
        "2/λmax at the start, per seed": threshold.tolist(),
        "stable edge, per seed": stable.tolist(),
        "stable edge / (2/λmax), per seed": (stable / threshold).tolist(),
        "converging edge, per seed": converging.tolist(),
        "converging edge / (2/λmax), per seed": (converging / threshold).tolist(),
    }
    for m, r in zip(PROBE, relative):
        numbers[f"η = {m:g} × 2/λmax: ηλmax/2 after 0, 5, {r.shape[1] - 1} steps, per seed"] = [
            r[:, 0].tolist(),
            r[:, 5].tolist(),
            r[:, -1].tolist(),
        ]
    claims = {
        "converges_only_below_threshold": Claim(
            "gradient descent converges only for η below 2/λmax (λmax of the Hessian at the "
            "start of training): no run above it ends below its start",
            notes("001", "to ensure convergence we must set …"),
            rule_must,
            holds_must,
            f"{tally(must_below)}; the largest converging η is "
            f"{listed(converging / threshold, '.2f')} × 2/λmax",
            SEEDS,
        ),
        "threshold_bounds_the_stable_edge": Claim(
            f"below 2/λmax at the start no run's loss rises above its start in the first "
            f"{WINDOW} steps: the stable edge lies at or above the threshold",
            OWN,
            rule_cons,
            holds_cons,
            f"{tally(conservative)}; stable edge / (2/λmax) {listed(stable / threshold, '.2f')}",
            SEEDS,
        ),
    }
    why = {
        "converges_only_below_threshold": (
            f"2/λmax is the threshold of a quadratic with fixed curvature, derived near a "
            f"minimum. At the start of training the network is far from one, and its curvature "
            f"changes within a few steps: at η = 2 × 2/λmax, ηλmax/2 starts at 2 and falls "
            f"below 1 after {listed(settle, 'g')} steps (per seed), before the top direction's "
            f"growth can lift the loss above its start. The stable edge lies at "
            f"{listed(stable / threshold, '.2g')} × 2/λmax and the converging edge at "
            f"{listed(converging / threshold, '.2g')} ×."
        )
    }
    save(_figure(rep, threshold, stable, converging, relative, steps), out / "edges.png")
    return Outcome(
        TITLE,
        NOTES,
        f"{result.grid.size} full-batch runs ({count} η × {SEEDS} seeds) in one compiled "
        f"program ({result.compile_seconds:.1f} s to compile, {result.seconds:.1f} s to "
        f"run), and {probe.grid.size} short runs with λmax measured at every step. The "
        "quadratic threshold 2/λmax at the start is conservative for this network: its "
        "λmax falls in the first few steps, so its loss first rises above the start (the "
        f"stable edge) at {np.median(stable / threshold):.2g} times the threshold (median "
        "over seeds), and training still converges a grid step or two beyond that."
        + unconfirmed(claims, why),
        numbers,
        claims,
        [
            Fig(
                "edges.png",
                "Left: the largest loss of the first "
                f"{WINDOW} steps over the starting loss, against η, one line per seed (log "
                "axes); a run is stable while it stays at 1. Middle: the final training loss "
                "against η; × marks runs that did not end below their start. In both the band "
                "spans 2/λmax at the start over the seeds, and dots mark each seed's stable "
                "(left) and converging (middle) edge. Right: ηλmax/2 over the first "
                f"{PROBE_STEPS[quick]} steps at {listed(PROBE, 'g')} × 2/λmax, one line per seed: "
                "above 1 "
                "the step overshoots along the top eigendirection.",
            )
        ],
    )


def _figure(rep, threshold, stable, converging, relative, steps) -> Figure:
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    left, middle, right = fig.subplots(1, 3)
    lrs = rep.lrs
    peaks = np.where(np.isfinite(rep.peak_ratio[0]), rep.peak_ratio[0], np.nan)
    final = rep.final_loss[0]
    for s in range(SEEDS):
        color = f"C{s}"
        left.plot(lrs, peaks[:, s], "-", color=color, lw=1, label=f"seed {s}")
        left.plot(stable[s], 1.0, "o", color=color, ms=5)
        middle.plot(lrs, final[:, s], "-", color=color, lw=1)
        bad = rep.failed[0, :, s]
        shown = bad & np.isfinite(final[:, s])
        middle.plot(lrs[shown], final[shown, s], "x", color=color, ms=4)
        blown = bad & ~np.isfinite(final[:, s])  # diverged: on the top edge
        middle.plot(
            lrs[blown],
            np.full(blown.sum(), 0.97 - 0.03 * s),
            "x",
            color=color,
            ms=4,
            transform=middle.get_xaxis_transform(),
            label="did not converge (diverged: top edge)" if s == 0 else None,
        )
        at = int(np.flatnonzero(lrs == converging[s])[0])
        middle.plot(converging[s], final[at, s], "o", color=color, ms=5)
    for ax in (left, middle):
        ax.axvspan(
            threshold.min(), threshold.max(), color="0.5", alpha=0.3, label="2/λmax at the start"
        )
        ax.set(xscale="log", yscale="log", xlabel="learning rate η (log scale)")
    left.set(ylabel=f"peak / start loss, first {WINDOW} steps", title="the stable edge")
    middle.set(ylabel="final training loss", title=f"the converging edge ({steps} steps)")
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
    middle.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17))
    for i, m in enumerate(PROBE):
        for s in range(SEEDS):
            right.plot(
                np.arange(relative.shape[2]),
                relative[i, s],
                color=f"C{i + 5}",
                lw=0.9,
                label=f"η = {m:g} × 2/λmax" if s == 0 else None,
            )
    right.axhline(1.0, color="k", ls="--", lw=1)
    right.set(xlabel="step", ylabel="ηλmax/2", title="λmax falls in the first steps")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
    fig.suptitle(
        f"digits {'-'.join(map(str, SIZES))} ReLU, full-batch gradient descent, "
        f"{len(lrs)} rates × {SEEDS} seeds (notes 001)"
    )
    return fig
