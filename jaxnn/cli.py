"""The ``jaxnn`` command: ``jaxnn train`` trains a model on a built-in dataset; ``jaxnn
sweep`` trains it at every point of a grid of hyperparameters as one compiled program;
``jaxnn hessian`` takes one to a minimum and analyses its exact Hessian (``jaxnn COMMAND
--help``).

Every run writes ``results.json`` (the settings and the key numbers) and figures into
``--out``. Bad option values end the command with one line naming the option, exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jaxnn
from jaxnn import (activations, checkpoint, datasets, hessian, initializers, losses, optimizers,
                   plotting, schedules, sweep)
from jaxnn import train as training

DATASETS = ("digits", "moons", "spirals")
# the largest model whose exact Hessian `jaxnn sweep` computes by itself (a few seconds)
_EXACT_LIMIT = 5000
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
  _data_options(p, "digits")
  model = _model_options(p, (128,), "relu", "he")
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
  p.set_defaults(subparser=p, run=train_command, report=_report_train)
  _sweep_parser(sub)
  _hessian_parser(sub)
  return parser


def _model_options(p: argparse.ArgumentParser, hidden: tuple[int, ...], activation: str,
                   init: str, note: str = "") -> argparse._ArgumentGroup:
  """The MLP's --hidden, --activation and --init, with this command's defaults."""
  model = p.add_argument_group("model")
  model.add_argument("--hidden", type=_widths, default=hidden,
                     help=f"hidden widths, comma-separated (default: "
                          f"{','.join(map(str, hidden))}{note})")
  model.add_argument("--activation", choices=activations.NAMES, default=activation)
  model.add_argument("--init", choices=initializers.NAMES, default=init,
                     help="weight initialiser (default: %(default)s)")
  return model


def _data_options(p: argparse.ArgumentParser, default: str) -> None:
  data = p.add_argument_group("data")
  data.add_argument("--dataset", choices=DATASETS, default=default,
                    help="digits: 1,797 8x8 images (bundled with scikit-learn); moons, "
                         "spirals: generated 2-D problems (default: %(default)s)")
  data.add_argument("--n", type=int, default=600, help="points for moons/spirals")
  data.add_argument("--test-fraction", type=float, default=0.2,
                    help="held-out share of the data (default: %(default)s)")


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
          + (f" ({str(e).splitlines()[0]})" if "could not convert" not in str(e)
             and "invalid literal" not in str(e) else "")) from None
    if not values:
      raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values

  return parse


def _sweep_parser(sub) -> None:
  p = sub.add_parser(
      "sweep", help="train at every point of a hyperparameter grid, as one program",
      description="Train an MLP at every point of a product grid of learning rates "
                  "(and momenta, weight decays, dropout rates, seeds), all runs vmapped "
                  "in one compiled program and sharded over the devices (on a CPU, the "
                  "host split into 8 devices per core). Finds two edges per group: the "
                  "largest stable η (the loss never rises above its start within the "
                  "first --window steps), compared with 2/λmax (2(1+μ)/λmax with "
                  "momentum) of the exact Hessian at the start, and the largest η that "
                  "still converges (ends below its start). Writes results.json and "
                  "sweep.png.")
  _data_options(p, "digits")
  _model_options(p, (32,), "relu", "he")
  axes = p.add_argument_group(
      "grid", "each axis: LOW:HIGH:NUM (NUM values, log-spaced for --lr, evenly spaced "
              "otherwise) or comma-separated values; the grid is their product")
  axes.add_argument("--lr", type=_values(log=True),
                    default=sweep.log_range(1e-3, 10.0, 32).tolist(),
                    help="learning rates η (default: 1e-3:10:32)")
  axes.add_argument("--momentum", type=_values(log=False), default=None,
                    help="momenta μ (heavy ball; with --optimizer sgd switches to momentum)")
  axes.add_argument("--weight-decay", type=_values(log=False), default=None,
                    help="decay coefficients κ in w <- (1 - η κ) w - η g (weights only)")
  axes.add_argument("--dropout", type=_values(log=False), default=None,
                    help="dropout rates of the hidden units, each in [0, 1)")
  axes.add_argument("--seeds", type=int, default=1,
                    help="seeds per point: a different init and minibatch order each")
  opt = p.add_argument_group("optimisation")
  opt.add_argument("--loss", choices=LOSSES, default="cross_entropy")
  opt.add_argument("--optimizer", choices=optimizers.NAMES, default="sgd")
  opt.add_argument("--steps", type=int, default=200, help="steps per run (default: 200)")
  opt.add_argument("--batch-size", type=int, default=0,
                   help="minibatch size; 0 (default) for full-batch gradient descent, "
                        "where 2/λmax is the stability threshold")
  opt.add_argument("--window", type=int, default=None,
                   help="steps in which a stable run's loss never rises above its start "
                        "(default: the whole run)")
  opt.add_argument("--lambda-max", default="auto",
                   help="λmax for the thresholds: a number, 'none', or 'auto' (default): "
                        "the exact Hessian's at the start when the model has at most "
                        f"{_EXACT_LIMIT:,} parameters")
  run = p.add_argument_group("run")
  run.add_argument("--seed", type=int, default=0)
  run.add_argument("--chunk-size", type=int, default=None,
                   help="runs per compiled call (default: from the memory budget)")
  run.add_argument("--devices", type=int, default=None,
                   help="run XLA:CPU as this many devices (default: 8 per core, at most 64)")
  run.add_argument("--out", type=Path, default=Path("results/sweep"),
                   help="output folder (default: %(default)s)")
  run.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(subparser=p, run=sweep_command, report=_report_sweep)


def _hessian_parser(sub) -> None:
  p = sub.add_parser(
      "hessian", help="exact Hessian spectrum and convergence-rate check at a minimum",
      description="Train a tanh MLP to a minimum of softmax cross-entropy + (c/2)‖θ‖² "
                  "(Adam, then Newton steps on the exact Hessian), or load one; print "
                  "λmin, λmax, κ and the learning-rate thresholds; run gradient descent "
                  "from a small perturbation and compare each eigendirection's observed "
                  "rate with 1 − ηλ. Writes results.json, minimum.ckpt, spectrum.png, "
                  "rates.png and directions.png.")
  _data_options(p, "moons")
  p.set_defaults(n=200)
  model = _model_options(p, (8, 8), "tanh", "lecun",
                         note="; keep the parameter count to a few thousand")
  model.add_argument("--l2", type=float, default=1e-2,
                     help="c in + (c/2)‖θ‖² over every parameter, biases included: "
                          "with c > 0 the minimum is strict (default: %(default)s)")
  model.add_argument("--params", type=Path, default=None,
                     help="start from these params (a minimum.ckpt written by an earlier "
                          "run with the same dataset and widths) instead of a fresh init")
  search = p.add_argument_group("minimum")
  search.add_argument("--steps", type=int, default=2000, help="Adam steps before Newton")
  search.add_argument("--adam-lr", type=float, default=1e-2)
  check = p.add_argument_group("rate check")
  check.add_argument("--lr", default="optimal",
                     help="η for the check: 'optimal' (2/(λmin+λmax)), 'top' (1/λmax), "
                          "'xK' (K × 2/λmax, e.g. x0.95 or x1.02), or a number")
  check.add_argument("--momentum", type=float, default=0.0, help="μ (0: plain descent)")
  check.add_argument("--nesterov", action="store_true")
  check.add_argument("--check-steps", type=int, default=40, help="descent steps to fit")
  run = p.add_argument_group("run")
  run.add_argument("--float32", action="store_true",
                   help="work in float32 (default float64: the rate check needs it)")
  run.add_argument("--seed", type=int, default=0)
  run.add_argument("--out", type=Path, default=Path("results/hessian"),
                   help="output folder (default: %(default)s)")
  p.set_defaults(subparser=p, run=hessian_command, report=_report_hessian)


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
      "settings": _settings(args),
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


def _split_host(devices: int | None) -> None:
  """Splits XLA:CPU into ``devices`` (default: 8 per core) when JAX has not started yet."""
  try:
    sweep.use_cpu_devices(devices)
  except RuntimeError:
    if devices is not None:
      raise ValueError(f"--devices {devices}: JAX has already started with "
                       f"{len(jax.devices('cpu'))} CPU device(s) in this process") from None


def sweep_command(args) -> dict:
  """Runs ``jaxnn sweep``; returns the results it writes."""
  if args.devices is not None and args.devices < 1:
    raise ValueError(f"--devices must be >= 1, got {args.devices}")
  _split_host(args.devices)
  for name in ("steps", "seeds"):
    if getattr(args, name) < 1:
      raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
  if args.window is not None and not 1 <= args.window <= args.steps:
    raise ValueError(f"--window must be between 1 and --steps ({args.steps}), got "
                     f"{args.window}")
  axes = {"lr": args.lr}
  optimizer = args.optimizer
  if args.momentum is not None:
    if optimizer not in ("sgd", "momentum", "nesterov"):
      raise ValueError(f"--momentum goes with --optimizer sgd, momentum or nesterov, "
                       f"got {optimizer}")
    optimizer = "momentum" if optimizer == "sgd" else optimizer
    axes["mu"] = args.momentum
  for name in ("weight_decay", "dropout"):
    if getattr(args, name) is not None:
      axes[name] = getattr(args, name)
  if args.seeds > 1:
    axes["seed"] = range(args.seeds)
  grid = sweep.grid(**axes)
  train_set, test_set, classes = _load(args)
  sizes = (train_set.x.shape[1], *args.hidden, classes)
  batch_size = None if args.batch_size == 0 else args.batch_size
  loss = _loss(args.loss, classes)
  fixed_mu = 0.9 if optimizer in ("momentum", "nesterov") and "mu" not in axes else None

  def make(hp):
    return jaxnn.mlp(sizes, activation=args.activation, init=args.init,
                     dropout=hp.get("dropout", 0.0))

  def run(hp, key):
    init_key, fit_key = jax.random.split(key)
    model = make(hp)
    params, state = model.init(init_key)
    hyper = {"weight_decay": hp.get("weight_decay", 0.0)}
    if optimizer in ("momentum", "nesterov"):
      hyper["mu"] = hp.get("mu", fixed_mu)
    return training.fit(training.objective(model, loss), params,
                        optimizers.get(optimizer, hp["lr"], **hyper), train_set,
                        key=fit_key, steps=args.steps, batch_size=batch_size, state=state,
                        eval_data=test_set, eval_every=args.steps)

  key = jax.random.key(args.seed)
  first_key = key if args.seeds == 1 else jax.random.fold_in(key, 0)  # seed 0's run
  if optimizer in ("sgd", "momentum", "nesterov"):
    lambda_max, where = _sweep_lambda_max(args.lambda_max, make, loss, train_set, first_key)
  else:
    lambda_max, where = None, (f"not used: the 2/λmax threshold is for gradient descent "
                               f"with or without momentum, not {optimizer}")
  result = sweep.sweep(run, grid, key=key, chunk_size=args.chunk_size, keep_params=False,
                       progress=False if args.no_progress else None)
  report = sweep.lr_report(result, lambda_max, nesterov=optimizer == "nesterov",
                           window=args.window)
  evals = result.runs.history["eval"]
  runs = [{**grid.point(k), "final_loss": float(result.final_loss[k]),
           "diverged": bool(result.diverged[k]), "diverged_at": int(result.diverged_at[k]),
           "test_accuracy": float(evals["accuracy"][k, -1])} for k in range(grid.size)]
  results = {
      "settings": _settings(args), "sizes": list(sizes),
      "parameters": sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])),
      "optimizer": optimizer, "fixed_mu": fixed_mu,
      "grid": {name: values.tolist() for name, values in grid.axes.items()},
      "points": grid.size, "devices": result.devices, "chunk_size": result.chunk_size,
      "compile_seconds": round(result.compile_seconds, 3),
      "seconds": round(result.seconds, 3),
      "lambda_max": lambda_max, "lambda_max_source": where,
      "window": report.window, "report": report.rows, "runs": runs,
  }
  args.out.mkdir(parents=True, exist_ok=True)
  checkpoint.write_json(args.out / "results.json", results)
  labels = [", ".join(f"{_SHORT.get(n, n)} = {v:g}" for n, v in g.items()) or None
            for g in report.groups]
  rule = {"momentum": "2(1+μ)/λmax", "nesterov": "2(1+μ)/((1+2μ)λmax)"}.get(optimizer,
                                                                          "2/λmax")
  thresholds = [row.get("threshold", math.nan) for row in report.rows]
  batch = "full batch" if batch_size is None else f"batch {batch_size}"
  plotting.save(plotting.lr_sweep(
      report.lrs, report.final_loss, report.failed, labels=labels,
      thresholds=thresholds if lambda_max is not None else None,
      threshold_label=f"{rule} at the start",
      title=f"{args.dataset}, {'-'.join(map(str, sizes))} {args.activation}, {optimizer}, "
            f"{batch}, {args.steps} steps, {args.seeds} {'seed' if args.seeds == 1 else 'seeds'}"),
      args.out / "sweep.png")
  return results


_SHORT = {"mu": "μ", "weight_decay": "κ", "dropout": "dropout", "lr": "η"}


def _sweep_lambda_max(text: str, make, loss, train_set, key) -> tuple[float | None, str]:
  """λmax from ``--lambda-max``, and where it came from."""
  if text == "none":
    return None, "not computed (--lambda-max none)"
  if text != "auto":
    try:
      value = float(text)
    except ValueError:
      raise ValueError(f"--lambda-max must be a number, 'auto' or 'none', got {text!r}"
                       ) from None
    if not value > 0:
      raise ValueError(f"--lambda-max must be > 0, got {text}")
    return value, "given (--lambda-max)"
  model = make({})
  params, state = model.init(jax.random.split(key)[0])
  size = sum(a.size for a in jax.tree.leaves(params))
  if size > _EXACT_LIMIT:
    return None, (f"not computed: {size:,} parameters, more than the {_EXACT_LIMIT:,} the "
                  f"exact Hessian is used for here (give --lambda-max)")
  x, y = jnp.asarray(train_set.x), train_set.y

  def loss_fn(p):
    return loss(model.apply(p, state, x, train=False)[0], y)

  spec = hessian.spectrum(loss_fn, params, vectors=False)
  return spec.lambda_max, (f"exact Hessian of the training loss at the start (seed 0's "
                           f"init, {size:,} parameters)")


def _settings(args) -> dict:
  return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
          if k not in ("command", "subparser", "run", "report")}


def _check_lr(text: str, spec: hessian.Spectrum) -> float:
  """η from ``--lr``: optimal, top, xK (K × 2/λmax) or a number."""
  if text == "optimal":
    if not math.isfinite(spec.optimal_lr):
      raise ValueError(f"--lr optimal needs a strict minimum, but the point is "
                       f"{spec.kind}; give a number or xK")
    return spec.optimal_lr
  if text == "top":
    return spec.lr_top
  try:
    return float(text[1:]) * spec.stability_threshold if text.startswith("x") else float(
        text)
  except ValueError:
    raise ValueError(f"--lr must be 'optimal', 'top', 'xK' or a number, got {text!r}") from None


def hessian_command(args) -> dict:
  """Runs ``jaxnn hessian``; returns the results it writes."""
  with jax.enable_x64(not args.float32):
    return _hessian_run(args)


def _hessian_run(args) -> dict:
  for name in ("steps", "check_steps"):
    _checks_nonnegative(name, getattr(args, name))
  train_set, _, classes = _load(args)
  dtype = jnp.float32 if args.float32 else jnp.float64
  x = jnp.asarray(train_set.x, dtype)
  y = train_set.y
  sizes = (x.shape[1], *args.hidden, classes)
  params = jaxnn.init_mlp(jax.random.key(args.seed + 1), sizes, init=args.init)
  params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
  if args.params is not None:
    params, _ = checkpoint.load(args.params, like=params)
  l2, activation = float(args.l2), args.activation
  if not l2 >= 0:
    raise ValueError(f"--l2 must be >= 0, got {args.l2}")

  def loss_fn(p):
    data = losses.softmax_cross_entropy(jaxnn.forward(p, x, activation=activation), y)
    return data + 0.5 * l2 * sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(p))

  start = time.perf_counter()
  found = hessian.find_minimum(loss_fn, params, steps=args.steps, lr=args.adam_lr)
  spec = found.spectrum
  lr = _check_lr(args.lr, spec)
  check = hessian.check_rates(loss_fn, found.params, lr, args.check_steps, mu=args.momentum,
                              nesterov=args.nesterov, spec=spec)
  seconds = time.perf_counter() - start
  size = spec.eigenvalues.size
  results = {
      "settings": _settings(args), "sizes": list(sizes), "parameters": size,
      "dtype": jnp.dtype(dtype).name, "loss": found.loss, "grad_norm": found.grad_norm,
      "kind": found.kind, "report": found.report, "newton_steps": found.newton_steps,
      "lambda_min": spec.lambda_min, "lambda_max": spec.lambda_max,
      "condition_number": spec.condition_number, "n_negative": spec.n_negative,
      "n_zero": spec.n_zero, "stability_threshold": spec.stability_threshold,
      "lr_top": spec.lr_top, "optimal_lr": spec.optimal_lr,
      "optimal_rate": spec.optimal_rate,
      "rate_check": {
          "lr": lr, "mu": args.momentum, "nesterov": args.nesterov,
          "steps": args.check_steps, "max_gap": check.max_gap,
          "measured": int(np.isfinite(check.observed).sum()),
          "diverging": int(check.diverging.sum()),
          "eigenvalues": spec.eigenvalues.tolist(), "predicted": check.predicted.tolist(),
          "observed": [None if not np.isfinite(v) else float(v) for v in check.observed]},
      "seconds": round(seconds, 3),
  }
  args.out.mkdir(parents=True, exist_ok=True)
  checkpoint.save(args.out / "minimum.ckpt", found.params,
                  metadata={"sizes": list(sizes), "dataset": args.dataset})
  checkpoint.write_json(args.out / "results.json", results)
  name = f"{args.dataset}, {'-'.join(map(str, sizes))} {activation}, P = {size:,}"
  plotting.save(plotting.eigenvalue_histogram(
      spec.eigenvalues, zero_tol=spec.zero_tol,
      marks={"λmin": spec.lambda_min, "λmax": spec.lambda_max},
      title=f"Hessian spectrum at the {found.kind}: {name}, κ = "
            f"{spec.condition_number:.4g}"), args.out / "spectrum.png")
  momentum = f", μ = {args.momentum:g}{' (Nesterov)' if args.nesterov else ''}" if (
      args.momentum) else ""
  plotting.save(plotting.rate_check(
      spec.eigenvalues, check.predicted, check.observed,
      label="ρ (spectral radius)" if args.momentum else "1 − ηλ",
      title=f"{name}: η = {lr:.4g}{momentum}, largest gap {check.max_gap:.2g}"),
      args.out / "rates.png")
  plotting.save(plotting.direction_decay(
      check.alpha, spec.eigenvalues, check.predicted,
      title=f"distance to the minimum along eigendirections, η = {lr:.4g}{momentum}"),
      args.out / "directions.png")
  return results


def _checks_nonnegative(name: str, value: int) -> None:
  if value < 0:
    raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")


def _report_train(args, results: dict) -> None:
  for key in ("steps", "final_train_loss", "test_loss", "test_accuracy", "diverged"):
    print(f"{key}: {results[key]}")
  print(f"wrote {args.out / 'results.json'} and {args.out / 'training.png'}")


def _report_hessian(args, results: dict) -> None:
  r = results
  print(f"{r['parameters']:,} parameters ({r['dtype']}): {r['report']}")
  print(f"loss {r['loss']:.6g}, ‖∇E‖ {r['grad_norm']:.3g}")
  print(f"λmin {r['lambda_min']:.6g}   λmax {r['lambda_max']:.6g}   "
        f"κ {r['condition_number']:.6g}   (negative: {r['n_negative']}, zero: {r['n_zero']})")
  print(f"2/λmax (stability threshold) {r['stability_threshold']:.6g}   1/λmax "
        f"{r['lr_top']:.6g}   η* = 2/(λmin+λmax) {r['optimal_lr']:.6g}   rate at η* "
        f"{r['optimal_rate']:.6g}")
  c = r["rate_check"]
  lam, pred, obs = c["eigenvalues"], c["predicted"], c["observed"]
  print(f"rate check at η = {c['lr']:.6g}" + (f", μ = {c['mu']:g}" if c["mu"] else "") +
        f": {c['measured']} of {len(lam)} directions measured, {c['diverging']} diverging, "
        f"largest gap {c['max_gap']:.3g}")
  print(f"  {'i':>5s} {'λ':>12s} {'predicted':>11s} {'observed':>11s} {'gap':>9s}")
  rows = sorted(set(np.linspace(0, len(lam) - 1, min(len(lam), 8)).round().astype(int)))
  for i in rows:
    o = obs[i]
    shown = "—" if o is None else f"{o:+.6f}"
    gap = "—" if o is None else f"{abs(pred[i] - o):.2e}"
    print(f"  {i:5d} {lam[i]:12.5g} {pred[i]:+11.6f} {shown:>11s} {gap:>9s}")
  print(f"wrote results.json, minimum.ckpt, spectrum.png, rates.png and directions.png to "
        f"{args.out}")


def _report_sweep(args, results: dict) -> None:
  r = results
  devices = f"{r['devices']} {'device' if r['devices'] == 1 else 'devices'}"
  print(f"{r['points']} runs of {r['parameters']:,} parameters on {devices}, "
        f"{r['chunk_size']} per call: compile {r['compile_seconds']:.2f} s, run "
        f"{r['seconds']:.2f} s")
  lam = r["lambda_max"]
  print(f"λmax {lam:.6g}: {r['lambda_max_source']}" if lam is not None
        else f"λmax {r['lambda_max_source']}")
  print(f"stable: the loss never rose above its start in the first {r['window']} steps; "
        f"converging: it ended below its start")
  print(f"  {'group':<24s} {'stable up to η':>15s} {'converges up to':>16s} "
        f"{'threshold':>10s} {'ratio':>7s} {'best η':>10s} {'best loss':>10s}")
  for row in r["report"]:
    group = ", ".join(f"{_SHORT.get(n, n)}={v:g}" for n, v in row["group"].items()) or "all"
    threshold = f"{row['threshold']:10.4g}" if "threshold" in row else f"{'—':>10s}"
    ratio = f"{row['ratio']:7.3f}" if "ratio" in row else f"{'—':>7s}"
    print(f"  {group:<24s} {row['largest_stable_lr']:15.4g} "
          f"{row['largest_converging_lr']:16.4g} {threshold} {ratio} {row['best_lr']:10.4g} "
          f"{row['best_loss']:10.4g}")
  print(f"wrote {args.out / 'results.json'} and {args.out / 'sweep.png'}")


def main(argv: Sequence[str] | None = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  sub = args.subparser
  if getattr(args, "batch_size", 0) < 0:
    sub.error(f"--batch-size must be >= 0 (0 means full batch), got {args.batch_size}")
  try:
    results = args.run(args)
  except (ValueError, TypeError) as e:
    sub.error(str(e).splitlines()[0])
  args.report(args, results)
  return 0


if __name__ == "__main__":
  sys.exit(main())
