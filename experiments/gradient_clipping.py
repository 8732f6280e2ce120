"""Notes 003: exploding gradients and gradient clipping.

Clipping the global norm, g ← g·min(1, c/‖g‖) (``optimizers.sgd(clip_norm=c)``), caps
the few steps whose gradient is far larger than usual and leaves the others alone, as
long as c sits in the upper tail of the gradient norms. With c below the typical ‖g‖ it
clips every step, and then it is merely a smaller step. Each clipped run below is
therefore paired with an unclipped *control* at the matched effective step, the mean of
η·min(1, c/‖gₜ‖) over the clipped run: what the control cannot do, clipping did. Two
networks on the digits, minibatch SGD (batch 32), five seeds (init and minibatch order):

* **rare explosions**: a ReLU MLP 64-128-128-10 (He init) trained at η = 0.3 on a training
  split in which 1 % of the images have a wrong scale (× 100, as a corrupted scan
  would): a minibatch that holds one gets a gradient hundreds of times the usual. c is
  the 90th percentile of ‖g‖ along a run on the clean split.
* **exploding with depth**: a tanh MLP 64, ten hidden layers of 128, 10, with weights
  N(0, 9/M), three times the LeCun scale, so each layer multiplies a backpropagated
  signal by about 3·√E[tanh'(a)²] > 1 and gradients grow towards the input. At η = 1 it
  is thrown off; it is clipped at the 90th percentile of its own ‖g‖ and at c = 1, below
  every ‖g‖ of the run.

tanh bounds the hidden activations, so the loss of a thrown-off tanh network stays a
(large) finite number: a run is "thrown off" when it diverges or ends (the mean loss of
its last TAIL steps) above where it started.
"""

from __future__ import annotations

import warnings
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
    notes,
    save,
    tally,
    unconfirmed,
    vote,
)
from experiments.report import (
    Figure as Fig,
)
from jaxnn import datasets, initializers, losses, optimizers, plotting, stats, sweep, train

TITLE = "gradient clipping at a percentile of ‖g‖, each clipped run beside a matched control"
NOTES = "003"
COST = 20  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (64,) + (128,) * 10 + (10,)
SCALE = 3.0
SEEDS = 5
PERCENTILE = 90
TAIL = 10  # the end of a run: the mean loss of its last TAIL steps
LR, SAFE_LR = 1.0, 0.1
SMALL_CLIP = 1.0
CORRUPTED, WRONG_SCALE, SPIKE_LR = 0.01, 100.0, 0.3  # share of images, their scale, η


# ---------------------------------------------------------------------------------------
# runs of one model, one per (setting, seed)
# ---------------------------------------------------------------------------------------


def _runner(model, objective, datasets_, test_set, epochs):
    """``runs(lr, clip, data=0)``: one run per seed at step lr[s] clipped at clip[s] (0: not
    clipped) on ``datasets_[data]``, from seed s's init and minibatch order. Every call is
    a sweep over zipped points through one compiled program."""
    xs = jnp.stack([d.x for d in datasets_])
    ys = datasets_[0].y
    accuracy = jax.jit(jax.vmap(lambda p, s: objective.evaluate(p, s, tuple(test_set))["accuracy"]))

    def one_run(hp, key):
        params, state = model.init(jax.random.fold_in(jax.random.key(1), hp["seed"]))
        clip = jnp.where(hp["clip"] > 0, hp["clip"], jnp.inf)
        data = (xs[hp["data"].astype(int)], ys)
        return train.fit(
            objective,
            params,
            optimizers.sgd(hp["lr"], clip_norm=clip),
            data,
            key=key,
            epochs=epochs,
            batch_size=32,
            state=state,
        )

    def runs(lr, clip, data=0):
        points = sweep.zipped(lr=lr, clip=clip, data=np.full(SEEDS, data), seed=range(SEEDS))
        result = sweep.sweep(one_run, points, key=jax.random.key(2))
        loss = np.asarray(result.runs.history["loss"])
        acc = np.asarray(accuracy(result.runs.params, result.runs.state))
        with warnings.catch_warnings():  # a diverged run's tail is all NaN: its end is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            end = np.nanmean(loss[:, -TAIL:], axis=1) / loss[:, 0]
        return {
            "loss": loss,
            "grad": np.asarray(result.runs.history["grad_norm"]),
            "accuracy": acc,
            "thrown": result.diverged | ~(end <= 1),
            "end": end,
        }

    return runs


