"""Notes 000: the weighted input z of a neuron with 1,000 inputs equal to 1.

z = Σⱼ wⱼxⱼ + b with every xⱼ = 1. With wⱼ, b ~ N(0, 1), Var z = 1000 + 1, so z has
std √1001 ≈ 31.6 and a tanh unit is almost always saturated; with wⱼ ~ N(0, 1/1000) and
b ~ N(0, 1), Var z = 1000 · (1/1000) + 1 = 2, std √2, and most units stay in tanh's
sensitive range. The notes' point is the slope: a weight's update is proportional to
tanh'(z) = 1 − tanh²(z), whose mean over z ~ N(0, σ²) is E[1 − tanh²(σu)], u ~ N(0, 1),
computed here by numerical integration and compared with the sample. Each neuron of a
1000-input layer is one sample; each of 5 seeds draws its own layer.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments.report import Claim, Outcome, notes, save, tally, vote
from experiments.report import Figure as Fig
from jaxnn import initializers

TITLE = "distribution of a neuron's weighted input and of tanh' under N(0, 1) and N(0, 1/n)"
NOTES = "000"
COST = 5  # seconds of --quick on 2 cores: parallel runs start the costliest first
INPUTS = 1000
SATURATION = 0.99  # |tanh z| above this counts as saturated
SEEDS = 5
SIGMAS = 4.0  # a sample statistic must lie within this many standard errors


def expected_slope(std: float) -> float:
    """E[1 − tanh²(z)] for z ~ N(0, std²) = ∫ sech²(z) N(z; 0, std²) dz, by the trapezoid
    rule on 200,001 points over |z| ≤ min(40, 12·std) (beyond, sech² < 10⁻³⁴ or the density
    < 10⁻³¹): both the narrow sech² and a narrow density are resolved."""
    half = min(40.0, 12.0 * std)
    z = np.linspace(-half, half, 200_001)
    density = np.exp(-0.5 * (z / std) ** 2) / (std * math.sqrt(2 * math.pi))
    return float(np.trapezoid((1 - np.tanh(z) ** 2) * density, z))


def run(out: Path, quick: bool = False) -> Outcome:
    units = 2000 if quick else 10000
    cases = {
        "N(0, 1) weights": ("normal", math.sqrt(INPUTS + 1)),
        "N(0, 1/1000) weights": ("lecun", math.sqrt(2.0)),
    }
    zs = {label: [] for label in cases}
    for seed in range(SEEDS):
        keys = jax.random.split(jax.random.key(seed), 3)
        bias = jax.random.normal(keys[2], (units,))
        for k, (label, (init, _)) in enumerate(cases.items()):
            w = initializers.get(init)(keys[k], (INPUTS, units))
            zs[label].append(np.asarray(jnp.sum(w, axis=0) + bias, np.float64))  # x = 1
    numbers = {"neurons per seed": units, "seeds": SEEDS}
    claims, shown = {}, {}
    for label, (_, predicted) in cases.items():
        z = np.stack(zs[label])  # (seeds, units)
        std = z.std(axis=1)
        slope = 1 - np.tanh(z) ** 2
        mean_slope = slope.mean(axis=1)
        slope_se = slope.std(axis=1, ddof=1) / math.sqrt(units)
        predicted_slope = expected_slope(predicted)
        std_tol = SIGMAS / math.sqrt(2 * units)  # the sample std's relative standard error
        std_ok = np.abs(std / predicted - 1) < std_tol
        slope_ok = np.abs(mean_slope - predicted_slope) < SIGMAS * slope_se
        saturated = np.mean(np.abs(np.tanh(z)) > SATURATION, axis=1)
        shown[label] = (
            z[0],
            predicted,
            float(saturated[0]),
            predicted_slope,
            (float(std.min()), float(std.max())),
        )
        numbers[f"{label}: std of z per seed (predicted {predicted:.4g})"] = std.tolist()
        numbers[f"{label}: mean tanh'(z) per seed (predicted {predicted_slope:.4g})"] = (
            mean_slope.tolist()
        )
        numbers[f"{label}: fraction of tanh units with |tanh z| > {SATURATION}, per seed"] = (
            saturated.tolist()
        )
        key = "normal" if "1)" in label else "scaled"
        holds, rule = vote(std_ok)
        quote = (
            "will be the sum of 1001 iid standard normal variables"
            if key == "normal"
            else "which is a lot narrower than our distribution before"
        )
        claims[f"std_{key}"] = Claim(
            f"with {label}, std z = {predicted:.4g}",
            notes("000", quote),
            f"{rule}, each within {SIGMAS:g} standard errors ({std_tol:.1%}) of the prediction",
            bool(holds),
            f"{tally(std_ok)}: measured {std.min():.4g} to {std.max():.4g} over {units} "
            f"neurons each",
            SEEDS,
        )
        holds, rule = vote(slope_ok)
        quote = (
            "the derivative of the activation function will be very close to zero!"
            if key == "normal"
            else "there is a lot smaller chance intialising at values "
            "where the derivative of the activation function is close to …"
        )
        claims[f"slope_{key}"] = Claim(
            f"with {label}, the slope tanh'(z) = 1 − tanh²(z) that scales every weight update "
            f"averages E[1 − tanh²(z)] = {predicted_slope:.3g} (z ~ N(0, {predicted**2:.4g}))",
            notes("000", quote),
            f"{rule}, each sample mean within {SIGMAS:g} of its standard errors of the prediction",
            bool(holds),
            f"{tally(slope_ok)}: sample means {mean_slope.min():.3g} to {mean_slope.max():.3g}; "
            f"{saturated.mean():.1%} of units saturated (|tanh z| > {SATURATION})",
            SEEDS,
        )
    save(_figure(shown), out / "z_histograms.png")
    normal, scaled = (shown[label][3] for label in cases)
    return Outcome(
        TITLE,
        NOTES,
        f"A neuron with {INPUTS} inputs equal to 1: with standard normal weights the "
        f"weighted input z spreads over ±{3 * math.sqrt(INPUTS + 1):.0f} and nearly every "
        f"tanh unit saturates, so the mean slope tanh'(z), the factor in every weight "
        f"update, is {normal:.3g}; scaling the weights' variance by 1/{INPUTS} brings the "
        f"std down to √2 (the bias's variance of 1 included) and the mean slope up to "
        f"{scaled:.3g}, {scaled / normal:.0f} times larger.",
        numbers,
        claims,
        [
            Fig(
                "z_histograms.png",
                "Left: histograms of z = Σ w + b over the neurons of seed 0 "
                "for both initialisations on one axis (log density), with the normal densities "
                "of the predicted std (dashed); the band marks |tanh z| < 0.99. Right: the "
                "distribution of the slope tanh'(z) = 1 − tanh²(z) over the same neurons, with "
                "its predicted mean (dotted).",
            )
        ],
    )


def _figure(shown: dict) -> Figure:
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    wide = max(v[1] for v in shown.values())  # the wider predicted std
    for (label, (z, std, saturated, slope, spread)), color in zip(
        shown.items(), ("tab:red", "tab:green")
    ):
        left.hist(
            z,
            bins=np.linspace(-4 * std, 4 * std, 81),
            density=True,
            color=color,
            alpha=0.5,
            label=f"{label}: {saturated:.0%} saturated; std {spread[0]:.3g} to "
            f"{spread[1]:.3g} over {SEEDS} seeds",
        )
        grid = np.linspace(-4 * wide, 4 * wide, 2000)
        left.plot(
            grid,
            np.exp(-0.5 * (grid / std) ** 2) / (std * math.sqrt(2 * math.pi)),
            "--",
            color=color,
            lw=1,
            label=f"N(0, {std:.3g}²) predicted",
        )
        right.hist(
            1 - np.tanh(z) ** 2,
            bins=np.linspace(0, 1, 51),
            density=True,
            color=color,
            alpha=0.5,
            label=label,
        )
        right.axvline(slope, color=color, ls=":", lw=1.5, label=f"predicted mean {slope:.3g}")
    left.axvspan(-2.647, 2.647, color="0.6", alpha=0.25, label="|tanh z| < 0.99")
    left.set(
        yscale="log",
        ylim=(1e-5, 1),
        xlabel="weighted input z",
        ylabel="density (log scale)",
        title="z on a shared axis",
    )
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    right.set(
        yscale="log",
        xlabel="slope tanh'(z) = 1 − tanh²(z)",
        ylabel="density (log scale)",
        title="the slope every update is scaled by",
    )
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.suptitle(f"z = Σ wⱼ·1 + b for {INPUTS} inputs equal to 1 (notes 000)")
    return fig
