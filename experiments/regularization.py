"""Notes 002: L1, L2 and dropout on a small training set.

A tanh MLP 64-100-10 trained on 300 digits (the other 1,497 held out) with minibatch SGD,
five ways: no regularisation; L2 as weight decay κ = λ/n (notes 000's form); inverted
dropout on the hidden layer (erratum, notes 002: divide by the keep probability in
training, nothing at test time); L1 by its subgradient, the penalty (λ₁/n)Σ|w| in the
loss (:func:`jaxnn.losses.l1_penalty`); and L1 by its proximal step, soft-thresholding
w ← sign(w)·max(|w| − ηλ₁/n, 0) after each update (``optimizers.sgd(l1=...)``). The
subgradient step ±ηλ₁/n overshoots zero and leaves weights jittering around it; the
proximal step lands on zero exactly. The five variants run from 5 seeds (init and
minibatch order, shared by the variants), all 25 runs one vmapped sweep.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxnn
from experiments.report import (
    OWN,
    Claim,
    Outcome,
    difference,
    listed,
    lower,
    mean_pm,
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

TITLE = "L1 (subgradient and proximal), L2 and dropout on a small digits training set"
NOTES = "002"
COST = 9  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (64, 100, 10)
N_TRAIN = 300
LR = 0.05
SMALL = 1e-2  # |w| below this counts as a small weight
SEEDS = 5


def run(out: Path, quick: bool = False) -> Outcome:
    epochs = 30 if quick else 300
    train_set, test_set = datasets.train_test_split(
        datasets.digits(), key=jax.random.key(0), test_fraction=1 - N_TRAIN / 1797
    )
    train_set, test_set, _ = datasets.standardized(train_set, test_set)
    n = train_set.x.shape[0]
    l2, l1, rate = 10.0, 3.0, 0.5  # λ, λ₁, dropout rate
    # (weight decay κ, dropout rate, subgradient λ₁, proximal κ₁) of each variant
    variants = {
        "none": (0.0, 0.0, 0.0, 0.0),
        f"L2, λ = {l2:g}": (l2 / n, 0.0, 0.0, 0.0),
        f"dropout {rate:g}": (0.0, rate, 0.0, 0.0),
        f"L1 subgradient, λ₁ = {l1:g}": (0.0, 0.0, l1, 0.0),
        f"L1 proximal, λ₁ = {l1:g}": (0.0, 0.0, 0.0, l1 / n),
    }
    table = np.array(list(variants.values()))
    plain = jaxnn.mlp(SIZES)

    def one(hp, key):
        """Variant ``hp["variant"]``, its numbers picked from the table: all variants and seeds
        are one vmapped program (a zero coefficient or rate leaves its term out)."""
        init_key, fit_key = jax.random.split(key)
        params, state = plain.init(init_key)
        decay, drop, sub, prox = jnp.asarray(table)[hp["variant"].astype(int)]
        objective = train.objective(
            jaxnn.mlp(SIZES, dropout=drop),
            losses.softmax_cross_entropy,
            penalty=lambda p: losses.l1_penalty(p, sub, n),
        )
        return train.fit(
            objective,
            params,
            optimizers.sgd(LR, weight_decay=decay, l1=prox),
            train_set,
            key=fit_key,
            epochs=epochs,
            batch_size=30,
            state=state,
        )

    runs = sweep.sweep(
        one, sweep.grid(variant=range(len(variants)), seed=range(SEEDS)), key=jax.random.key(2)
    )
    # held-out and training metrics at inference: no dropout, no penalty
    evaluate = jax.jit(
        jax.vmap(train.objective(plain, losses.softmax_cross_entropy).evaluate, (0, 0, None))
    )
    tr, te = (
        jax.tree.map(
            lambda a: runs.reshaped(np.asarray(a)),
            evaluate(runs.runs.params, runs.runs.state, tuple(d)),
        )
        for d in (train_set, test_set)
    )  # each (variant, seed)
    weights = runs.reshaped(
        np.concatenate(
            [np.asarray(layer["w"]).reshape(runs.grid.size, -1) for layer in runs.runs.params],
            axis=1,
        )
    )  # (variant, seed, weights)
    gap = tr["accuracy"] - te["accuracy"]
    zeros = np.mean(weights == 0.0, axis=2)  # exact zeros: what the proximal step makes
    small = np.mean(np.abs(weights) < SMALL, axis=2)
    names = list(variants)
    none, l2_name, drop_name, sub_name, prox_name = range(len(names))
    numbers = {
        "training images n": n,
        "held-out images": int(test_set.x.shape[0]),
        "η": LR,
        "epochs": epochs,
        "batch": 30,
        "seeds": SEEDS,
    }
    for k, name in enumerate(names):
        numbers[f"{name}: training / held-out accuracy (means over seeds)"] = [
            float(tr["accuracy"][k].mean()),
            float(te["accuracy"][k].mean()),
        ]
        numbers[f"{name}: accuracy gap per seed"] = gap[k].tolist()
        numbers[f"{name}: training / held-out loss (means over seeds)"] = [
            float(tr["loss"][k].mean()),
            float(te["loss"][k].mean()),
        ]
        numbers[f"{name}: fraction of weights exactly 0, below {SMALL:g} (means)"] = [
            float(zeros[k].mean()),
            float(small[k].mean()),
        ]
    source = notes("002", "We require regularisation to reduce overfitting the neural network.")
    claims = {}
    for key, k in (("l2_narrows_gap", l2_name), ("dropout_narrows_gap", drop_name)):
        holds, rule, d = lower(gap[k], gap[none])
        claims[key] = Claim(
            f"{names[k].split(',')[0]} narrows the gap between training and held-out accuracy",
            source,
            rule,
            holds,
            f"gap {mean_pm(gap[k])} against {mean_pm(gap[none])} without regularisation; "
            f"paired difference {difference(d)}; held-out accuracy "
            f"{mean_pm(te['accuracy'][k])} against {mean_pm(te['accuracy'][none])}",
            SEEDS,
        )
    exact = (zeros[prox_name] > 0.1) & (zeros[sub_name] < 0.01)
    holds, rule = vote(exact)
    claims["proximal_l1_exact_zeros"] = Claim(
        "proximal L1 sets weights exactly to 0 (over 10 % of them); the subgradient form "
        "sets almost none (under 1 %)",
        OWN,
        rule,
        holds,
        f"{tally(exact)}; exact zeros: proximal {listed(zeros[prox_name])}, subgradient "
        f"{listed(zeros[sub_name])}",
        SEEDS,
    )
    more = small[sub_name] > small[none]
    holds, rule = vote(more)
    claims["subgradient_l1_small_weights"] = Claim(
        f"subgradient L1 leaves more weights below |w| < {SMALL:g} than no regularisation",
        OWN,
        rule,
        holds,
        f"{tally(more)}; fraction below {SMALL:g}: subgradient {listed(small[sub_name])}, "
        f"none {listed(small[none])}",
        SEEDS,
    )
    save(_figure(names, tr, te, weights[:, 0], n, epochs), out / "regularization.png")
    return Outcome(
        TITLE,
        NOTES,
        f"Every variant starts from the same weights and sees the same minibatches within a "
        f"seed (batch 30, η = {LR}, {epochs} epochs, {SEEDS} seeds, paired). The weight "
        "statistics cover every weight matrix (biases excluded). L1's subgradient moves a "
        "weight by ±ηλ₁/n each step whatever its size, so small weights oscillate around 0 "
        "instead of reaching it; the proximal step sets them to 0."
        + unconfirmed(
            claims, {"dropout_narrows_gap": _why_dropout(names, tr, te, drop_name, none)}
        ),
        numbers,
        claims,
        [
            Fig(
                "regularization.png",
                "Left: training and held-out accuracy of each variant, "
                "mean over seeds with bars of ± one standard error. Right: histograms of |w| "
                "over all weight matrices, seed 0, on a log axis (exact zeros are counted in "
                "the legend, since a log axis cannot show them).",
            )
        ],
    )


def _why_dropout(names, tr, te, drop, none) -> str:
    """What the run shows when dropout does not narrow the accuracy gap."""
    return (
        f"With dropout the network still reaches training accuracy "
        f"{tr['accuracy'][drop].mean():.3f} and held-out {te['accuracy'][drop].mean():.3f} "
        f"(none: {tr['accuracy'][none].mean():.3f}, {te['accuracy'][none].mean():.3f}); at "
        f"inference it is about as confident as the plain network (training loss "
        f"{tr['loss'][drop].mean():.2g} against {tr['loss'][none].mean():.2g}), so on "
        f"{N_TRAIN} images and 100 tanh units dropout at this rate buys no held-out "
        "accuracy."
    )


def _figure(names, tr, te, weights, n, epochs) -> Figure:
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    x = np.arange(len(names))
    for offset, values, label in (
        (-0.2, tr["accuracy"], "training"),
        (0.2, te["accuracy"], "held-out"),
    ):
        s = stats.mean_stderr(values, axis=1)
        left.bar(x + offset, s.mean, 0.4, yerr=s.stderr, capsize=3, label=label)
    left.set_xticks(x, [k.replace(", ", "\n") for k in names], fontsize=8)
    left.set(ylabel="accuracy", ylim=(0.8, 1.005), title="accuracy (axis from 0.8)")
    left.legend(fontsize=8, loc="lower left")
    bins = np.geomspace(1e-8, float(np.abs(weights).max()), 60)
    for name, w in zip(names, weights):
        right.hist(
            np.abs(w[w != 0]),
            bins=bins,
            histtype="step",
            lw=1.2,
            label=f"{name} ({np.mean(w == 0):.0%} exactly 0)",
        )
    right.axvline(SMALL, color="k", ls=":", lw=0.8)
    right.set(
        xscale="log",
        xlabel="|w| (log scale; dotted: 10⁻²)",
        ylabel="count",
        title="weight magnitudes, seed 0",
    )
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.suptitle(
        f"Regularisation on {n} digits, tanh MLP {'-'.join(map(str, SIZES))}, "
        f"{epochs} epochs, {SEEDS} seeds (notes 002)"
    )
    return fig