def _matched(r: dict, lr: float, clip: np.ndarray) -> None:
    """Adds the clipped run's matched effective step and the share of steps clipped."""
    grad = np.where(np.isfinite(r["grad"]), r["grad"], np.inf)
    r["matched"] = np.mean(lr * np.minimum(1.0, clip[:, None] / grad), axis=1)
    r["share"] = np.mean(grad > clip[:, None], axis=1)


def _digits():
    train_set, test_set = datasets.train_test_split(datasets.digits(), key=jax.random.key(0))
    return datasets.standardized(train_set, test_set)[:2]


def _rare(quick: bool) -> dict:
    """The ReLU network on a split with a few images of the wrong scale."""
    train_set, test_set = _digits()
    rows = int(CORRUPTED * train_set.x.shape[0])
    corrupted = datasets.Dataset(train_set.x.at[:rows].multiply(WRONG_SCALE), train_set.y)
    model = jaxnn.mlp((64, 128, 128, 10), activation="relu", init="he")
    objective = train.objective(model, losses.softmax_cross_entropy)
    epochs = 2 if quick else 5
    runs = _runner(model, objective, (train_set, corrupted), test_set, epochs)
    lr, none = np.full(SEEDS, SPIKE_LR), np.zeros(SEEDS)
    clean = runs(lr, none, data=0)
    c = np.percentile(clean["grad"], PERCENTILE, axis=1)
    unclipped, clipped = runs(lr, none, data=1), runs(lr, c, data=1)
    _matched(clipped, SPIKE_LR, c)
    control = runs(clipped["matched"], none, data=1)
    return {
        "c": c,
        "rows": rows,
        "n": int(train_set.x.shape[0]),
        "epochs": epochs,
        "clean": clean,
        "unclipped": unclipped,
        "clipped": clipped,
        "control": control,
    }


def _deep(quick: bool) -> dict:
    """The deep tanh network with gradients that grow towards the input, at η = LR."""
    train_set, test_set = _digits()
    model = jaxnn.mlp(SIZES, init=initializers.scaled("lecun", SCALE))
    objective = train.objective(model, losses.softmax_cross_entropy)
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(1), s))(jnp.arange(SEEDS))
    layer_norms = np.asarray(
        jax.jit(
            jax.vmap(
                lambda k: train.layer_grad_norms(objective, model.init(k)[0], {}, tuple(train_set))
            )
        )(keys)
    )  # (seeds, layers)
    epochs = 1 if quick else 5
    runs = _runner(model, objective, (train_set,), test_set, epochs)
    lr, small = np.full(SEEDS, LR), np.full(SEEDS, SMALL_CLIP)
    unclipped = runs(lr, np.zeros(SEEDS))
    c = np.nanpercentile(unclipped["grad"], PERCENTILE, axis=1)
    clipped, clipped_small = runs(lr, c), runs(lr, small)
    _matched(clipped, LR, c)
    _matched(clipped_small, LR, small)
    control = runs(clipped_small["matched"], np.zeros(SEEDS))
    return {
        "layer_norms": layer_norms,
        "c": c,
        "epochs": epochs,
        "unclipped": unclipped,
        "clipped": clipped,
        "clipped small": clipped_small,
        "control": control,
    }


