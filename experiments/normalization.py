"""Notes 001, 002: normalisation lets a network train at larger learning rates.

The digits' 64 pixels are made badly scaled: after standardising, feature j is
multiplied by s_j = 10^u_j, u_j uniform on [−1.5, 1.5], and shifted by 3s_j, so scales
span a factor of 1,000 and no feature is centred. A tanh MLP 64-64-10 then trains four
ways: on the raw features (none), on re-standardised features (data normalisation,
μ and σ fitted on the training split), with batch norm on the hidden layer, and with
layer norm there. Each is swept over 24 learning rates from 5 initialisations (none and
data normalisation in one vmapped sweep, the input an axis of it), full-batch gradient
descent, and :func:`jaxnn.sweep.lr_report` finds each seed's two edges: the stable one
(the loss never rises above its start in the first steps) and the converging one (the
run ends below its start). Large input scales make the first layer's curvature large,
so plain descent must take tiny steps.

Batch norm's running averages (notes 001's μ̄ ← αμ̄ + (1 − α)μ_B and likewise for the
variance; jaxnn keeps the running *variance*, see the erratum list) are then checked
after minibatch training (5 seeds) against the trained network's statistics over the
whole training split, and used for inference.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import (
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
from jaxnn import datasets, losses, normalization, optimizers, stats, sweep, train

TITLE = "normalisation (data, batch, layer) against none on badly scaled inputs"
NOTES = "001, 002"
COST = 15  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (64, 64, 10)
SEEDS = 5
WINDOW = 20  # steps in which a stable run's loss never rises above its start
QUICK_ROWS = 360  # training rows of --quick's sweeps


def _badly_scaled(key, train_set, test_set):
    train_set, test_set, _ = datasets.standardized(train_set, test_set)
    scale = 10.0 ** jax.random.uniform(key, (train_set.x.shape[1],), minval=-1.5, maxval=1.5)
    bend = lambda x: x * scale + 3.0 * scale
    return (
        datasets.Dataset(bend(train_set.x), train_set.y),
        datasets.Dataset(bend(test_set.x), test_set.y),
    )


def _population_stats(params, x):
    """Mean and variance over ``x`` of the batch-normed layer's pre-activations a = xW."""
    a = x @ params[0]["w"]
    return jnp.mean(a, axis=0), jnp.var(a, axis=0)


