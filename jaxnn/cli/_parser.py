"""The command line: one sub-parser per command, with checked option types."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jaxnn import (
    activations,
    initializers,
    optimizers,
    schedules,
    sweep,
)
from jaxnn.cli._common import (
    _EXACT_LIMIT,
    DATASETS,
    LOSSES,
)

__all__ = ["DESCRIPTION", "build_parser"]

DESCRIPTION = """\
jaxnn train trains a model on a built-in dataset; jaxnn sweep trains it at every point of
a grid of hyperparameters as one compiled program; jaxnn hessian takes one to a minimum
and analyses its exact Hessian (jaxnn COMMAND --help).

Every run writes results.json (the settings and the key numbers) and figures into --out.
Bad option values end the command with one line naming the option, exit 2."""


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _keywords(text: str) -> dict[str, float]:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE pairs, got {item!r}")
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {value!r}") from None
        out[name.strip()] = int(number) if number.is_integer() and "." not in value else number
    return out


class _Parser(argparse.ArgumentParser):
    """Reports a bad option in one line (no usage block) and exits with status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxnn", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "train",
        help="train an MLP on a built-in dataset",
        description="Train an MLP on a built-in dataset; all steps run in one "
        "compiled program. Writes results.json and training.png.",
    )
    _data_options(p, "digits")
    model = _model_options(p, (128,), "relu", "he")
    model.add_argument("--bias-init", choices=("zeros", "small", "normal"), default="zeros")
    model.add_argument("--batch-norm", action="store_true", help="batch-normalise hidden layers")
    model.add_argument("--layer-norm", action="store_true", help="layer-normalise hidden layers")
    model.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="probability of dropping a hidden unit in training, in [0, 1)",
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument(
        "--loss",
        choices=LOSSES,
        default="cross_entropy",
        help="cross_entropy: softmax log-likelihood; quadratic: "
        "1/2 ||sigmoid(a) - one_hot(y)||^2 (the slow-learning cost)",
    )
    opt.add_argument("--optimizer", choices=optimizers.NAMES, default="momentum")
    opt.add_argument("--lr", type=float, default=0.05, help="learning rate η (default: 0.05)")
    opt.add_argument(
        "--mu", "--momentum", type=float, default=0.9, help="momentum μ for momentum/nesterov"
    )
    opt.add_argument(
        "--schedule",
        choices=schedules.NAMES,
        default="constant",
        help="learning-rate schedule; --lr is its starting (cyclic: peak) rate",
    )
    opt.add_argument(
        "--schedule-args",
        type=_keywords,
        default={},
        help="the schedule's other arguments, e.g. 'factor=0.5,every=200'",
    )
    opt.add_argument("--l2", type=float, default=0.0, help="λ of the penalty λ/(2n) Σ w²")
    opt.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="decay coefficient κ in w <- (1 - η κ) w - η g (weights only)",
    )
    opt.add_argument("--l1", type=float, default=0.0, help="proximal L1 strength κ₁")
    opt.add_argument("--clip-norm", type=float, default=None, help="clip ‖g‖ to this norm")
    opt.add_argument("--epochs", type=int, default=20)
    opt.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="minibatch size; 0 for full-batch gradient descent",
    )
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--out",
        type=Path,
        default=Path("results/train"),
        help="output folder (default: %(default)s)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        metavar="PATH",
        help="save the run to PATH (atomically) every --checkpoint-every steps and at the end",
    )
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="K",
        help="steps between checkpoints (default: only at the end)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from --checkpoint if it exists (same settings and seed): the result "
        "is bit for bit the uninterrupted run's",
    )
    p.set_defaults(subparser=p, command="train")
    _sweep_parser(sub)
    _hessian_parser(sub)
    return parser


def _model_options(
    p: argparse.ArgumentParser, hidden: tuple[int, ...], activation: str, init: str, note: str = ""
) -> argparse._ArgumentGroup:
    """The MLP's --hidden, --activation and --init, with this command's defaults."""
    model = p.add_argument_group("model")
    model.add_argument(
        "--hidden",
        type=_widths,
        default=hidden,
        help=f"hidden widths, comma-separated (default: {','.join(map(str, hidden))}{note})",
    )
    model.add_argument("--activation", choices=activations.NAMES, default=activation)
    model.add_argument(
        "--init",
        choices=initializers.NAMES,
        default=init,
        help="weight initialiser (default: %(default)s)",
    )
    return model


def _data_options(p: argparse.ArgumentParser, default: str) -> None:
    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        choices=DATASETS,
        default=default,
        help="digits: 1,797 8x8 images; breast_cancer, wine, iris: tabular sets (all "
        "bundled with scikit-learn); mnist1d: 40-sample 1-D digits (needs jaxnn[data]); "
        "moons, spirals: generated 2-D problems (default: %(default)s)",
    )
    data.add_argument("--n", type=int, default=600, help="examples for mnist1d/moons/spirals")
    data.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="held-out share of the data (default: %(default)s)",
    )


