"""Notes 001, 002: learning-rate schedules.

Every schedule of :mod:`jaxnn.schedules` drawn against the step, starting from η₀ and
(for the decaying ones) ending near η₀/100, then used to train a tanh MLP 64-64-10 on
the digits with minibatch SGD (batch 16) and weight decay κ = 10⁻³. With a constant η
the minibatch noise keeps the weights rattling around the minimum at a height that grows
with η; lowering η late lets them settle lower, while a small constant η gets there
slowly. (Weight decay makes the minimum one where the per-example gradients do not all
vanish; without it the digits are fitted exactly and the noise dies out by itself.)
Each schedule runs at η₀ = 0.25, 0.5, 1, 2 and 4 (--quick: 0.5, 1, 2) from 5 seeds (init
and minibatch order) and is compared at its best η₀, chosen by the mean over the seeds, as
the constant η is: like with like. All runs are one vmapped sweep over a schedule index
(picking the schedule with ``lax.switch`` inside the compiled step), η₀ and the seed.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import jaxnn
from experiments.report import (
    Claim,
    Outcome,
    difference,
    lower,
    notes,
    save,
    unconfirmed,
)
from experiments.report import (
    Figure as Fig,
)
from jaxnn import datasets, losses, optimizers, schedules, stats, sweep, train

TITLE = "learning-rate schedules against step, and what they do to training"
NOTES = "001, 002"
COST = 12  # seconds of --quick on 2 cores: parallel runs start the costliest first
SIZES = (64, 64, 10)
LR0S = {False: (0.25, 0.5, 1.0, 2.0, 4.0), True: (0.5, 1.0, 2.0)}  # full, --quick
DECAY = 1e-3  # κ of w ← (1 − ηκ)w − η∂L₀/∂w
BATCH = 16
SEEDS = 5


def _schedules(total: int) -> dict:
    """The schedules for η₀ = 1 (a run scales them by its η₀)."""
    third = max(total // 3, 1)
    return {
        "constant": schedules.constant(1.0),
        "linear → η₀/100": schedules.linear(1.0, 0.01, total),
        "power law (1 + τ/s)⁻²": schedules.power_law(1.0, total / 9, -2.0),
        "exponential → η₀/100": schedules.exponential(1.0, 0.01, total),
        "step ×0.1 every T/3": schedules.step(1.0, 0.1, third),
        "cosine, restarts every T/3": schedules.cosine_restarts(1.0, third, lr_min=0.01),
        "cyclic, 4 cycles": schedules.cyclic(0.01, 1.0, max(total // 8, 1)),
    }


def run(out: Path, quick: bool = False) -> Outcome:
    epochs, lr0s = (4, LR0S[True]) if quick else (80, LR0S[False])
    train_set, test_set = datasets.train_test_split(datasets.digits(), key=jax.random.key(0))
    train_set, test_set, _ = datasets.standardized(train_set, test_set)
    per_epoch = train_set.x.shape[0] // BATCH
    total = epochs * per_epoch
    table = _schedules(total)
    names, fns = list(table), list(table.values())
    model = jaxnn.mlp(SIZES, activation="tanh")
    objective = train.objective(model, losses.softmax_cross_entropy)
    full = tuple(train_set)

    def training_objective(p, state):
        """The objective the weight decay minimises: data loss + (κ/2)Σw² over the weights."""
        return objective.evaluate(p, state, full)["loss"] + 0.5 * DECAY * sum(
            jnp.sum(layer["w"] ** 2) for layer in p
        )

    tracked = train.Hook(
        lambda p: (), lambda h, p, st, t: (h, training_objective(p, st)), per_epoch
    )

    def one_run(hp, key):
        init_key, fit_key = jax.random.split(key)
        params, state = model.init(init_key)
        index = jnp.asarray(hp["schedule"]).astype(jnp.int32)
        lr = lambda t: hp["lr0"] * jax.lax.switch(index, fns, t)
        return train.fit(
            objective,
            params,
            optimizers.sgd(lr, weight_decay=DECAY),
            train_set,
            key=fit_key,
            epochs=epochs,
            batch_size=BATCH,
            state=state,
            hooks={"objective": tracked},
        )

    grid = sweep.grid(schedule=list(range(len(fns))), lr0=list(lr0s), seed=range(SEEDS))
    result = sweep.sweep(one_run, grid, key=jax.random.key(2))
    final = result.reshaped(
        np.asarray(jax.jit(jax.vmap(training_objective))(result.runs.params, result.runs.state))
    )  # (schedule, η₀, seed)
    test_acc = result.reshaped(
        np.asarray(
            jax.jit(jax.vmap(lambda p, st: objective.evaluate(p, st, tuple(test_set))["accuracy"]))(
                result.runs.params, result.runs.state
            )
        )
    )
    curves = result.reshaped(np.asarray(result.runs.history["hooks"]["objective"].record))
    curves = np.concatenate([curves, final[..., None]], axis=-1)  # epochs 0 … E
    own = np.argmin(final.mean(axis=2), axis=1)  # each schedule's best η₀ by the seed mean
    best = final[np.arange(len(fns)), own]  # (schedule, seed)
    numbers = {
        "η₀ tried": list(lr0s),
        "weight decay κ": DECAY,
        "batch": BATCH,
        "epochs": epochs,
        "steps T": total,
        "seeds": SEEDS,
        "sweep seconds (compile + run)": result.compile_seconds + result.seconds,
    }
    for k, name in enumerate(names):
        numbers[f"{name}: best η₀; final training objective per seed"] = [
            lr0s[own[k]],
            best[k].tolist(),
        ]
        numbers[f"{name}: mean final training objective at η₀ = {', '.join(map(str, lr0s))}"] = (
            final[k].mean(axis=1).tolist()
        )
        numbers[f"{name}: held-out accuracy at its best η₀, per seed"] = test_acc[
            k, own[k]
        ].tolist()
    best_results = (
        "the best results are obtained using a larger value for … at the start "
        "of training and then reducing the learning rate over time … "
    )
    sources = {
        "linear → η₀/100": notes("001", best_results + "linear: …"),
        "power law (1 + τ/s)⁻²": notes("001", best_results + "power law: …"),
        "exponential → η₀/100": notes("001", best_results + "exponential decai: …"),
        "step ×0.1 every T/3": notes(
            "002", "We decay the learning as we go along, this helps in converging the network."
        ),
    }
    claims = {}
    for name, source in sources.items():
        k = names.index(name)
        holds, rule, diff = lower(best[k], best[0])
        claims[_key(name)] = Claim(
            f"{_short(name)} at its best η₀ ends at a lower training objective (loss + "
            "weight-decay penalty) than a constant η at its best η₀",
            source,
            f"{rule}; each η₀ chosen from the same grid by the mean over seeds",
            holds,
            f"{best[k].mean():.4g} (η₀ = {lr0s[own[k]]:g}) against {best[0].mean():.4g} "
            f"(constant η = {lr0s[own[0]]:g}); paired difference {difference(diff)}",
            SEEDS,
        )
    steps = np.arange(total)
    rates = np.array([[float(fn(t)) for t in steps] for fn in fns])
    picked = curves[np.arange(len(fns)), own]  # (schedule, seed, epochs + 1)
    save(_figure(names, steps, rates, picked, [lr0s[i] for i in own]), out / "schedules.png")
    mean_lr = {name: lr0s[own[k]] * float(rates[k].mean()) for k, name in enumerate(names)}
    winner = int(np.argmin(best.mean(axis=1)))
    why = {
        _key(name): (
            f"Its mean step over the run at its best η₀ is {mean_lr[name]:.2g}, against the "
            f"constant's {mean_lr[names[0]]:.2g}: it spends much of the run at rates too small to "
            f"make the progress that settling at the end gains back."
        )
        for name in sources
        if mean_lr[name] < mean_lr[names[0]]
    }
    top = len(lr0s) - 1
    return Outcome(
        TITLE,
        NOTES,
        f"{epochs} epochs ({total} steps) of minibatch SGD from {SEEDS} seeds (init and "
        f"minibatch order, the same for every schedule and η₀), every run one vmapped "
        f"sweep. The lowest training objective (mean over seeds) comes from {names[winner]} "
        f"at η₀ = {lr0s[own[winner]]:g}: {best[winner].mean():.4g}, against {best[0].mean():.4g} "
        f"for the best constant η ({lr0s[own[0]]:g}). With a constant η the minibatch noise "
        f"keeps the weights rattling at a height that grows with η; lowering η late lets "
        f"them settle, but only a schedule that keeps η large for most of the run makes "
        f"up for the progress its small late steps forgo. At η₀ = {lr0s[top]:g} the "
        f"constant η ends at {final[0, top].mean():.3g}, the decaying schedules at "
        f"{final[1:, top].mean(axis=1).min():.3g} to {final[1:, top].mean(axis=1).max():.3g}."
        + unconfirmed(claims, why),
        numbers,
        claims,
        [
            Fig(
                "schedules.png",
                "Left: η/η₀ against step for each schedule. Middle: the "
                "training objective (loss on the whole training split plus the weight-decay "
                "penalty, the quantity the claims compare) under each schedule at its best η₀, "
                "mean over seeds with a band of ± one standard error, against epoch (log "
                "scale). Right: its final value, mean ± one standard error; the dotted line is "
                "the constant η's.",
            )
        ],
    )


def _short(name: str) -> str:
    """ "linear decay", "power-law decay", ...: a schedule's name in a sentence."""
    return {"power": "power-law"}.get(name.split(" ")[0], name.split(" ")[0]) + " decay"


