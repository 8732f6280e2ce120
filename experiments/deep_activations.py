"""Notes 002, 001, 003: what initialisation does to a deep network's activations and
gradients.

A 10-hidden-layer MLP of width 500 (then 10 outputs) on 1,000 inputs of 500 standard
Gaussian features (notes 002's setting), tanh and ReLU, under each initialiser of
:mod:`jaxnn.initializers`, from 5 seeds (weights, inputs and random labels): per-layer
mean and standard deviation of the activations h^l (the notes' figure) and their
histograms, the fraction of saturated tanh units (|h| > 0.99), and per-layer gradient
norms ‖∂C/∂W^l‖ of a softmax cross-entropy. With weights of variance v and fan-in M, the
pre-activation second moment is q_l = M·v·E[(h^(l−1))²]: the std shrinks layer by layer
when M·v·E[h'²] < 1 and saturates tanh when it is ≫ 1
(:func:`jaxnn.model.signal_propagation` gives the wide-layer prediction).

Erratum (notes 001): the notes' ``xavier`` is U[±1/√M], variance 1/(3M), not 1/M; in
tanh's linear range each layer then multiplies the std by 1/√3 ≈ 0.577 (1/√6 ≈ 0.408
for ReLU, which also halves E[h²]).
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
from jaxnn import losses, plotting, stats

TITLE = "per-layer activations and gradients of a 10-layer net under each initialisation"
NOTES = "002, 001, 003"
COST = 12  # seconds of --quick on 2 cores: parallel runs start the costliest first
DEPTH = 10
WIDTHS = {False: 500, True: 200}  # the full pass and --quick
INITS = ("small", "normal", "xavier", "lecun", "glorot", "he")
ACTIVATIONS = ("tanh", "relu")
HISTOGRAMS = (("tanh", "small"), ("tanh", "normal"), ("tanh", "lecun"), ("relu", "he"))
SEEDS = 5
VARIANCES = {"lecun": 1.0, "he": 2.0, "xavier": 1 / 3}  # M·v (fan-in equals fan-out)
RECURSION = 0.05  # the recursion's allowance (finite width: about 0.3 % a layer)
XAVIER = 0.02  # the 1/√3 allowance


def _measure(params, x, y, *, act):
    """Hidden-layer statistics and per-layer ‖∂C/∂W^l‖ (hidden layers and the output)."""
    g = jax.grad(lambda p: losses.softmax_cross_entropy(jaxnn.forward(p, x, act), y))(params)
    return (
        jaxnn.hidden_stats(params, x, act),
        jnp.stack([jnp.linalg.norm(layer["w"]) for layer in g]),
    )


def _activations(params, x, *, act):
    """Every hidden layer's activations on the first 200 inputs: (layers, 200·width)."""
    _, hidden = jaxnn.forward(params, x[:200], act, return_hidden=True)
    return jnp.stack([h.ravel() for h in hidden])