def run(out: Path, quick: bool = False) -> Outcome:
    rare, deep = _rare(quick), _deep(quick)
    ln = deep["layer_norms"]
    explode = ln[:, 0] >= 2 * ln[:, -2]  # the first hidden layer's against the last's
    acc = {k: rare[k]["accuracy"] for k in ("unclipped", "clipped", "control")}
    beats_unclipped, rule_tamed, d_unclipped = lower(acc["unclipped"], acc["clipped"])
    beats_control, _, d_control = lower(acc["control"], acc["clipped"])
    not_cured = deep["unclipped"]["thrown"] & deep["clipped"]["thrown"]
    smaller = ~deep["clipped small"]["thrown"] & ~deep["control"]["thrown"]
    rules = {
        k: vote(v)[::-1]
        for k, v in (("explode", explode), ("cured", not_cured), ("smaller", smaller))
    }
    rules["tamed"] = (
        f"each paired difference in held-out accuracy: {rule_tamed}",
        beats_unclipped and beats_control,
    )
    r, d = rare, deep
    claims = {
        "gradients_explode": Claim(
            "at this initialisation the deep tanh network's gradient grows towards the "
            "input: the first hidden layer's ‖∂C/∂W‖ is at least twice the last hidden "
            "layer's",
            notes(
                "003",
                "Error gradients can accumlate during an update and results in large gradinets",
            ),
            *rules["explode"],
            f"{tally(explode)}; ‖∂C/∂W¹‖ {listed(ln[:, 0])}, ‖∂C/∂W¹⁰‖ {listed(ln[:, -2])}",
            SEEDS,
        ),
        "clipping_tames_rare_explosions": Claim(
            "where a few minibatches bring exploding gradients, clipping at the 90th "
            "percentile of the usual ‖g‖ keeps training on track: the clipped run's held-out "
            "accuracy is higher than the unclipped run's and than its control's at the "
            "matched effective step",
            notes(
                "003",
                "exploding gradients can make learning unstable. This can be "
                "avoided by using gradient clipping",
            ),
            *rules["tamed"],
            f"held-out accuracy: clipped {listed(acc['clipped'], '.2f')}, unclipped "
            f"{listed(acc['unclipped'], '.2f')}, control {listed(acc['control'], '.2f')} "
            f"(η = {listed(r['clipped']['matched'])}); differences unclipped − clipped "
            f"{difference(d_unclipped, 2)}, control − clipped {difference(d_control, 2)}; end "
            f"/ start loss: unclipped {_ends(r['unclipped'])}, clipped {_ends(r['clipped'])} "
            f"({listed(r['clipped']['share'], '.0%')} of steps clipped at c = "
            f"{listed(r['c'])}), control {_ends(r['control'])}",
            SEEDS,
        ),
        "clipping_is_no_cure_for_a_large_step": Claim(
            f"clipping the largest 10 % of the gradients does not make a step that is too "
            f"large everywhere stable: the deep tanh network at η = {LR:g} is thrown off "
            "clipped as unclipped",
            OWN,
            *rules["cured"],
            f"{tally(not_cured)}; end / start loss: unclipped {_ends(d['unclipped'])}, "
            f"clipped at its 90th percentile {_ends(d['clipped'])}",
            SEEDS,
        ),
        "small_clip_is_a_smaller_step": Claim(
            f"clipping every step (c = {SMALL_CLIP:g}, below every ‖g‖) keeps the deep "
            f"network at η = {LR:g} trainable, and so does the unclipped control at the "
            "matched effective step: such clipping works as a smaller step",
            OWN,
            *rules["smaller"],
            f"{tally(smaller)}; end / start loss: clipped {_ends(d['clipped small'])} "
            f"({listed(d['clipped small']['share'], '.0%')} of steps clipped), control at "
            f"η = {listed(d['clipped small']['matched'])}: {_ends(d['control'])}",
            SEEDS,
        ),
    }
    save(_rare_figure(rare), out / "rare_explosions.png")
    save(_deep_figure(deep), out / "deep_network.png")
    numbers = {
        "corrupted images (× 100) in the training split": rare["rows"],
        "rare explosions: η, epochs": [SPIKE_LR, rare["epochs"]],
        "rare explosions: c per seed (90th percentile of ‖g‖ on the clean split)": rare[
            "c"
        ].tolist(),
        "deep network: init, η, epochs": [f"N(0, {SCALE:g}²/M)", LR, deep["epochs"]],
        "deep network: c per seed (90th percentile of its own ‖g‖)": deep["c"].tolist(),
    }
    for name in ("clean", "unclipped", "clipped", "control"):
        numbers[f"rare explosions, {name}: held-out accuracy per seed"] = rare[name][
            "accuracy"
        ].tolist()
    for name in ("unclipped", "clipped", "clipped small", "control"):
        numbers[f"deep network, {name}: end / start loss per seed"] = deep[name]["end"].tolist()
        numbers[f"deep network, {name}: held-out accuracy per seed"] = deep[name][
            "accuracy"
        ].tolist()
    spikes = np.nanmax(
        np.where(np.isfinite(rare["unclipped"]["grad"]), rare["unclipped"]["grad"], np.nan), axis=1
    )
    return Outcome(
        TITLE,
        NOTES,
        f"Each clipped run is paired with an unclipped control at the matched effective "
        f"step. With {rare['rows']} of {rare['n']} training images at "
        f"the wrong scale, the ReLU network's gradient norm is about "
        f"{np.median(rare['clean']['grad']):.2g} on most minibatches and up to "
        f"{np.nanmax(spikes):.3g} on the few that hold such an image; unclipped, those "
        f"steps throw it off (held-out accuracy {listed(rare['unclipped']['accuracy'], '.2f')}), "
        f"clipped at c = {np.median(rare['c']):.2g} it trains as on the clean split "
        f"({listed(rare['clipped']['accuracy'], '.2f')} against "
        f"{listed(rare['clean']['accuracy'], '.2f')}), while the control, whose mean step "
        f"is almost η, is thrown off in {tally(rare['control']['thrown'])}. The deep tanh "
        f"network at η = "
        f"{LR:g} is different: its step is too large everywhere, not on a few minibatches, "
        "so clipping its top 10 % changes nothing, while clipping every step helps only as "
        "a smaller step would." + unconfirmed(claims),
        numbers,
        claims,
        [
            Fig(
                "rare_explosions.png",
                "The ReLU network on the split with corrupted images, "
                f"η = {SPIKE_LR:g}. Left: ‖g‖ before clipping against step, seed 0, unclipped "
                "(until it diverges) and clipped, with the threshold c. Right: the training "
                "loss, one line per seed, for the unclipped run, the clipped one and the "
                "control at the matched effective step (log scale; a line that stops "
                "diverged).",
            ),
            Fig(
                "deep_network.png",
                "The deep tanh network. Left: the gradient norm of each "
                "layer at initialisation, one line per seed (log scale), growing towards the "
                f"input. Right: the training loss at η = {LR:g}, mean over seeds per step with a "
                "band of ± one standard error (log scale): unclipped, clipped at its 90th "
                "percentile of ‖g‖ and at c = 1, and "
                "the control at c = 1's matched effective step (dashed).",
            ),
        ],
    )