def _key(name: str) -> str:
    return name.split(" ")[0] + "_beats_constant"


def _figure(names, steps, rates, curves, lr0s) -> Figure:
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    left, middle, right = fig.subplots(1, 3, width_ratios=(1, 1, 0.9))
    epochs = np.arange(curves.shape[2])
    for k, name in enumerate(names):
        left.plot(steps, rates[k], lw=1.1, color=f"C{k}", label=f"{name} (η₀ = {lr0s[k]:g})")
        s = stats.mean_stderr(curves[k])
        middle.plot(epochs, s.mean, lw=1.1, color=f"C{k}")
        middle.fill_between(epochs, s.mean - s.stderr, s.mean + s.stderr, color=f"C{k}", alpha=0.25)
        end = stats.mean_stderr(curves[k, :, -1])
        right.errorbar(end.mean, k, xerr=end.stderr, fmt="o", color=f"C{k}", capsize=3)
    left.set(
        xlabel="step τ",
        ylabel=r"$\eta_\tau\,/\,\eta_0$ (rate over its start)",
        title="the schedules",
    )
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    middle.set(
        yscale="log",
        xlabel="epochs completed",
        ylabel="training objective (log scale)",
        title="each at its best η₀",
    )
    right.axvline(curves[0, :, -1].mean(), color="C0", ls=":", lw=1)
    right.set_yticks(range(len(names)), [n.split(" ")[0].rstrip(",") for n in names])
    right.xaxis.set_major_locator(MaxNLocator(3))
    right.invert_yaxis()
    right.set(xlabel="final training objective", title="at the end (± s.e.)")
    fig.suptitle(
        f"Schedules on digits, tanh MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, "
        f"weight decay {DECAY:g}, {SEEDS} seeds (notes 001, 002)"
    )
    return fig
