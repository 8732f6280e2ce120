"""Notes 001, 002: why weights must not start equal.

With every weight and bias 0, all hidden units of a layer compute the same function, get
the same gradient and so the same update: they stay identical however long the network
trains, and the layer acts as a single unit. A sigmoid MLP 2-8-2 on two moons shows it
(tanh would be a poorer test: tanh(0) = 0 stops every weight gradient at once); a random
(LeCun) start breaks the symmetry. Five seeds: each draws its own moons (and, for the
random start, its own weights); all ten runs are one vmapped sweep.

In floating point the units are identical only up to rounding: XLA may sum the same
numbers in a different order for different units, which leaves differences of the order
of the unit roundoff ε (2⁻²⁴ in float32) that accumulate over the steps. The spread
across units is therefore measured relative to how far the weights moved, and compared
with the bound T·ε after T steps (rounding that accumulates at most linearly); a real
breaking of the symmetry would grow far past it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import Claim, Outcome, notes, save, tally, vote
from experiments.report import Figure as Fig
from jaxnn import datasets, initializers, losses, optimizers, sweep, train

TITLE = "zero initialisation keeps every hidden unit identical; random initialisation does not"
NOTES = "001, 002"
COST = 4  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (2, 8, 2)
EVERY = 10
SEEDS = 5


def _first_layer_hook() -> train.Hook:
    """Records the first layer's weights and biases (every hidden unit's fan-in)."""

    def update(state, params, model_state, step):
        return state, {"w": params[0]["w"], "b": params[0]["b"]}

    return train.Hook(lambda params: (), update, EVERY)


def _moons(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """288 two-moons points, 96 of class 0 and 192 of class 1: with equal classes the
    zero start is a stationary point (every gradient is Σ(p − y)·0.5 = 0)."""
    moons = datasets.moons(384, key=jax.random.key(100 + seed))
    y = np.asarray(moons.y)
    keep = np.concatenate([np.flatnonzero(y == 0)[:96], np.flatnonzero(y == 1)])
    return np.asarray(moons.x)[keep], y[keep]


def run(out: Path, quick: bool = False) -> Outcome:
    steps = 200 if quick else 1000
    sets = [_moons(s) for s in range(SEEDS)]
    xs, ys = (jnp.asarray(np.stack(a)) for a in zip(*sets))
    objective = train.objective(
        functools.partial(jaxnn.forward, activation="sigmoid"), losses.softmax_cross_entropy
    )

    def one_run(hp, key):
        """Seed s's moons; weights scaled by hp["random"]: 0 gives the zero start exactly."""
        s = hp["seed"]
        params = jaxnn.init_mlp(key, SIZES, init=initializers.scaled("lecun", hp["random"]))
        return train.fit(
            objective,
            params,
            optimizers.sgd(1.0),
            (xs[s], ys[s]),
            key=key,
            steps=steps,
            hooks={"layer": _first_layer_hook()},
        )

    result = sweep.sweep(
        one_run, sweep.grid(random=[0.0, 1.0], seed=range(SEEDS)), key=jax.random.key(1)
    )
    rec = result.runs.history["hooks"]["layer"]
    # fan-in of every unit: (runs, records, inputs + 1, units)
    fan_in = np.concatenate(
        [np.asarray(rec.record["w"]), np.asarray(rec.record["b"])[:, :, None, :]], axis=2
    )
    spread = np.max(np.std(fan_in, axis=3), axis=2)  # across units, worst weight: (runs, t)
    moved = np.maximum.accumulate(np.max(np.abs(fan_in - fan_in[:, :1]), axis=(2, 3)), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = spread / moved
    zero, rand = slice(0, SEEDS), slice(SEEDS, 2 * SEEDS)
    eps = float(jnp.finfo(jnp.float32).eps) / 2  # unit roundoff of float32
    tolerance = steps * eps
    worst = np.nanmax(relative[zero][:, 1:], axis=1)  # per seed, over the run
    total_moved = moved[zero][:, -1]
    identical = (worst < tolerance) & (total_moved > 0.1)
    scale = np.sqrt(np.mean(fan_in[rand][:, :, :-1] ** 2, axis=(2, 3)))  # rms weight
    differ_by = np.min(np.min(np.std(fan_in[rand][:, :, :-1], axis=3), axis=2) / scale, axis=1)
    differ = differ_by > 0.1
    holds_same, rule_same = vote(identical)
    holds_differ, rule_differ = vote(differ)
    numbers = {
        "steps": steps,
        "learning rate": 1.0,
        "seeds": SEEDS,
        "unit roundoff ε (float32)": eps,
        "tolerance T·ε": tolerance,
        "zero start: largest spread / movement, per seed": worst.tolist(),
        "zero start: largest change of a first-layer weight, per seed": total_moved.tolist(),
        "random start: smallest spread / rms weight, per seed": differ_by.tolist(),
        "final training loss, zero start, per seed": np.asarray(
            result.runs.history["loss"][zero, -1]
        ).tolist(),
        "final training loss, random start, per seed": np.asarray(
            result.runs.history["loss"][rand, -1]
        ).tolist(),
    }
    claims = {
        "units_identical": Claim(
            "from zero initialisation every hidden unit keeps the same weights throughout "
            "training, although the weights do change: the spread across units stays below "
            "T·ε of the distance the weights moved (rounding), and they move by more than 0.1",
            notes(
                "001",
                "If parameters are initialized equally (a common choice would be "
                "zero), all neurons will compute the same function and they all "
                "would be updated in unison",
            ),
            rule_same,
            holds_same,
            f"{tally(identical)}: largest spread / movement {worst.max():.2g} against T·ε = "
            f"{tolerance:.2g} after {steps} steps; the weights moved by "
            f"{total_moved.min():.2g} to {total_moved.max():.2g}",
            SEEDS,
        ),
        "random_breaks_symmetry": Claim(
            "from a random (LeCun) initialisation the hidden units differ at every step: the "
            "spread across units of each incoming weight stays above 10 % of the weights' "
            "rms",
            notes(
                "001",
                "To address this problem a common a approach is to initialize the "
                "parameters randomly",
            ),
            rule_differ,
            holds_differ,
            f"{tally(differ)}: smallest spread / rms weight {differ_by.min():.2g}",
            SEEDS,
        ),
    }
    steps_axis = np.asarray(rec.step[0])
    save(_figure(steps_axis, fan_in, relative, eps), out / "hidden_units.png")
    return Outcome(
        TITLE,
        NOTES,
        f"Full-batch gradient descent (η = 1) for {steps} steps on 288 two-moons points (96 "
        f"and 192 per class), {SEEDS} seeds. The spread is the standard deviation across "
        "the 8 hidden units of an incoming weight or bias, taken for the worst one and "
        "divided by the largest change of any first-layer weight so far. From the zero "
        f"start it stays at rounding level ({worst.min():.1g} to {worst.max():.1g}) while "
        "the weights move: the units are interchangeable, so their gradients are equal.",
        numbers,
        claims,
        [
            Fig(
                "hidden_units.png",
                "Left and middle: the first input's weight into each of "
                "the 8 hidden units against the training step, seed 0: from the zero start the "
                "8 lines lie on top of each other; from a random start they differ. Right: the "
                "spread across units over the distance moved, every seed, log scale: the zero "
                "start stays near rounding, far below the bound t·ε after t steps (dashed); the "
                "random start stays of order one.",
            )
        ],
    )


def _figure(steps, fan_in, relative, eps) -> Figure:
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, run, name in ((axes[0], 0, "zero"), (axes[1], SEEDS, "random (LeCun)")):
        for unit in range(fan_in.shape[3]):
            ax.plot(steps, fan_in[run, :, 0, unit], lw=1.2)
        ax.set(
            xlabel="step",
            ylabel="weight from input 1 into each unit",
            title=f"{name} initialisation, seed 0",
        )
    right = axes[2]
    for s in range(SEEDS):
        right.plot(
            steps[1:],
            relative[s, 1:],
            color="tab:blue",
            lw=1,
            label="zero start" if s == 0 else None,
        )
        right.plot(
            steps[1:],
            relative[SEEDS + s, 1:],
            color="tab:orange",
            lw=1,
            label="random start" if s == 0 else None,
        )
    right.plot(steps[1:], steps[1:] * eps, "k--", lw=1, label=r"$t\varepsilon$ (rounding bound)")
    right.set(
        yscale="log",
        xlabel="step",
        ylabel="spread across units / distance moved",
        title=f"every seed ({SEEDS})",
    )
    right.legend(fontsize=8, loc="center right")
    fig.suptitle("First-layer weights of a sigmoid MLP 2-8-2 on two moons (notes 001, 002)")
    return fig