def run(out: Path, quick: bool = False) -> Outcome:
    examples, width = (200 if quick else 1000), WIDTHS[quick]
    sizes = (width,) * (DEPTH + 1) + (10,)
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(0), s))(jnp.arange(SEEDS))
    x, y = jax.jit(
        jax.vmap(
            lambda k: (
                jax.random.normal(jax.random.fold_in(k, 1), (examples, width)),
                jax.random.randint(jax.random.fold_in(k, 2), (examples,), 0, 10),
            )
        )
    )(keys)
    # every seed's weights of one initialiser, stacked; shared by both activations
    params = {
        init: jax.tree.map(
            lambda *w: jnp.stack(w),
            *[jaxnn.init_mlp(jax.random.fold_in(k, 3), sizes, init=init) for k in keys],
        )
        for init in INITS
    }
    stats_, grads, hists = {}, {}, {}
    for act in ACTIVATIONS:
        # one compiled program per activation: the params and data are its arguments
        measure = jax.jit(jax.vmap(functools.partial(_measure, act=act)))
        hidden = jax.jit(functools.partial(_activations, act=act))
        for init in INITS:
            stats_[act, init], grads[act, init] = jax.tree.map(  # (seeds, layers (+ 1))
                np.asarray, measure(params[init], x, y)
            )
            if (act, init) in HISTOGRAMS:
                hists[act, init] = np.asarray(
                    hidden(jax.tree.map(lambda a: a[0], params[init]), x[0])
                )
    std = {k: s.std for k, s in stats_.items()}  # (seeds, layers)
    numbers = {
        "inputs": f"{examples} × {width} standard Gaussian, per seed",
        "depth": DEPTH,
        "width": width,
        "seeds": SEEDS,
    }
    for (act, init), s in stats_.items():
        numbers[f"{act}, {init}: activation std, layers 1 and {DEPTH} (mean over seeds)"] = [
            float(s.std[:, 0].mean()),
            float(s.std[:, -1].mean()),
        ]
        numbers[f"{act}, {init}: ‖∂C/∂W‖, layers 1 and {DEPTH} (mean over seeds)"] = [
            float(grads[act, init][:, 0].mean()),
            float(grads[act, init][:, DEPTH - 1].mean()),
        ]
    claims = _claims(stats_, grads, std, width)
    save(_std_figure(stats_, grads, width), out / "mean_std_gradients.png")
    save(_hist_figure(hists), out / "histograms.png")
    g_normal = grads["tanh", "normal"][:, 0].mean()
    g_lecun = grads["tanh", "lecun"][:, 0].mean()
    return Outcome(
        TITLE,
        NOTES,
        f"One forward and backward pass at initialisation (no training), {examples} inputs, "
        f"{SEEDS} seeds (weights, inputs and labels), width M = {width}. small shrinks every "
        f"layer by √M·0.01 = {math.sqrt(width) * 0.01:.2g} (tanh) and the signal is gone by "
        f"layer 5; N(0, 1) makes pre-activations of std ≈ √M ≈ {math.sqrt(width):.0f}, "
        f"pinning tanh at ±1 (and blowing ReLU up by ≈ √(M/2) = {math.sqrt(width / 2):.0f} a "
        "layer); lecun and glorot (equal here, N = M) decay only slowly under tanh, "
        f"as the variance recursion predicts; he holds ReLU steady. The first layer's "
        f"gradient is {g_normal:.2g} under tanh with N(0, 1) against {g_lecun:.2g} with "
        "lecun."
        + unconfirmed(
            claims,
            {
                "normal_gradients_vanish": (
                    "Saturation does not make the gradients vanish here: tanh' ≈ 0 for most units, "
                    f"but the weights are N(0, 1) with fan-in {width}, so each layer multiplies a "
                    f"backpropagated signal by about √{width} · √E[tanh'(a)²] ≫ 1; "
                    "the unsaturated few "
                    "of the units carries it, and the gradient grows towards the input (it "
                    "explodes)."
                )
            },
        ),
        numbers,
        claims,
        [
            Fig(
                "mean_std_gradients.png",
                "The notes' view, per hidden layer, one line per "
                "initialiser (means over seeds with bars of ± one standard error, mostly "
                "smaller than the markers): the activations' mean (left) and standard "
                "deviation (middle, log "
                "scale; the variance recursion's prediction, dotted, lies under the measured "
                "lines of lecun, glorot, he and xavier), and the gradient norm "
                "‖∂C/∂Wˡ‖ (right, log scale; layer 11 is the output), for tanh (top) and ReLU "
                "(bottom).",
            ),
            Fig(
                "histograms.png",
                "Histograms of every hidden layer's activations (columns: "
                "layers 1 to 10; each panel has its own horizontal range, printed under it) "
                "for four telling cases: tanh with small weights (collapse to 0), with N(0, 1) "
                "(saturation at ±1), with lecun (alive), and ReLU with he (steady: half the "
                "units at 0, the rest spread over the same range in every layer); seed 0.",
            ),
        ],
    )


