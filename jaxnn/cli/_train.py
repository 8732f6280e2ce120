"""``jaxnn train``: one training run on a built-in dataset."""

from __future__ import annotations

import time

import jax

import jaxnn
from jaxnn import checkpoint as ckpt
from jaxnn import (
    losses,
    optimizers,
    plotting,
    schedules,
)
from jaxnn import train as training
from jaxnn.cli._common import (
    _SCHEDULE_LR,
    _load,
    _loss,
    _settings,
)

__all__ = ["train_command"]


def train_command(args) -> dict:
    """Runs ``jaxnn train``; returns the results it writes."""
    train_set, test_set, classes = _load(args)
    sizes = (train_set.x.shape[1], *args.hidden, classes)
    model = jaxnn.mlp(
        sizes,
        activation=args.activation,
        init=args.init,
        bias_init=args.bias_init,
        batch_norm=args.batch_norm,
        layer_norm=args.layer_norm,
        dropout=args.dropout,
    )
    n = train_set.x.shape[0]
    penalty = (lambda p: losses.l2_penalty(p, args.l2, n)) if args.l2 else None
    objective = training.objective(model, _loss(args.loss, classes), penalty)
    lr = schedules.get(
        args.schedule, **{_SCHEDULE_LR.get(args.schedule, "lr0"): args.lr, **args.schedule_args}
    )
    hyper = {"weight_decay": args.weight_decay, "l1": args.l1, "clip_norm": args.clip_norm}
    if args.optimizer in ("momentum", "nesterov"):
        hyper["mu"] = args.mu
    optimizer = optimizers.get(args.optimizer, lr, **hyper)
    init_key, fit_key = jax.random.split(jax.random.key(args.seed + 1))
    params, state = model.init(init_key)
    batch_size = None if args.batch_size == 0 else args.batch_size
    start = time.perf_counter()
    result = training.fit(
        objective,
        params,
        optimizer,
        train_set,
        key=fit_key,
        epochs=args.epochs,
        batch_size=batch_size,
        state=state,
        eval_data=test_set,
        execution=training.Execution(
            progress=False if args.no_progress else None,
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
        ),
    )
    seconds = time.perf_counter() - start
    history = result.history
    ev = history.get("eval", {})
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
    ckpt.write_json(args.out / "results.json", results)
    title = (
        f"{args.dataset}, {'-'.join(map(str, sizes))} {args.activation}, "
        f"{args.optimizer} η={args.lr}: test accuracy {results['test_accuracy']:.3f}"
    )
    label = "training loss + L2 penalty (minibatch)" if args.l2 else "training loss (minibatch)"
    plotting.save(
        plotting.training_curves(history, title=title, loss_label=label), args.out / "training.png"
    )
    return results


def _report_train(args, results: dict) -> None:
    for key in ("steps", "final_train_loss", "test_loss", "test_accuracy", "diverged"):
        print(f"{key}: {results[key]}")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'training.png'}")
