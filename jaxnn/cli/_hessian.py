"""``jaxnn hessian``: a minimum, its exact Hessian spectrum and the rate check."""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxnn
from jaxnn import (
    checkpoint,
    hessian,
    losses,
    plotting,
)
from jaxnn.cli._common import (
    _checks_nonnegative,
    _load,
    _settings,
)

__all__ = ["hessian_command"]


def _check_lr(text: str, spec: hessian.Spectrum) -> float:
    """η from ``--lr``: optimal, top, xK (K × 2/λmax) or a number."""
    if text == "optimal":
        if not math.isfinite(spec.optimal_lr):
            raise ValueError(
                f"--lr optimal needs a strict minimum, but the point is "
                f"{spec.kind}; give a number or xK"
            )
        return spec.optimal_lr
    if text == "top":
        return spec.lr_top
    try:
        return float(text[1:]) * spec.stability_threshold if text.startswith("x") else float(text)
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
    check = hessian.check_rates(
        loss_fn,
        found.params,
        lr,
        args.check_steps,
        mu=args.mu,
        nesterov=args.nesterov,
        spec=spec,
        key=jax.random.key(0),
    )
    seconds = time.perf_counter() - start
    size = spec.eigenvalues.size
    results = {
        "settings": _settings(args),
        "sizes": list(sizes),
        "parameters": size,
        "dtype": jnp.dtype(dtype).name,
        "loss": found.loss,
        "grad_norm": found.grad_norm,
        "kind": found.kind,
        "report": found.report,
        "newton_steps": found.newton_steps,
        "lambda_min": spec.lambda_min,
        "lambda_max": spec.lambda_max,
        "condition_number": spec.condition_number,
        "n_negative": spec.n_negative,
        "n_zero": spec.n_zero,
        "stability_threshold": spec.stability_threshold,
        "lr_top": spec.lr_top,
        "optimal_lr": spec.optimal_lr,
        "optimal_rate": spec.optimal_rate,
        "rate_check": {
            "lr": lr,
            "mu": args.mu,
            "nesterov": args.nesterov,
            "steps": args.check_steps,
            "max_gap": check.max_gap,
            "measured": int(np.isfinite(check.observed).sum()),
            "diverging": int(check.diverging.sum()),
            "eigenvalues": spec.eigenvalues.tolist(),
            "predicted": check.predicted.tolist(),
            "observed": [None if not np.isfinite(v) else float(v) for v in check.observed],
        },
        "seconds": round(seconds, 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint.save(
        args.out / "minimum.ckpt",
        found.params,
        metadata={"sizes": list(sizes), "dataset": args.dataset},
    )
    checkpoint.write_json(args.out / "results.json", results)
    name = f"{args.dataset}, {'-'.join(map(str, sizes))} {activation}, P = {size:,}"
    plotting.save(
        plotting.eigenvalue_histogram(
            spec.eigenvalues,
            zero_tol=spec.zero_tol,
            marks={"λmin": spec.lambda_min, "λmax": spec.lambda_max},
            title=f"Hessian spectrum at the {found.kind}: {name}, κ = {spec.condition_number:.4g}",
        ),
        args.out / "spectrum.png",
    )
    momentum = f", μ = {args.mu:g}{' (Nesterov)' if args.nesterov else ''}" if (args.mu) else ""
    plotting.save(
        plotting.rate_check(
            spec.eigenvalues,
            check.predicted,
            check.observed,
            label="ρ (spectral radius)" if args.mu else "1 − ηλ",
            title=f"{name}: η = {lr:.4g}{momentum}, largest gap {check.max_gap:.2g}",
        ),
        args.out / "rates.png",
    )
    plotting.save(
        plotting.direction_decay(
            check.alpha,
            spec.eigenvalues,
            check.predicted,
            title=f"distance to the minimum along eigendirections, η = {lr:.4g}{momentum}",
        ),
        args.out / "directions.png",
    )
    return results


def _report_hessian(args, results: dict) -> None:
    r = results
    print(f"{r['parameters']:,} parameters ({r['dtype']}): {r['report']}")
    print(f"loss {r['loss']:.6g}, ‖∇E‖ {r['grad_norm']:.3g}")
    print(
        f"λmin {r['lambda_min']:.6g}   λmax {r['lambda_max']:.6g}   "
        f"κ {r['condition_number']:.6g}   (negative: {r['n_negative']}, zero: {r['n_zero']})"
    )
    print(
        f"2/λmax (stability threshold) {r['stability_threshold']:.6g}   1/λmax "
        f"{r['lr_top']:.6g}   η* = 2/(λmin+λmax) {r['optimal_lr']:.6g}   rate at η* "
        f"{r['optimal_rate']:.6g}"
    )
    c = r["rate_check"]
    lam, pred, obs = c["eigenvalues"], c["predicted"], c["observed"]
    print(
        f"rate check at η = {c['lr']:.6g}"
        + (f", μ = {c['mu']:g}" if c["mu"] else "")
        + f": {c['measured']} of {len(lam)} directions measured, {c['diverging']} diverging, "
        f"largest gap {c['max_gap']:.3g}"
    )
    print(f"  {'i':>5s} {'λ':>12s} {'predicted':>11s} {'observed':>11s} {'gap':>9s}")
    rows = sorted(set(np.linspace(0, len(lam) - 1, min(len(lam), 8)).round().astype(int)))
    for i in rows:
        o = obs[i]
        shown = "—" if o is None else f"{o:+.6f}"
        gap = "—" if o is None else f"{abs(pred[i] - o):.2e}"
        print(f"  {i:5d} {lam[i]:12.5g} {pred[i]:+11.6f} {shown:>11s} {gap:>9s}")
    print(
        f"wrote results.json, minimum.ckpt, spectrum.png, rates.png and directions.png to "
        f"{args.out}"
    )