def _claims(stats_, grads, std, width) -> dict:
    small = {a: std[a, "small"][:, -1] / std[a, "small"][:, 0] for a in ACTIVATIONS}
    centred = np.all(np.abs(stats_["tanh", "small"].mean) < stats_["tanh", "small"].std, axis=1)
    collapse = (small["tanh"] < 1e-3) & (small["relu"] < 1e-3) & centred
    vanish = np.all(
        grads["tanh", "small"][:, :DEPTH] < 1e-3 * grads["tanh", "lecun"][:, :DEPTH], axis=1
    )
    saturated = stats_["tanh", "normal"].saturated.min(axis=1) > 0.5
    normal_vanish = grads["tanh", "normal"][:, 0] < grads["tanh", "lecun"][:, 0]
    recursion = {}
    for init, mv in (("lecun", 1.0), ("glorot", 1.0)):  # glorot's 2/(M + N) = 1/M here
        predicted = jaxnn.model.signal_propagation(DEPTH, width, mv / width, "tanh").std
        recursion[init] = np.max(np.abs(std["tanh", init] / predicted - 1), axis=1)
    follows = (recursion["lecun"] < RECURSION) & (recursion["glorot"] < RECURSION)
    he = stats_["relu", "he"].pre_second_moment
    he_ratio = he[:, -1] / he[:, 0]
    he_summary = stats.mean_stderr(he_ratio)
    he_holds = bool(abs(he_summary.mean - 1) < 2 * he_summary.stderr)
    xavier = {
        a: np.exp(np.mean(np.diff(np.log(std[a, "xavier"][:, DEPTH // 2 - 1 :]), axis=1), axis=1))
        for a in ACTIVATIONS
    }  # geometric per-layer ratio
    xavier_ok = np.abs(xavier["tanh"] * np.sqrt(3) - 1) < XAVIER
    rules = {
        k: vote(v)
        for k, v in (
            ("collapse", collapse),
            ("vanish", vanish),
            ("saturated", saturated),
            ("normal", normal_vanish),
            ("follows", follows),
            ("xavier", xavier_ok),
        )
    }
    return {
        "small_collapses": Claim(
            "with small (N(0, 0.01²)) weights the activation std collapses: layer 10's is "
            "below 10⁻³ of layer 1's, for tanh and ReLU, while the mean stays within one "
            "std of zero",
            notes(
                "002",
                "the mean of the layers remains close to zero but the standard "
                "deviation shrinks progressively",
            ),
            rules["collapse"][1],
            rules["collapse"][0],
            f"{tally(collapse)}; std ratio tanh {listed(small['tanh'])}, ReLU "
            f"{listed(small['relu'])}",
            SEEDS,
        ),
        "small_gradients_vanish": Claim(
            "with small weights the gradients vanish: every hidden layer's ‖∂C/∂W‖ is below "
            "10⁻³ of its value under lecun (tanh)",
            notes(
                "002",
                "the gradients will be very close to zero . Leading to the "
                "vanishing gradient problem.",
            ),
            rules["vanish"][1],
            rules["vanish"][0],
            f"{tally(vanish)}; largest ratio to lecun's "
            f"{np.max(grads['tanh', 'small'][:, :DEPTH] / grads['tanh', 'lecun'][:, :DEPTH]):.2g}",
            SEEDS,
        ),
        "normal_saturates_tanh": Claim(
            "with N(0, 1) weights most tanh units saturate (|h| > 0.99) in every layer",
            notes("002", "The neuron becomes saturated. Either we'll get -1 or +1 ."),
            rules["saturated"][1],
            rules["saturated"][0],
            f"{tally(saturated)}; smallest saturated fraction over layers "
            f"{listed(stats_['tanh', 'normal'].saturated.min(axis=1))}",
            SEEDS,
        ),
        "normal_gradients_vanish": Claim(
            "with N(0, 1) weights and tanh the gradients vanish: the first layer's ‖∂C/∂W‖ "
            "is smaller than under lecun",
            notes("002", "When tanh is saturated, the gradients turn to zero"),
            rules["normal"][1],
            rules["normal"][0],
            f"{tally(normal_vanish)}; first layer's ‖∂C/∂W‖ "
            f"{listed(grads['tanh', 'normal'][:, 0])} against lecun's "
            f"{listed(grads['tanh', 'lecun'][:, 0])}",
            SEEDS,
        ),
        "lecun_follows_the_recursion": Claim(
            "lecun and glorot keep tanh's variance only approximately (tanh is not linear): "
            "the activation std decays slowly layer by layer, as the variance recursion "
            "q′ = M·v·E[tanh²(a)], a ~ N(0, q) from one layer to the next, predicts, within "
            f"{RECURSION:.0%} at every layer",
            notes(
                "002",
                "In short, we want to maintain the same variance in the output and "
                "input. Problems: - Assumes linear activation.",
            ),
            rules["follows"][1],
            rules["follows"][0],
            f"{tally(follows)}; largest relative gap to the recursion: lecun "
            f"{listed(recursion['lecun'])}, glorot {listed(recursion['glorot'])}; std at "
            f"layer {DEPTH} / layer 1: "
            f"{listed(std['tanh', 'lecun'][:, -1] / std['tanh', 'lecun'][:, 0])}",
            SEEDS,
        ),
        "he_holds_relu": Claim(
            "he keeps ReLU pre-activations' E[a²] constant from layer 1 to 10: the ratio's "
            "mean over seeds is 1 within two standard errors",
            notes(
                "001",
                "The main idea in He initialization is to keep the variance "
                "constant between layers",
            ),
            f"|mean ratio − 1| < 2 standard errors over {SEEDS} seeds",
            he_holds,
            f"E[a²] layer 10 / layer 1 {listed(he_ratio)}: {he_summary.mean:.3f} ± "
            f"{he_summary.stderr:.2g}",
            SEEDS,
        ),
        "xavier_shrinks_by_sqrt3": Claim(
            "the notes' xavier U[±1/√M] shrinks tanh activations by 1/√3 = 0.577 a layer "
            f"(within {XAVIER:.0%}: tanh is linear for such small values)",
            notes("001", "Xavier initialization: …"),
            rules["xavier"][1],
            rules["xavier"][0],
            f"{tally(xavier_ok)}; measured {listed(xavier['tanh'])} a layer for tanh "
            f"({listed(xavier['relu'])} for ReLU, against 1/√6 = {1 / math.sqrt(6):.3f})",
            SEEDS,
        ),
    }


def _std_figure(stats_, grads, width) -> Figure:
    fig = Figure(figsize=(11, 7), layout="constrained")
    axes = fig.subplots(2, 3)
    layers = np.arange(1, DEPTH + 1)
    for row, act in enumerate(ACTIVATIONS):
        ax_mean, ax_std, ax_grad = axes[row]
        for i, init in enumerate(INITS):
            s = stats_[act, init]
            for ax, x, values in (
                (ax_mean, layers, s.mean),
                (ax_std, layers, s.std),
                (ax_grad, np.arange(1, DEPTH + 2), grads[act, init]),
            ):
                m = stats.mean_stderr(values)
                ax.errorbar(
                    x, m.mean, yerr=m.stderr, fmt="o-", ms=3, capsize=2, color=f"C{i}", label=init
                )
            if init in VARIANCES:
                predicted = jaxnn.model.signal_propagation(
                    DEPTH, width, VARIANCES[init] / width, act
                ).std
                ax_std.plot(layers, predicted, ":", color=f"C{i}", lw=1.5)
        if act == "tanh":  # centred: on the scale of tanh's range the means sit at 0
            ax_mean.set(ylim=(-1, 1), ylabel=r"mean of $h^l$")
        else:  # ReLU's outputs are positive: their mean follows the std
            ax_mean.set(yscale="log", ylabel=r"mean of $h^l$ (log scale)")
        ax_mean.set(xlabel="hidden layer l", title=f"{act}: mean")
        ax_std.set(
            yscale="log",
            xlabel="hidden layer l",
            ylabel=r"std of $h^l$ (log scale)",
            title=f"{act}: standard deviation",
        )
        ax_grad.set(
            yscale="log",
            xlabel="layer l (11 = output)",
            ylabel=r"$\|\partial C/\partial W^l\|$ (log scale)",
            title=f"{act}: gradient norm",
        )
    axes[0, 1].legend(
        fontsize=8, ncol=2, loc="lower left", title="dotted: recursion", title_fontsize=8
    )
    fig.suptitle(
        f"{DEPTH} hidden layers of width {width} at initialisation, {SEEDS} seeds "
        "(notes 002, 001, 003)"
    )
    return fig


def _hist_figure(hists) -> Figure:
    fig = Figure(figsize=(11, 5.6))  # a fixed grid: constrained layout is slow on 40 panels
    axes = fig.subplots(len(hists), DEPTH)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.05, top=0.9, wspace=0.12, hspace=0.45)
    colors = plotting.layer_colors(DEPTH)
    for r, (row, ((act, init), layers)) in enumerate(zip(axes, hists.items())):
        for l, (ax, h) in enumerate(zip(row, layers)):
            hi = float(np.abs(h).max()) or 1.0
            low = -hi if act == "tanh" else 0.0
            ax.hist(h, bins=np.linspace(low, hi, 41), color=colors[l], histtype="stepfilled")
            ax.set_yticks([])
            ax.set_xticks([])
            ax.set_xlabel(f"±{hi:.2g}" if act == "tanh" else f"0 to {hi:.2g}", fontsize=7)
            if l == 0:
                ax.set_ylabel(f"{act}, {init}", fontsize=8)
            if r == 0:
                ax.set_title(f"layer {l + 1}", fontsize=8)
    fig.suptitle(
        "Activations h of each hidden layer (seed 0): every panel spans its own layer's range"
    )
    return fig