def _values(log: bool):
    """An argparse type for a sweep axis: 'LOW:HIGH:NUM' (log-spaced when ``log``, else
    evenly spaced) or comma-separated numbers."""

    def parse(text: str) -> list[float]:
        try:
            if text.count(":") == 2:
                low, high, num = text.split(":")
                low, high, num = float(low), float(high), int(num)
                if log:
                    return sweep.log_range(low, high, num).tolist()
                if num < 1 or high < low:
                    raise ValueError(f"LOW:HIGH:NUM needs NUM >= 1 and HIGH >= LOW, got {text!r}")
                return np.linspace(low, high, num).tolist()
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(
                f"expected LOW:HIGH:NUM or comma-separated numbers, got {text!r}"
                + (
                    f" ({str(e).splitlines()[0]})"
                    if "could not convert" not in str(e) and "invalid literal" not in str(e)
                    else ""
                )
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
        return values

    return parse


def _sweep_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="train at every point of a hyperparameter grid, as one program",
        description="Train an MLP at every point of a product grid of learning rates "
        "(and momenta, weight decays, dropout rates, seeds), all runs vmapped "
        "in one compiled program and sharded over the devices (on a CPU, the "
        "host split into 8 devices per core). Finds two edges per group: the "
        "largest stable η (the loss never rises above its start within the "
        "first --window steps), compared with 2/λmax (2(1+μ)/λmax with "
        "momentum) of the exact Hessian at the start, and the largest η that "
        "still converges (ends below its start). Writes results.json and "
        "sweep.png.",
    )
    _data_options(p, "digits")
    _model_options(p, (32,), "relu", "he")
    axes = p.add_argument_group(
        "grid",
        "each axis: LOW:HIGH:NUM (NUM values, log-spaced for --lr, evenly spaced "
        "otherwise) or comma-separated values; the grid is their product",
    )
    axes.add_argument(
        "--lr",
        type=_values(log=True),
        default=sweep.log_range(1e-3, 10.0, 32).tolist(),
        help="learning rates η (default: 1e-3:10:32)",
    )
    axes.add_argument(
        "--mu",
        "--momentum",
        type=_values(log=False),
        default=None,
        help="momenta μ (heavy ball; with --optimizer sgd switches to momentum)",
    )
    axes.add_argument(
        "--weight-decay",
        type=_values(log=False),
        default=None,
        help="decay coefficients κ in w <- (1 - η κ) w - η g (weights only)",
    )
    axes.add_argument(
        "--dropout",
        type=_values(log=False),
        default=None,
        help="dropout rates of the hidden units, each in [0, 1)",
    )
    axes.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="seeds per point: a different init and minibatch order each",
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--loss", choices=LOSSES, default="cross_entropy")
    opt.add_argument("--optimizer", choices=optimizers.NAMES, default="sgd")
    opt.add_argument("--steps", type=int, default=200, help="steps per run (default: 200)")
    opt.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="minibatch size; 0 (default) for full-batch gradient descent, "
        "where 2/λmax is the stability threshold",
    )
    opt.add_argument(
        "--window",
        type=int,
        default=None,
        help="steps in which a stable run's loss never rises above its start "
        "(default: the whole run)",
    )
    opt.add_argument(
        "--lambda-max",
        default="auto",
        help="λmax for the thresholds: a number, 'none', or 'auto' (default): "
        "the exact Hessian's at the start when the model has at most "
        f"{_EXACT_LIMIT:,} parameters",
    )
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="runs per compiled call (default: from the memory budget)",
    )
    run.add_argument(
        "--devices",
        type=int,
        default=None,
        help="run XLA:CPU as this many devices (default: 8 per core, at most 64)",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=Path("results/sweep"),
        help="output folder (default: %(default)s)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(subparser=p, command="sweep")


def _hessian_parser(sub) -> None:
    p = sub.add_parser(
        "hessian",
        help="exact Hessian spectrum and convergence-rate check at a minimum",
        description="Train a tanh MLP to a minimum of softmax cross-entropy + (c/2)‖θ‖² "
        "(Adam, then Newton steps on the exact Hessian), or load one; print "
        "λmin, λmax, κ and the learning-rate thresholds; run gradient descent "
        "from a small perturbation and compare each eigendirection's observed "
        "rate with 1 − ηλ. Writes results.json, minimum.ckpt, spectrum.png, "
        "rates.png and directions.png.",
    )
    _data_options(p, "moons")
    p.set_defaults(n=200)
    model = _model_options(
        p, (8, 8), "tanh", "lecun", note="; keep the parameter count to a few thousand"
    )
    model.add_argument(
        "--l2",
        type=float,
        default=1e-2,
        help="c in + (c/2)‖θ‖² over every parameter, biases included: "
        "with c > 0 the minimum is strict (default: %(default)s)",
    )
    model.add_argument(
        "--params",
        type=Path,
        default=None,
        help="start from these params (a minimum.ckpt written by an earlier "
        "run with the same dataset and widths) instead of a fresh init",
    )
    search = p.add_argument_group("minimum")
    search.add_argument("--steps", type=int, default=2000, help="Adam steps before Newton")
    search.add_argument("--adam-lr", type=float, default=1e-2)
    check = p.add_argument_group("rate check")
    check.add_argument(
        "--lr",
        default="optimal",
        help="η for the check: 'optimal' (2/(λmin+λmax)), 'top' (1/λmax), "
        "'xK' (K × 2/λmax, e.g. x0.95 or x1.02), or a number",
    )
    check.add_argument(
        "--mu", "--momentum", type=float, default=0.0, help="momentum μ (0: plain descent)"
    )
    check.add_argument("--nesterov", action="store_true")
    check.add_argument("--check-steps", type=int, default=40, help="descent steps to fit")
    run = p.add_argument_group("run")
    run.add_argument(
        "--float32",
        action="store_true",
        help="work in float32 (default float64: the rate check needs it)",
    )
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--out",
        type=Path,
        default=Path("results/hessian"),
        help="output folder (default: %(default)s)",
    )
    p.set_defaults(subparser=p, command="hessian")
