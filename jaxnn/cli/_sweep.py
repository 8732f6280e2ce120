"""``jaxnn sweep``: training runs over a grid of hyperparameters as one compiled program."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp

import jaxnn
from jaxnn import (
    checkpoint,
    hessian,
    optimizers,
    plotting,
    sweep,
)
from jaxnn import train as training
from jaxnn.cli._common import (
    _EXACT_LIMIT,
    _load,
    _loss,
    _settings,
)

__all__ = ["sweep_command"]


def _split_host(devices: int | None) -> None:
    """Splits XLA:CPU into ``devices`` (default: 8 per core) when JAX has not started yet."""
    try:
        sweep.use_cpu_devices(devices)
    except RuntimeError:
        if devices is not None:
            raise ValueError(
                f"--devices {devices}: JAX has already started with "
                f"{len(jax.devices('cpu'))} CPU device(s) in this process"
            ) from None


def sweep_command(args) -> dict:
    """Runs ``jaxnn sweep``; returns the results it writes."""
    if args.devices is not None and args.devices < 1:
        raise ValueError(f"--devices must be >= 1, got {args.devices}")
    _split_host(args.devices)
    for name in ("steps", "seeds"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.window is not None and not 1 <= args.window <= args.steps:
        raise ValueError(
            f"--window must be between 1 and --steps ({args.steps}), got {args.window}"
        )
    axes = {"lr": args.lr}
    optimizer = args.optimizer
    if args.mu is not None:
        if optimizer not in ("sgd", "momentum", "nesterov"):
            raise ValueError(
                f"--mu goes with --optimizer sgd, momentum or nesterov, got {optimizer}"
            )
        optimizer = "momentum" if optimizer == "sgd" else optimizer
        axes["mu"] = args.mu
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
        return jaxnn.mlp(
            sizes, activation=args.activation, init=args.init, dropout=hp.get("dropout", 0.0)
        )

    def run(hp, key):
        init_key, fit_key = jax.random.split(key)
        model = make(hp)
        params, state = model.init(init_key)
        hyper = {"weight_decay": hp.get("weight_decay", 0.0)}
        if optimizer in ("momentum", "nesterov"):
            hyper["mu"] = hp.get("mu", fixed_mu)
        return training.fit(
            training.objective(model, loss),
            params,
            optimizers.get(optimizer, hp["lr"], **hyper),
            train_set,
            key=fit_key,
            steps=args.steps,
            batch_size=batch_size,
            state=state,
            eval_data=test_set,
            eval_every=args.steps,
        )

    key = jax.random.key(args.seed)
    first_key = key if args.seeds == 1 else jax.random.fold_in(key, 0)  # seed 0's run
    if optimizer in ("sgd", "momentum", "nesterov"):
        lambda_max, where = _sweep_lambda_max(args.lambda_max, make, loss, train_set, first_key)
    else:
        lambda_max, where = (
            None,
            (
                f"not used: the 2/λmax threshold is for gradient descent "
                f"with or without momentum, not {optimizer}"
            ),
        )
    result = sweep.sweep(
        run,
        grid,
        key=key,
        chunk_size=args.chunk_size,
        keep_params=False,
        progress=False if args.no_progress else None,
    )
    report = sweep.lr_report(
        result, lambda_max, nesterov=optimizer == "nesterov", window=args.window
    )
    evals = result.runs.history.get("eval", {})
    runs = [
        {
            **grid.point(k),
            "final_loss": float(result.final_loss[k]),
            "diverged": bool(result.diverged[k]),
            "diverged_at": int(result.diverged_at[k]),
            "test_accuracy": float(evals["accuracy"][k, -1]),
        }
        for k in range(grid.size)
    ]
    results = {
        "settings": _settings(args),
        "sizes": list(sizes),
        "parameters": sum(a * b + b for a, b in itertools.pairwise(sizes)),
        "optimizer": optimizer,
        "fixed_mu": fixed_mu,
        "grid": {name: values.tolist() for name, values in grid.axes.items()},
        "points": grid.size,
        "devices": result.devices,
        "chunk_size": result.chunk_size,
        "compile_seconds": round(result.compile_seconds, 3),
        "seconds": round(result.seconds, 3),
        "lambda_max": lambda_max,
        "lambda_max_source": where,
        "window": report.window,
        "report": report.rows,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(args.out / "results.json", results)
    labels = [
        ", ".join(f"{_SHORT.get(n, n)} = {v:g}" for n, v in g.items()) or None
        for g in report.groups
    ]
    rule = {"momentum": "2(1+μ)/λmax", "nesterov": "2(1+μ)/((1+2μ)λmax)"}.get(optimizer, "2/λmax")
    thresholds = [row.get("threshold", math.nan) for row in report.rows]
    batch = "full batch" if batch_size is None else f"batch {batch_size}"
    plotting.save(
        plotting.lr_sweep_curves(
            report.lrs,
            report.final_loss,
            report.failed,
            labels=labels,
            thresholds=thresholds if lambda_max is not None else None,
            threshold_label=f"{rule} at the start",
            title=f"{args.dataset}, {'-'.join(map(str, sizes))} {args.activation}, {optimizer}, "
            f"{batch}, {args.steps} steps, {args.seeds} {'seed' if args.seeds == 1 else 'seeds'}",
        ),
        args.out / "sweep.png",
    )
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
            raise ValueError(
                f"--lambda-max must be a number, 'auto' or 'none', got {text!r}"
            ) from None
        if not value > 0:
            raise ValueError(f"--lambda-max must be > 0, got {text}")
        return value, "given (--lambda-max)"
    model = make({})
    params, state = model.init(jax.random.split(key)[0])
    size = sum(a.size for a in jax.tree.leaves(params))
    if size > _EXACT_LIMIT:
        return None, (
            f"not computed: {size:,} parameters, more than the {_EXACT_LIMIT:,} the "
            f"exact Hessian is used for here (give --lambda-max)"
        )
    x, y = jnp.asarray(train_set.x), train_set.y

    def loss_fn(p):
        return loss(model.apply(p, state, x, train=False)[0], y)

    spec = hessian.spectrum(loss_fn, params, vectors=False)
    return spec.lambda_max, (
        f"exact Hessian of the training loss at the start (seed 0's init, {size:,} parameters)"
    )


def _report_sweep(args, results: dict) -> None:
    r = results
    devices = f"{r['devices']} {'device' if r['devices'] == 1 else 'devices'}"
    print(
        f"{r['points']} runs of {r['parameters']:,} parameters on {devices}, "
        f"{r['chunk_size']} per call: compile {r['compile_seconds']:.2f} s, run "
        f"{r['seconds']:.2f} s"
    )
    lam = r["lambda_max"]
    print(
        f"λmax {lam:.6g}: {r['lambda_max_source']}"
        if lam is not None
        else f"λmax {r['lambda_max_source']}"
    )
    print(
        f"stable: the loss never rose above its start in the first {r['window']} steps; "
        f"converging: it ended below its start"
    )
    print(
        f"  {'group':<24s} {'stable up to η':>15s} {'converges up to':>16s} "
        f"{'threshold':>10s} {'ratio':>7s} {'best η':>10s} {'best loss':>10s}"
    )
    for row in r["report"]:
        group = ", ".join(f"{_SHORT.get(n, n)}={v:g}" for n, v in row["group"].items()) or "all"
        threshold = f"{row['threshold']:10.4g}" if "threshold" in row else f"{'—':>10s}"
        ratio = f"{row['ratio']:7.3f}" if "ratio" in row else f"{'—':>7s}"
        print(
            f"  {group:<24s} {row['largest_stable_lr']:15.4g} "
            f"{row['largest_converging_lr']:16.4g} {threshold} {ratio} {row['best_lr']:10.4g} "
            f"{row['best_loss']:10.4g}"
        )
    print(f"wrote {args.out / 'results.json'} and {args.out / 'sweep.png'}")
