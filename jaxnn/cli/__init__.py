"""The ``jaxnn`` command: ``jaxnn train`` trains a model on a built-in dataset; ``jaxnn
sweep`` trains it at every point of a grid of hyperparameters as one compiled program;
``jaxnn hessian`` takes one to a minimum and analyses its exact Hessian (``jaxnn COMMAND
--help``).

Every run writes ``results.json`` (the settings and the key numbers) and figures into
``--out``. Bad option values end the command with one line naming the option, exit 2.
Each command keeps JAX's persistent compilation cache
(:func:`jaxnn.xla.use_compilation_cache`), so running it again compiles little.
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxnn import xla
from jaxnn.cli._hessian import _report_hessian, hessian_command
from jaxnn.cli._parser import build_parser
from jaxnn.cli._sweep import _report_sweep, sweep_command
from jaxnn.cli._train import _report_train, train_command

__all__ = ["hessian_command", "main", "sweep_command", "train_command"]

# each command: a function that computes and writes its results, and one that prints them
COMMANDS = {
    "train": (train_command, _report_train),
    "sweep": (sweep_command, _report_sweep),
    "hessian": (hessian_command, _report_hessian),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = args.subparser
    if getattr(args, "batch_size", 0) < 0:
        sub.error(f"--batch-size must be >= 0 (0 means full batch), got {args.batch_size}")
    run, report = COMMANDS[args.command]
    xla.use_compilation_cache()  # a second run reads back what the first compiled
    try:
        results = run(args)
    except (ValueError, TypeError) as e:
        sub.error(str(e).splitlines()[0])
    report(args, results)
    return 0
