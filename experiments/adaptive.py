"""Notes 001: adaptive learning rates (AdaGrad, RMSProp, Adam) against SGD and momentum.

AdaGrad, RMSProp and Adam divide each parameter's step by a running size of its own
gradient, so a direction of high curvature (large gradients) gets a small step and a
flat one a large step: on an ill-conditioned quadratic whose axes are the parameters,
this undoes the conditioning that slows gradient descent, as long as the high- and
low-curvature directions are the parameters themselves. Five optimisers, each at its
best learning rate (one vmapped sweep over optimiser, η and seed per problem):

* a quadratic with eigenvalues log-spaced in [1, 1000] along the coordinate axes, and
  the same quadratic rotated (a random orthogonal basis: the control, where a
  per-coordinate scale cannot match the curvature), from 5 random starts, full batch;
* a tanh MLP 64-64-10 on the digits, minibatch 32, from 5 seeds, where each step's size
  ‖Δw‖ is recorded: AdaGrad divides by the root of a sum that only grows, RMSProp by a
  running average.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxnn
from experiments.report import (
    OWN,
    Claim,
    Outcome,
    difference,
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
from jaxnn import datasets, losses, optimizers, stats, sweep, train

TITLE = "SGD, momentum, AdaGrad, RMSProp and Adam on an ill-conditioned quadratic and on digits"
NOTES = "001"
COST = 15  # seconds of --quick on 2 cores: parallel runs start the costliest first
OPTIMIZERS = {"sgd": {}, "momentum": {"mu": 0.9}, "adagrad": {}, "rmsprop": {}, "adam": {}}
ADAPTIVE = ("adagrad", "rmsprop", "adam")
SEEDS = 5
DIM, KAPPA = 10, 1000.0
LOST = 1.0  # decades of E by which rotation must shrink an adaptive method's lead


def _sweep(problem, lrs, key, **axes) -> sweep.SweepResult:
    """Every (optimiser, η, seed, ...) of ``problem(optimizer, hp, key)`` as one sweep: the
    optimiser is an index into ``optimizers.switch``."""

    def run(hp, k):
        choices = [optimizers.get(name, hp["lr"], **hyper) for name, hyper in OPTIMIZERS.items()]
        return problem(optimizers.switch(hp["optimizer"].astype(int), choices), hp, k)

    return sweep.sweep(
        run,
        sweep.grid(**axes, optimizer=range(len(OPTIMIZERS)), lr=list(lrs), seed=range(SEEDS)),
        key=key,
    )


def _best_lr(score: np.ndarray) -> np.ndarray:
    """Per optimiser (axis −3), the η index (axis −2) of the lowest mean score over the seeds
    (axis −1), a diverged run scoring inf."""
    return np.argmin(np.where(np.isfinite(score), score, np.inf).mean(axis=-1), axis=-1)


def _update_norms() -> train.Hook:
    """‖Δw‖ of the step just taken, every step (0 at step 0): the hook keeps the last params."""

    def update(previous, params, state, step):
        return params, optax.tree.norm(jax.tree.map(jnp.subtract, params, previous))

    return train.Hook(lambda params: params, update, 1)


def run(out: Path, quick: bool = False) -> Outcome:
    bowl_steps, epochs = (100, 2) if quick else (300, 15)
    lrs = sweep.log_range(1e-4, 10.0, 13)
    axis, rotated = (
        datasets.quadratic_bowl(np.geomspace(1.0, KAPPA, DIM), key=key)
        for key in (None, jax.random.key(4))
    )
    matrices = jnp.stack([axis.matrix, rotated.matrix])
    starts = jax.random.normal(jax.random.key(5), (SEEDS, DIM))

    def on_bowl(optimizer, hp, key):
        a = matrices[hp["rotated"].astype(int)]
        return train.fit(
            lambda w, s, b, k: (0.5 * w @ (a @ w), s),
            starts[hp["seed"]],
            optimizer,
            None,
            key=key,
            steps=bowl_steps,
        )

    bowls = _sweep(on_bowl, lrs, jax.random.key(0), rotated=[0, 1])
    bowl_final = bowls.reshaped(
        np.where(bowls.diverged, np.inf, np.asarray(bowls.runs.history["loss"])[:, -1])
    )
    bowl_curves = bowls.reshaped(np.asarray(bowls.runs.history["loss"]))
    # (rotated, optimiser, η, seed): each optimiser's best η per geometry, by the seed mean
    # of log10 E (E spans many decades; 0 counts as 10⁻⁴⁰)
    log_final = np.log10(np.maximum(bowl_final, 1e-40))
    best_bowl = _best_lr(log_final)
    at_best = np.stack(
        [log_final[r, np.arange(len(OPTIMIZERS)), best_bowl[r]] for r in range(2)]
    )  # (rotated, optimiser, seed)

    train_set, _ = datasets.train_test_split(datasets.digits(), key=jax.random.key(1))
    train_set, _, _ = datasets.standardized(train_set, train_set)
    model = jaxnn.mlp((64, 64, 10), activation="tanh")
    objective = train.objective(model, losses.softmax_cross_entropy)
    per_epoch = train_set.x.shape[0] // 32

    def on_digits(optimizer, hp, key):
        init_key, fit_key = jax.random.split(key)
        params, state = model.init(init_key)
        return train.fit(
            objective,
            params,
            optimizer,
            train_set,
            key=fit_key,
            epochs=epochs,
            batch_size=32,
            state=state,
            hooks={"step": _update_norms()},
        )

    digit_lrs = sweep.log_range(1e-4, 10.0, 5 if quick else 9)
    digits = _sweep(on_digits, digit_lrs, jax.random.key(3))
    loss = digits.reshaped(np.asarray(digits.runs.history["loss"]))  # (opt, η, seed, step)
    tail = np.where(
        digits.reshaped(digits.diverged), np.inf, np.mean(loss[..., -per_epoch:], axis=-1)
    )  # last-epoch mean loss
    best_digits = _best_lr(tail)
    steps = digits.reshaped(np.asarray(digits.runs.history["hooks"]["step"].record))
    names = list(OPTIMIZERS)
    picked = {
        n: (
            digit_lrs[best_digits[i]],
            tail[i, best_digits[i]],
            loss[i, best_digits[i]],
            steps[i, best_digits[i]],
        )
        for i, n in enumerate(names)
    }

    # claims
    sgd = names.index("sgd")
    lower_axis = {n: at_best[0, names.index(n)] < at_best[0, sgd] for n in ADAPTIVE}
    beat = np.all([lower_axis[n] for n in ADAPTIVE], axis=0)
    holds_beat, rule_beat = vote(beat)
    gain = at_best[:, sgd, None] - at_best  # decades below SGD: (rotated, optimiser, seed)
    lost = np.all(
        [gain[0, names.index(n)] - gain[1, names.index(n)] >= LOST for n in ADAPTIVE], axis=0
    )
    holds_lost, rule_lost = vote(lost)
    shrink = {n: _late_over_early(picked[n][3], per_epoch) for n in ("adagrad", "rmsprop")}
    smaller = shrink["adagrad"] < shrink["rmsprop"]
    holds_small, rule_small = vote(smaller)
    numbers = {
        "learning rates tried (quadratic)": lrs.tolist(),
        "learning rates tried (digits)": digit_lrs.tolist(),
        "quadratic: dimension, κ, steps": [DIM, KAPPA, bowl_steps],
        "digits epochs": epochs,
        "seeds": SEEDS,
    }
    for i, name in enumerate(names):
        for r, geometry in enumerate(("axis-aligned", "rotated")):
            numbers[f"{name}, {geometry} quadratic: best η; log₁₀ E per seed"] = [
                float(lrs[best_bowl[r, i]]),
                at_best[r, i].tolist(),
            ]
        numbers[f"{name}, digits: best η; last-epoch loss per seed"] = [
            float(picked[name][0]),
            picked[name][1].tolist(),
        ]
    claims = {
        "adaptive_beat_sgd_on_quadratic": Claim(
            "on an ill-conditioned quadratic whose axes are the parameters, AdaGrad, RMSProp "
            "and Adam each end lower than SGD (each at its best η)",
            notes(
                "001",
                "the change in the learning rate can be optimized separately for "
                "each direction in parameter space",
            ),
            rule_beat,
            holds_beat,
            f"{tally(beat)} (every adaptive method below SGD); log₁₀ E at the end, mean over "
            "starts: " + ", ".join(f"{n} {at_best[0, i].mean():.3g}" for i, n in enumerate(names)),
            SEEDS,
        ),
        "rotation_removes_the_advantage": Claim(
            f"rotated so that its axes are no longer the parameters' (same eigenvalues), the "
            f"quadratic takes that advantage away: each adaptive method's lead over SGD "
            f"shrinks by at least {LOST:g} decade of E",
            OWN,
            rule_lost,
            holds_lost,
            f"{tally(lost)}; decades below SGD, axis-aligned → rotated (mean over starts): "
            + ", ".join(
                f"{n} {gain[0, names.index(n)].mean():.3g} → {gain[1, names.index(n)].mean():.3g}"
                for n in ADAPTIVE
            ),
            SEEDS,
        ),
        "adagrad_steps_shrink": Claim(
            "on digits AdaGrad's steps shrink over training more than RMSProp's: the mean "
            "‖Δw‖ of the last epoch over that of the first is smaller for AdaGrad (each at "
            "its best η)",
            notes(
                "001",
                "Fixes a problem with AdaGrad where the weight updates tend to become too small.",
            ),
            rule_small,
            holds_small,
            f"{tally(smaller)}; last / first epoch ‖Δw‖: AdaGrad "
            f"{listed(shrink['adagrad'])}, RMSProp {listed(shrink['rmsprop'])}",
            SEEDS,
        ),
    }
    save(_figure(bowl_curves, best_bowl, lrs, picked, per_epoch), out / "adaptive.png")
    order = sorted(names, key=lambda n: picked[n][1].mean())
    adam = stats.paired_difference(np.log10(picked["adam"][1]), np.log10(picked["sgd"][1]))
    return Outcome(
        TITLE,
        NOTES,
        f"Each optimiser at its best of {len(lrs)} learning rates on the quadratics and "
        f"{len(digit_lrs)} on digits, chosen by the mean over {SEEDS} seeds (random starts "
        "on the quadratics; init and minibatch order on digits). On the axis-aligned "
        "quadratic SGD is held back by its slowest direction (rate ≥ 1 − 2/κ at any stable "
        "η) while the per-parameter methods rescale each axis; rotated, a per-parameter "
        "scale no longer matches the curvature's directions. On digits the ranking by "
        f"last-epoch loss (mean over seeds) is {', '.join(order)}; Adam's log₁₀ loss minus "
        f"SGD's is {difference(adam, 2)}: the notes make no claim about it." + unconfirmed(claims),
        numbers,
        claims,
        [
            Fig(
                "adaptive.png",
                "Top: E against step on the axis-aligned (left) and rotated "
                "(right) quadratic, each optimiser at its best η, median over the starts with "
                "a band from the lowest to the highest (log scale; curves stop where E reaches "
                "10⁻⁴⁰). Bottom left: the digits training "
                "loss per epoch at each one's best η, mean over seeds with a band of ± one "
                "standard error. Bottom right: the size of each step ‖Δw‖ on digits, mean per "
                "epoch over seeds: AdaGrad's shrinks by orders of magnitude, RMSProp's stays "
                "level (the others shrink with the gradient).",
            )
        ],
    )


def _late_over_early(steps: np.ndarray, per_epoch: int) -> np.ndarray:
    """Per seed: the mean ‖Δw‖ of the last epoch over that of the first (step 0, which
    records no step, left out)."""
    return steps[:, -per_epoch:].mean(axis=1) / steps[:, 1:per_epoch].mean(axis=1)


def _figure(bowl_curves, best_bowl, lrs, picked, per_epoch) -> Figure:
    fig = Figure(figsize=(11, 7.6), layout="constrained")
    (ax_axis, ax_rot), (ax_digits, ax_steps) = fig.subplots(2, 2)
    names = list(OPTIMIZERS)
    for r, ax in enumerate((ax_axis, ax_rot)):
        for i, name in enumerate(names):
            runs = np.where(
                bowl_curves[r, i, best_bowl[r, i]] > 1e-40,
                bowl_curves[r, i, best_bowl[r, i]],
                np.nan,
            )  # (starts, steps)
            ax.plot(
                np.median(runs, axis=0),
                lw=1.1,
                color=f"C{i}",
                label=f"{name}, η = {lrs[best_bowl[r, i]]:.2g}",
            )
            ax.fill_between(
                np.arange(runs.shape[1]),
                np.min(runs, axis=0),
                np.max(runs, axis=0),
                color=f"C{i}",
                alpha=0.2,
            )
        ax.set(
            yscale="log",
            xlabel="step",
            ylabel="E(w) (log scale)",
            title=f"quadratic, κ = {KAPPA:g}, {'rotated' if r else 'axis-aligned'}",
        )
        ax.legend(fontsize=8, loc="lower left" if r else "lower right")
    for i, name in enumerate(names):
        lr, _, loss, steps = picked[name]
        epochs = loss.shape[1] // per_epoch
        for ax, values in ((ax_digits, loss), (ax_steps, steps)):
            per = values[:, : epochs * per_epoch].reshape(values.shape[0], epochs, per_epoch)
            s = stats.mean_stderr(per.mean(axis=2))
            x = np.arange(1, epochs + 1)
            ax.plot(x, s.mean, "o-", ms=3, color=f"C{i}", label=f"{name}, η = {lr:.2g}")
            ax.fill_between(x, s.mean - s.stderr, s.mean + s.stderr, color=f"C{i}", alpha=0.25)
    ax_digits.set(
        yscale="log",
        xlabel="epoch",
        ylabel="mean minibatch loss (log scale)",
        title="digits, tanh 64-64-10",
    )
    ax_steps.set(
        yscale="log",
        xlabel="epoch",
        ylabel="mean step size ‖Δw‖ (log scale)",
        title="digits: the size of the steps",
    )
    ax_digits.legend(fontsize=8, loc="upper right")
    fig.suptitle(
        f"Adaptive methods against SGD and momentum, each at its best η, {SEEDS} seeds (notes 001)"
    )
    return fig
