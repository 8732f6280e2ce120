"""The ``jaxnn`` command: train a model on a built-in dataset (``jaxnn train --help``).

Every run writes ``results.json`` (the settings and the key numbers) and figures into
``--out``. Bad option values end the command with one line naming the option, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

import jaxnn
from jaxnn import activations, datasets, initializers, losses, optimizers, plotting, schedules
from jaxnn import train as training

DATASETS = ("digits", "moons", "spirals")
LOSSES = ("cross_entropy", "quadratic")
# the keyword each schedule takes the base learning rate as
_SCHEDULE_LR = {"constant": "eta", "cyclic": "eta_max"}


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
  parser = _Parser(prog="jaxnn", description=__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("train", help="train an MLP on a built-in dataset",
                     description="Train an MLP on a built-in dataset; all steps run in one "
                                 "compiled program. Writes results.json and training.png.")
  data = p.add_argument_group("data")
  data.add_argument("--dataset", choices=DATASETS, default="digits",
                    help="digits: 1,797 8x8 images (bundled with scikit-learn); moons, "
                         "spirals: generated 2-D problems (default: %(default)s)")
  data.add_argument("--n", type=int, default=600, help="points for moons/spirals")
  data.add_argument("--test-fraction", type=float, default=0.2,
                    help="held-out share of the data (default: %(default)s)")
  model = p.add_argument_group("model")
  model.add_argument("--hidden", type=_widths, default=(128,),
                     help="hidden widths, comma-separated (default: 128)")
  model.add_argument("--activation", choices=activations.NAMES, default="relu")
  model.add_argument("--init", choices=initializers.NAMES, default="he",
                     help="weight initialiser (default: %(default)s)")
  model.add_argument("--bias-init", choices=("zeros", "small", "normal"), default="zeros")
  model.add_argument("--batch-norm", action="store_true", help="batch-normalise hidden layers")
  model.add_argument("--layer-norm", action="store_true", help="layer-normalise hidden layers")
  model.add_argument("--dropout", type=float, default=0.0,
                     help="probability of dropping a hidden unit in training, in [0, 1)")
  opt = p.add_argument_group("optimisation")
  opt.add_argument("--loss", choices=LOSSES, default="cross_entropy",
                   help="cross_entropy: softmax log-likelihood; quadratic: "
                        "1/2 ||sigmoid(a) - one_hot(y)||^2 (the slow-learning cost)")
  opt.add_argument("--optimizer", choices=optimizers.NAMES, default="momentum")
  opt.add_argument("--lr", type=float, default=0.05, help="learning rate η (default: 0.05)")
  opt.add_argument("--momentum", type=float, default=0.9, help="μ for momentum/nesterov")
  opt.add_argument("--schedule", choices=schedules.NAMES, default="constant",
                   help="learning-rate schedule; --lr is its starting (cyclic: peak) rate")
  opt.add_argument("--schedule-args", type=_keywords, default={},
                   help="the schedule's other arguments, e.g. 'factor=0.5,every=200'")
  opt.add_argument("--l2", type=float, default=0.0, help="λ of the penalty λ/(2n) Σ w²")
  opt.add_argument("--weight-decay", type=float, default=0.0,
                   help="decay coefficient κ in w <- (1 - η κ) w - η g (weights only)")
  opt.add_argument("--l1", type=float, default=0.0, help="proximal L1 strength κ₁")
  opt.add_argument("--clip-norm", type=float, default=None, help="clip ‖g‖ to this norm")
  opt.add_argument("--epochs", type=int, default=20)
  opt.add_argument("--batch-size", type=int, default=64,
                   help="minibatch size; 0 for full-batch gradient descent")
  run = p.add_argument_group("run")
  run.add_argument("--seed", type=int, default=0)
  run.add_argument("--out", type=Path, default=Path("results/train"),
                   help="output folder (default: %(default)s)")
  run.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(subparser=p)
  return parser


def _load(args) -> tuple[datasets.Dataset, datasets.Dataset, int]:
  data_key, split_key = jax.random.split(jax.random.key(args.seed))
  if args.dataset == "digits":
    data = datasets.digits()
  else:
    make = datasets.moons if args.dataset == "moons" else datasets.spirals
    data = make(args.n, key=data_key)
  train_set, test_set = datasets.train_test_split(data, key=split_key,
                                                  test_fraction=args.test_fraction)
  train_set, test_set, _ = datasets.standardized(train_set, test_set)
  return train_set, test_set, int(np.max(np.asarray(data.y))) + 1


def _loss(name: str, classes: int):
  if name == "cross_entropy":
    return losses.softmax_cross_entropy

  def quadratic(logits, labels):
    return losses.quadratic(jax.nn.sigmoid(logits), jax.nn.one_hot(labels, classes))

  return quadratic


def train_command(args) -> dict:
  """Runs ``jaxnn train``; returns the results it writes."""
  train_set, test_set, classes = _load(args)
  sizes = (train_set.x.shape[1], *args.hidden, classes)
  model = jaxnn.mlp(sizes, activation=args.activation, init=args.init,
                    bias_init=args.bias_init, batch_norm=args.batch_norm,
                    layer_norm=args.layer_norm, dropout=args.dropout)
  n = train_set.x.shape[0]
  penalty = (lambda p: losses.l2_penalty(p, args.l2, n)) if args.l2 else None
  objective = training.objective(model, _loss(args.loss, classes), penalty)
  lr = schedules.get(args.schedule, **{_SCHEDULE_LR.get(args.schedule, "eta0"): args.lr,
                                       **args.schedule_args})
  hyper = {"weight_decay": args.weight_decay, "l1": args.l1, "clip_norm": args.clip_norm}
  if args.optimizer in ("momentum", "nesterov"):
    hyper["mu"] = args.momentum
  optimizer = optimizers.get(args.optimizer, lr, **hyper)
  init_key, fit_key = jax.random.split(jax.random.key(args.seed + 1))
  params, state = model.init(init_key)
  batch_size = None if args.batch_size == 0 else args.batch_size
  start = time.perf_counter()
  result = training.fit(objective, params, optimizer, train_set, key=fit_key,
                        epochs=args.epochs, batch_size=batch_size, state=state,
                        eval_data=test_set, progress=False if args.no_progress else None)
  seconds = time.perf_counter() - start
  history = result.history
  ev = history["eval"]
  results = {
      "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k not in ("command", "subparser")},
      "sizes": list(sizes),
      "steps": int(history["loss"].shape[0]),
      "final_train_loss": float(history["loss"][-1]),
      "test_loss": float(ev["loss"][-1]),
      "test_accuracy": float(ev["accuracy"][-1]),
      "diverged": bool(result.diverged),
      "diverged_at": int(result.diverged_at),
      "seconds_including_compile": round(seconds, 3),
  }
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  title = (f"{args.dataset}, {'-'.join(map(str, sizes))} {args.activation}, "
           f"{args.optimizer} η={args.lr}: test accuracy {results['test_accuracy']:.3f}")
  label = "training loss + L2 penalty (minibatch)" if args.l2 else "training loss (minibatch)"
  plotting.save(plotting.training_curves(history, title=title, loss_label=label),
                args.out / "training.png")
  return results


def main(argv: Sequence[str] | None = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  sub = args.subparser
  if args.batch_size < 0:
    sub.error(f"--batch-size must be >= 0 (0 means full batch), got {args.batch_size}")
  try:
    results = train_command(args)
  except (ValueError, TypeError) as e:
    sub.error(str(e).splitlines()[0])
  for key in ("steps", "final_train_loss", "test_loss", "test_accuracy", "diverged"):
    print(f"{key}: {results[key]}")
  print(f"wrote {args.out / 'results.json'} and {args.out / 'training.png'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