def run(out: Path, quick: bool = False) -> Outcome:
    steps, count = (30, 8) if quick else (100, 24)
    split = datasets.train_test_split(datasets.digits(), key=jax.random.key(0))
    raw_train, raw_test = _badly_scaled(jax.random.key(1), *split)
    bn = _batch_norm_check(raw_train, raw_test, quick)
    if quick:  # the learning-rate sweeps on a quarter of the training split
        raw_train = datasets.Dataset(raw_train.x[:QUICK_ROWS], raw_train.y[:QUICK_ROWS])
    stats = normalization.fit_standardizer(raw_train.x)
    std_train = datasets.Dataset(normalization.standardize(raw_train.x, stats), raw_train.y)
    lrs = sweep.log_range(1e-4, 100.0, count)
    # none and data normalisation: one model, two inputs, one sweep (the input an axis)
    plain = jaxnn.mlp(SIZES)
    variants = {
        "none": (plain, 0),
        "data normalisation": (plain, 1),
        "batch norm": (jaxnn.mlp(SIZES, batch_norm=True), 0),
        "layer norm": (jaxnn.mlp(SIZES, layer_norm=True), 0),
    }
    inputs = jnp.stack([raw_train.x, std_train.x])
    reports, curves, best_lr = {}, {}, {}
    for model in (plain, variants["batch norm"][0], variants["layer norm"][0]):
        objective = train.objective(model, losses.softmax_cross_entropy)
        names = [n for n, (m, _) in variants.items() if m is model]

        def one_run(hp, key, objective=objective, model=model):
            params, state = model.init(jax.random.fold_in(jax.random.key(2), hp["seed"]))
            x = inputs[hp["input"].astype(int)] if "input" in hp else inputs[0]
            return train.fit(
                objective,
                params,
                optimizers.sgd(hp["lr"]),
                (x, raw_train.y),
                key=key,
                steps=steps,
                state=state,
            )

        axes = {"input": [variants[n][1] for n in names]} if len(names) > 1 else {}
        result = sweep.sweep(
            one_run,
            sweep.grid(**axes, lr=list(lrs), seed=range(SEEDS)),
            key=jax.random.key(3),
            keep_params=False,
        )
        rep = sweep.lr_report(result, window=WINDOW)
        history = result.reshaped(np.asarray(result.runs.history["loss"]))
        history = history.reshape((len(names), count, SEEDS, steps))
        for g, name in enumerate(names):
            reports[name] = (rep, g)
            best_lr[name] = rep.rows[g]["largest_stable_lr"]  # stable for every seed
            k = (
                int(np.flatnonzero(rep.lrs == best_lr[name])[0])
                if np.isfinite(best_lr[name])
                else 0
            )
            curves[name] = history[g, k]  # (seeds, steps) at that η
    stable = {
        n: np.array([sweep.stability_edge(r.lrs, r.unstable[g, :, s])[0] for s in range(SEEDS)])
        for n, (r, g) in reports.items()
    }
    converging = {
        n: np.array([sweep.stability_edge(r.lrs, r.failed[g, :, s])[0] for s in range(SEEDS)])
        for n, (r, g) in reports.items()
    }
    step = float(lrs[1] / lrs[0])
    numbers = {
        "feature scales": "10 to the power U[−1.5, 1.5], shifted by 3 × scale",
        "learning rates": f"{count} log-spaced in [1e-4, 100] (× {step:.2f} a step)",
        "steps": steps,
        "seeds": SEEDS,
        "window (steps)": WINDOW,
    }
    for name in variants:
        numbers[f"{name}: stable edge per seed"] = stable[name].tolist()
        numbers[f"{name}: converging edge per seed"] = converging[name].tolist()
        numbers[f"{name}: largest η stable for every seed"] = best_lr[name]
    numbers.update(bn["numbers"])
    sources = {
        "data normalisation": notes(
            "001",
            "If the data set has input variables that "
            "span very different ranges, then a change "
            "in one dimension will produce a much "
            "larger change in the output",
        ),
        "batch norm": notes("002", "Allows higher learning rates."),
        "layer norm": notes(
            "001",
            "Also in this case, additional learnable "
            "parameters … are introduced (using the same "
            "ideas as for batch normalization)",
        ),
    }
    claims = {}
    for name in ("data normalisation", "batch norm", "layer norm"):
        larger = _ratio(stable[name], stable["none"]) >= 2
        holds, rule = vote(larger)
        claims[name.replace(" ", "_") + "_larger_lr"] = Claim(
            f"with {name} the network is stable at larger learning rates: its stable edge (the "
            f"loss never rises above its start in the first {WINDOW} steps) is at least "
            "twice the unnormalised network's",
            sources[name],
            rule,
            holds,
            f"{tally(larger)}; stable edges {_edges(stable[name], lrs)} against none's "
            f"{_edges(stable['none'], lrs)}",
            SEEDS,
        )
    holds, rule = vote(bn["close"])
    claims["running_averages_match"] = Claim(
        "after minibatch training, batch norm's running mean and variance are within 10 % "
        "(relative norm) of the trained network's statistics over the training split",
        notes(
            "001",
            "a moving average of those factors is kept during the training and "
            "used at inference time",
        ),
        rule,
        holds,
        bn["evidence"],
        SEEDS,
    )
    save(_figure(reports, curves, best_lr, stable, steps), out / "normalization.png")
    return Outcome(
        TITLE,
        NOTES,
        f"Full-batch gradient descent for {steps} steps over {count} learning rates from "
        f"{SEEDS} initialisations per variant. The stable edge is the largest η at and "
        f"below which the loss never rises above its start in the first {WINDOW} steps; the "
        "converging edge, the largest at and below which the run ends below its start. The "
        "unnormalised network's first-layer curvature grows with the square of the largest "
        "input scale (here ≈ 30, offset by 3 × 30), which caps its step; data and batch "
        f"normalisation remove that scale. {bn['summary']}"
        + unconfirmed(
            claims,
            {
                "layer_norm_larger_lr": (
                    "Layer norm rescales each example's pre-activations as a whole, after the "
                    "first "
                    "layer's product: the largest input features still dominate every unit and the "
                    "first layer's weights still see the inputs' scale, so their curvature, which "
                    "caps the step, is unchanged."
                )
            },
        ),
        numbers,
        claims,
        [
            Fig(
                "normalization.png",
                "Left: each variant's stable edge per seed (dots) and "
                "converging edge (crosses), on a log axis; a hollow triangle at the top of the "
                "grid (η = 100) means no rate of the grid failed. Right: the training loss "
                "against step, each variant at the largest η stable for every seed, one line "
                "per seed.",
            )
        ],
    )


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b per seed, a NaN edge (the smallest η failed already) read as 0."""
    return np.nan_to_num(a) / np.where(np.isnan(b), np.inf, b)


def _edges(edges: np.ndarray, lrs: np.ndarray) -> str:
    """Per-seed edges in words; "≥ top" where no rate of the grid failed."""
    return ", ".join(
        "none" if np.isnan(e) else (f"≥ {e:.3g}" if e == lrs[-1] else f"{e:.3g}") for e in edges
    )


def _batch_norm_check(train_set, test_set, quick) -> dict:
    """Minibatch training with batch norm from SEEDS inits and minibatch orders; the running
    averages against the population statistics, and held-out accuracy with each."""
    model = jaxnn.mlp(SIZES, batch_norm=True)
    objective = train.objective(model, losses.softmax_cross_entropy)
    test = tuple(test_set)

    def one_run(hp, key):
        init_key, fit_key = jax.random.split(key)
        params, state = model.init(init_key)
        return train.fit(
            objective,
            params,
            optimizers.sgd(0.05),
            train_set,
            key=fit_key,
            epochs=3 if quick else 10,
            batch_size=64,
            state=state,
        )

    result = sweep.sweep(one_run, sweep.grid(seed=range(SEEDS)), key=jax.random.key(5))

    @jax.jit
    def measure(params, state):
        running = state["batch_norm"][0]
        mean, var = _population_stats(params, train_set.x)
        population = {"batch_norm": [{"mean": mean, "var": var}]}
        return (
            jnp.linalg.norm(running["mean"] - mean) / jnp.linalg.norm(mean),
            jnp.linalg.norm(running["var"] - var) / jnp.linalg.norm(var),
            jnp.mean(jnp.abs(running["mean"] - mean) / jnp.sqrt(var)),
            objective.evaluate(params, state, test)["accuracy"],
            objective.evaluate(params, population, test)["accuracy"],
        )

    err_mean, err_var, in_stds, acc_running, acc_pop = (
        np.asarray(v) for v in jax.vmap(measure)(result.runs.params, result.runs.state)
    )
    close = (err_mean < 0.1) & (err_var < 0.1)
    cost = stats.paired_difference(acc_running, acc_pop)
    return {
        "close": close,
        "evidence": f"{tally(close)}; relative error of the running mean "
        f"{listed(err_mean)}, of the variance {listed(err_var)}",
        "summary": (
            f"Batch norm's running averages (α = 0.9, about 10 minibatches) track the "
            f"population statistics to {err_mean.max():.2g} (mean) and "
            f"{err_var.max():.2g} (variance) in relative norm, but lag the weights: the "
            f"means are off by {in_stds.mean():.2g} of a unit's standard deviation on "
            f"average, and held-out accuracy with them differs from accuracy with the "
            f"training split's statistics by {difference(cost)} (mean over seeds ± "
            f"standard error)."
        ),
        "numbers": {
            "batch norm: relative error of running mean, per seed": err_mean.tolist(),
            "batch norm: relative error of running variance, per seed": err_var.tolist(),
            "batch norm: mean |running mean − mean| in units of the unit's std, "
            "per seed": in_stds.tolist(),
            "batch norm: held-out accuracy with running averages, per seed": acc_running.tolist(),
            "batch norm: held-out accuracy with the training split's statistics, "
            "per seed": acc_pop.tolist(),
        },
    }


def _figure(reports, curves, best_lr, stable, steps) -> Figure:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    names = list(reports)
    for i, name in enumerate(names):
        rep, g = reports[name]
        converging = [sweep.stability_edge(rep.lrs, rep.failed[g, :, s])[0] for s in range(SEEDS)]
        top = rep.lrs[-1]
        offsets = i + np.linspace(-0.2, 0.2, SEEDS)
        for values, marker, label in (
            (stable[name], "o", "stable edge"),
            (np.asarray(converging), "x", "converging edge"),
        ):
            censored = values == top  # no rate of the grid failed: the edge is at least this
            left.plot(
                offsets[~censored],
                values[~censored],
                marker,
                color=f"C{i}",
                ms=6,
                label=label if i == 0 else None,
            )
            left.plot(offsets[censored], values[censored], "^", color=f"C{i}", ms=7, mfc="none")
        for s in range(SEEDS):
            right.plot(
                curves[name][s],
                color=f"C{i}",
                lw=0.9,
                label=f"{name}, η = {best_lr[name]:.3g}" if s == 0 else None,
            )
    left.set_xticks(range(len(names)), names)
    left.set(
        yscale="log",
        ylabel="learning rate η (log scale)",
        title=f"the edges per seed (full batch, {steps} steps)",
    )
    left.legend(fontsize=8, loc="upper left")
    right.set(
        yscale="log",
        xlabel="step",
        ylabel="training loss (log scale)",
        title="each at the largest η stable for every seed",
    )
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle(
        f"Normalisation on badly scaled digits, tanh MLP {'-'.join(map(str, SIZES))}, "
        f"{SEEDS} seeds (notes 001, 002)"
    )
    return fig
