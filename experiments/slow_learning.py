"""Notes 001: a single sigmoid neuron learning to map input 1 to output 0.

a = σ(wx + b), x = 1, y = 0, gradient descent with η = 0.15 from (w, b) = (0.6, 0.9) and
from (2, 2). Quadratic cost C = (a − y)²/2 has ∂C/∂w = (a − y)σ'(z)x: from (2, 2),
z = 4 and σ'(4) ≈ 0.018, so the neuron starts badly wrong *and* learns slowly. The
cross-entropy C = −[y ln a + (1 − y) ln(1 − a)] has ∂C/∂w = (a − y)x: the σ'(z) cancels,
and the worse the start the faster the learning.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

from experiments.report import Claim, Outcome, notes, save
from experiments.report import Figure as Fig
from jaxnn import datasets, losses, optimizers, train

TITLE = "quadratic cost stalls a saturated sigmoid neuron; cross-entropy does not"
NOTES = "001"
COST = 2  # seconds of --quick on 2 cores: parallel runs start the costliest first
LR = 0.15
STARTS = {"(w, b) = (0.6, 0.9)": (0.6, 0.9), "(w, b) = (2, 2)": (2.0, 2.0)}
WINDOW = 50  # epochs in which "slow" is judged


def quadratic(logits, y):
    return losses.quadratic(jax.nn.sigmoid(logits), y)


COSTS = {"quadratic cost": quadratic, "cross-entropy": losses.binary_cross_entropy}


def run(out: Path, quick: bool = False) -> Outcome:
    epochs = 150 if quick else 300
    data = datasets.single_neuron()
    curves, numbers = {}, {"learning rate": LR, "epochs": epochs}
    for cost_name, cost in COSTS.items():
        objective = train.objective(lambda p, x: x @ p[0]["w"] + p[0]["b"], cost)
        for start_name, (w, b) in STARTS.items():
            result = train.fit(
                objective,
                datasets.single_neuron_params(w, b),
                optimizers.sgd(LR),
                data,
                key=jax.random.key(0),
                epochs=epochs,
            )
            loss = np.asarray(result.history["loss"])
            curves[(cost_name, start_name)] = loss
            numbers[f"{cost_name}, {start_name}: cost at epoch 0"] = float(loss[0])
            numbers[f"{cost_name}, {start_name}: cost at epoch {WINDOW}"] = float(loss[WINDOW])
            numbers[f"{cost_name}, {start_name}: final cost"] = float(loss[-1])

    def drop(cost_name):
        loss = curves[(cost_name, "(w, b) = (2, 2)")]
        return 1 - loss[WINDOW] / loss[0]

    q, ce = drop("quadratic cost"), drop("cross-entropy")
    q_good = 1 - (
        curves[("quadratic cost", "(w, b) = (0.6, 0.9)")][WINDOW]
        / curves[("quadratic cost", "(w, b) = (0.6, 0.9)")][0]
    )
    deterministic = "one run per start: no randomness (a fixed start, one example, full batch)"
    claims = {
        "quadratic_slow_from_2_2": Claim(
            "with the quadratic cost, learning from (2, 2) starts slowly: the cost falls by "
            f"less than 10 % in the first {WINDOW} epochs, while from (0.6, 0.9) it falls "
            "by more than half",
            notes(
                "001",
                "at that point the sigmoid function is very flat and so its "
                "derivative is almost zero",
            ),
            deterministic,
            bool(q < 0.1 and q_good > 0.5),
            f"cost fell {q:.1%} from (2, 2) and {q_good:.1%} from (0.6, 0.9) in {WINDOW} epochs",
            1,
        ),
        "cross_entropy_not_slow": Claim(
            f"with cross-entropy, learning from (2, 2) is not slow: the cost falls by more "
            f"than half in the first {WINDOW} epochs",
            notes(
                "001",
                "The cross-entropy cost function solves the slow-learning problem "
                "without changing the activation function",
            ),
            deterministic,
            bool(ce > 0.5),
            f"cost fell {ce:.1%} from (2, 2) in {WINDOW} epochs",
            1,
        ),
    }
    save(_figure(curves, epochs), out / "cost_per_epoch.png")
    return Outcome(
        TITLE,
        NOTES,
        "One sigmoid neuron, input 1, target 0, plain gradient descent with η = 0.15 as in "
        "the notes. The quadratic cost's gradient carries the factor σ'(z), which is tiny "
        "for a saturated neuron, so the badly wrong start (2, 2) hardly moves at first; "
        "cross-entropy's gradient (a − y)x has no such factor.",
        numbers,
        claims,
        [
            Fig(
                "cost_per_epoch.png",
                "Cost against epoch for both starts, quadratic cost "
                "(left) and cross-entropy (right), as in the notes' figures.",
            )
        ],
    )


def _figure(curves: dict, epochs: int) -> Figure:
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, cost_name in zip(axes, COSTS):
        for (name, start), loss in curves.items():
            if name == cost_name:
                ax.plot(np.arange(len(loss)), loss, lw=1.6, label=f"from {start}")
        ax.axvline(WINDOW, color="gray", ls=":", lw=1, label=f"epoch {WINDOW}")
        top = max(float(np.max(c)) for (n, _), c in curves.items() if n == cost_name)
        ax.set(
            xlabel="epoch",
            ylabel="cost",
            title=f"{cost_name}, η = {LR}",
            xlim=(0, epochs),
            ylim=(0, 1.3 * top),
        )  # room above the curves for the legend
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle("A sigmoid neuron learning 1 → 0 (notes 001)")
    return fig