def _ends(r: dict) -> str:
    return ", ".join("diverged" if not np.isfinite(v) else f"{v:.2g}" for v in r["end"])


def _rare_figure(rare) -> Figure:
    fig = Figure(figsize=(11, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(rare["unclipped"]["grad"][0], color="C3", lw=0.8, label="unclipped")
    left.plot(rare["clipped"]["grad"][0], color="C0", lw=0.8, label="clipped")
    left.axhline(rare["c"][0], color="k", ls=":", lw=1, label=f"c = {rare['c'][0]:.3g}")
    left.set(
        yscale="log",
        xlabel="step",
        ylabel="‖g‖ before clipping (log scale)",
        title="gradient norm, seed 0",
    )
    left.legend(fontsize=8, loc="upper right")
    for name, color in (("unclipped", "C3"), ("clipped", "C0"), ("control", "C1")):
        for s in range(SEEDS):
            right.plot(
                rare[name]["loss"][s],
                color=color,
                lw=0.8,
                alpha=0.8,
                label=(name if name != "control" else "control (matched step)") if s == 0 else None,
            )
    right.set(
        yscale="log",
        xlabel="step",
        ylabel="minibatch loss (log scale)",
        title=f"training at η = {SPIKE_LR:g}, every seed",
    )
    right.legend(fontsize=8, loc="upper right")
    fig.suptitle(
        f"ReLU MLP 64-128-128-10 on digits with {CORRUPTED:.0%} of the images "
        f"× {WRONG_SCALE:g} (notes 003)"
    )
    return fig


def _deep_figure(deep) -> Figure:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_layers, ax_loss = fig.subplots(1, 2)
    ln = deep["layer_norms"]
    for s in range(SEEDS):
        ax_layers.plot(np.arange(1, ln.shape[1] + 1), ln[s], "o-", ms=3, lw=0.9)
    ax_layers.set(
        yscale="log",
        xlabel=f"layer ({ln.shape[1]} = output)",
        ylabel=r"$\|\partial C/\partial W^l\|$ (log scale)",
        title="gradient per layer at init, every seed",
    )
    plotting.decimal_log_ticks(ax_layers)
    for name, color, style, label in (
        ("unclipped", "C3", "-", "unclipped"),
        ("clipped", "C0", "-", f"clipped at its p{PERCENTILE}"),
        ("clipped small", "C2", "-", f"clipped at c = {SMALL_CLIP:g}"),
        ("control", "C2", "--", f"control at c = {SMALL_CLIP:g}'s matched step"),
    ):
        s = stats.mean_stderr(deep[name]["loss"])
        ax_loss.plot(s.mean, style, color=color, lw=0.9, label=label)
        ax_loss.fill_between(
            np.arange(s.mean.size), s.mean - s.stderr, s.mean + s.stderr, color=color, alpha=0.2
        )
    ax_loss.set(
        yscale="log",
        xlabel="step",
        ylabel="minibatch loss, mean over seeds",
        title=f"training at η = {LR:g}",
    )
    ax_loss.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.suptitle(
        f"Deep tanh MLP, 10 hidden layers of 128, init N(0, {SCALE:g}²/M), on digits (notes 003)"
    )
    return fig
