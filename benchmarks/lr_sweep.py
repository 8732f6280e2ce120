"""Learning-rate sweep speed: ``jaxnn.sweep`` against a Python loop of ``fit`` calls.

64 learning rates × 500 steps of the digits MLP (64-128-128-10, ReLU, softmax
cross-entropy, momentum 0.9, minibatches of 128 from a fresh permutation every epoch),
every run from the same init with the same minibatch order:

* ``loop``: ``one = jax.jit(run)`` called once per learning rate, ``run(hparams, key)``
  calling ``jaxnn.train.fit`` (compiled once, reused for every η: η is a traced value);
* ``sweep, 1 device``: ``jaxnn.sweep.sweep(run, grid(lr=...))`` on the first device
  only: plain ``jit(vmap(run))``;
* ``sweep, D devices``: the same sharded over D devices (on a CPU: the host split into
  XLA devices by :func:`jaxnn.sweep.use_cpu_devices`, called before anything else, by
  default 8 per core; the sweep is also timed on as many devices as cores);
* ``torch``: 64 PyTorch eager runs in a loop (with ``--torch``, when importable; on the
  GPU when JAX runs on one).

The floor is the float32 matrix-multiply bound: 6 × params × batch × steps × runs FLOPs at
the GEMM rate measured first (``train_loop.gemm_rate``: NumPy's on a CPU, JAX's on an
accelerator). Rounds are interleaved; medians reported. The sweeps' compile time is
reported apart from their run time. The goal: on a CPU, the widest sweep at least 3× the
loop and at most 1.5× the floor; on an accelerator at least 10× the loop.

``--profile`` adds rows that show where the widest sweep's time goes, each on all the
devices with the runs sharded as the sweep shards them:

* ``step alone in a scan``: the training step vmapped over the rates in a jitted
  ``lax.scan`` over fixed minibatch indices: the sweep without ``fit``'s divergence
  guard, shuffling and records;
* ``products alone``: only the step's matrix products (forward, weight gradients,
  backpropagated errors), each run's weights nudged by its gradient so that no product
  is loop-invariant: what the floor counts, at the rate XLA reaches for them;
* ``mesh R runs x 2 data``: the sweep on a 2-D mesh whose second axis splits the dataset
  (:func:`jaxnn.sharding.shard_batch`, the last of the 1,797 rows dropped), so that each
  run's minibatch is gathered and computed on two devices.

Run from the repository root: ``python benchmarks/lr_sweep.py [--quick] [--torch]
[--profile] [--devices N] [--json PATH]``; ``--table PATH`` prints the Speed page's table
from a ``--json`` file.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import time

import jax

from jaxnn import sweep  # before any JAX computation: use_cpu_devices must run first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 rates × 100 steps, 2 rounds")
    parser.add_argument("--torch", action="store_true", help="add 64 PyTorch eager runs")
    parser.add_argument(
        "--profile", action="store_true", help="add rows that show where the sweep's time goes"
    )
    parser.add_argument(
        "--devices", type=int, default=None, help="XLA:CPU devices (default: 8 per core)"
    )
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--table", help="print the Speed page's table from this --json file")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as f:
            print(markdown(json.load(f)))
        return
    sweep.use_cpu_devices(args.devices)
    report = run_benchmark(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


def run_benchmark(args) -> dict:
    import jax.numpy as jnp
    from train_loop import MU, bench_torch, gemm_rate, gemm_what, make_data

    import jaxnn
    from jaxnn import losses, optimizers, train

    runs, steps = (16, 100) if args.quick else (64, 500)
    rounds = args.rounds or (2 if args.quick else 3)
    x, y, sizes, batch = make_data("digits")
    data = (jnp.asarray(x), jnp.asarray(y))
    objective = train.objective(
        functools.partial(jaxnn.forward, activation="relu"), losses.softmax_cross_entropy
    )
    params0 = jaxnn.init_mlp(jax.random.key(1), sizes, init="he")
    lrs = sweep.log_range(1e-3, 1.0, runs)
    grid = sweep.grid(lr=lrs)
    key = jax.random.key(2)

    def fit_on(data):
        """``run(hparams, key)``: a ``fit`` of ``steps`` steps at the rate ``hparams["lr"]``."""

        def run(hp, key):
            return train.fit(objective, params0, optimizers.momentum(hp["lr"], MU), data,
                             key=key, steps=steps, batch_size=batch)  # fmt: skip

        return run

    run = fit_on(data)
    one = jax.jit(run)
    rate = gemm_rate()
    params = sum(m * n + n for m, n in itertools.pairwise(sizes))
    floor = 6 * params * batch * steps * runs / (rate * 1e9)
    devices = jax.devices()
    print(
        f"float32 GEMM rate ({gemm_what()}): {rate:.1f} GFLOP/s; jax {jax.__version__} on "
        f"{devices[0].platform} ({devices[0].device_kind}): {len(devices)} device(s), "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"digits {'-'.join(map(str, sizes))}, batch {batch}, {params:,} params: {runs} "
        f"learning rates × {steps} steps; floor {floor:.2f} s\n"
    )

    def loop():
        for lr in lrs:
            out = one({"lr": jnp.float32(lr)}, key)
        jax.block_until_ready(out)

    compile_seconds = {}

    def sweeper(name, on):
        def go():
            result = sweep.sweep(run, grid, key=key, devices=on, keep_params=False)
            compile_seconds.setdefault(name, result.compile_seconds)

        return go

    impls = {"loop of fit": loop}
    cores = os.cpu_count() or 1
    for d in sorted({1, min(cores, len(devices)), len(devices)}):
        name = f"sweep, {d} device{'s' if d > 1 else ''}"
        impls[name] = sweeper(name, devices[:d])
    if args.profile:
        impls.update(profile_rows(objective, params0, data, lrs, steps, batch, devices, fit_on))
    if args.torch:
        try:
            torch_runs = [bench_torch(x, y, sizes, batch, lr=float(lr)) for lr in lrs]
            impls["torch, eager loop"] = lambda: [r(steps) for r in torch_runs]
        except ImportError:
            print("PyTorch is not importable: the torch row is left out")
    loop_first = None
    for name, impl in impls.items():  # warm-up: compile
        start = time.perf_counter()
        impl()
        if name == "loop of fit":
            loop_first = time.perf_counter() - start
    times = {name: [] for name in impls}
    for _ in range(rounds):
        for name, impl in impls.items():
            start = time.perf_counter()
            impl()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    width = max(len(name) for name in med) + 2
    print(f"  {'implementation':<{width}}{'seconds':>9}{'x floor':>9}{'vs loop':>9}{'compile':>9}")
    for name, t in med.items():
        comp = compile_seconds.get(name)
        comp = f"{comp:9.2f}" if comp is not None else f"{'':>9}"
        print(f"  {name:<{width}}{t:9.2f}{t / floor:9.2f}{med['loop of fit'] / t:8.2f}x{comp}")
    print(f"\n(loop of fit: the first pass, compile included, took {loop_first:.2f} s)")
    widest = f"sweep, {len(devices)} device{'s' if len(devices) > 1 else ''}"
    goal = None
    if widest in med:
        speedup, of_floor = med["loop of fit"] / med[widest], med[widest] / floor
        goal = {"sweep": widest, "vs_loop": speedup, "x_floor": of_floor}
        if devices[0].platform == "cpu":
            goal["met"] = speedup >= 3.0 and of_floor <= 1.5
            what = "on a CPU the sweep at least 3x the loop and at most 1.5x the floor"
            got = f"{speedup:.2f}x and {of_floor:.2f}x"
        else:
            goal["met"] = speedup >= 10.0
            what, got = "on an accelerator the sweep at least 10x the loop", f"{speedup:.2f}x"
        print(f"goal, {what}: {got}  {'met' if goal['met'] else 'NOT met'}")
    return {
        "goal": goal,
        "gemm_gflops": rate,
        "runs": runs,
        "steps": steps,
        "sizes": sizes,
        "batch": batch,
        "params": params,
        "floor_s": floor,
        "devices": len(devices),
        "platform": devices[0].platform,
        "device": devices[0].device_kind,
        "jax": jax.__version__,
        "gemm": gemm_what(),
        "seconds": med,
        "compile_seconds": compile_seconds,
        "rounds": rounds,
        "all_seconds": times,
    }


def markdown(report: dict) -> str:
    """The Speed page's table (docs/speed.md) from a report: each implementation's median
    seconds, against the floor and the loop, and the sweeps' compile seconds."""
    loop = report["seconds"]["loop of fit"]
    lines = ["| implementation | seconds | x floor | vs loop | compile |", "| --- " * 5 + "|"]
    for name, t in report["seconds"].items():
        comp = report["compile_seconds"].get(name)
        lines.append(
            f"| {name} | {t:.2f} | {t / report['floor_s']:.2f} | {loop / t:.2f}× | "
            + (f"{comp:.2f} s |" if comp is not None else "|")
        )
    return "\n".join(lines)


def profile_rows(objective, params0, data, lrs, steps, batch, devices, fit_on) -> dict:
    """The ``--profile`` rows (module doc): name -> a function that runs and blocks.
    ``fit_on(data)`` is the sweep's ``run`` on other data."""
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P
    from train_loop import MU, permutations, step_scan

    from jaxnn import optimizers, sharding

    x = data[0]
    mesh = Mesh(np.array(devices), ("runs",))
    by_run = NamedSharding(mesh, P("runs"))
    indices = jnp.asarray(np.stack(permutations(len(x), batch, steps)))
    key = jax.random.key(2)

    def bare(lr):
        return step_scan(objective, optimizers.momentum(lr, MU), params0, data, indices, key)

    rates = jax.device_put(jnp.asarray(lrs, jnp.float32), by_run)
    bare_sweep = jax.jit(jax.vmap(bare))
    weights = [jax.device_put(jnp.broadcast_to(w, (len(lrs), *w.shape)), by_run) for w in
               [layer["w"] for layer in params0]]  # fmt: skip
    first = x[:batch]

    @jax.jit
    def products(weights):
        def body(ws, _):
            h = jnp.broadcast_to(first, (len(ws[0]), *first.shape))
            acts = [h]
            for w in ws:
                h = jnp.einsum("rbm,rmn->rbn", h, w)
                acts.append(h)
            grads, delta = [None] * len(ws), h
            for layer in range(len(ws) - 1, -1, -1):
                grads[layer] = jnp.einsum("rbm,rbn->rmn", acts[layer], delta)
                if layer:
                    delta = jnp.einsum("rbn,rmn->rbm", delta, ws[layer])
            return [w - 1e-9 * g for w, g in zip(ws, grads)], None

        return jax.lax.scan(body, weights, None, length=steps)[0]

    d = len(devices)
    rows = {
        f"step alone in a scan, {d} devices": lambda: jax.block_until_ready(bare_sweep(rates)),
        f"products alone, {d} devices": lambda: jax.block_until_ready(products(weights)),
    }
    if d % 2 == 0 and d > 2:
        mesh2 = Mesh(np.array(devices).reshape(d // 2, 2), ("runs", "data"))
        split = sharding.shard_batch(data, mesh2, "data", remainder="drop")  # 1,796 rows
        run, grid = fit_on(split), sweep.grid(lr=lrs)  # one run function: compiled once
        rows[f"mesh {d // 2} runs x 2 data"] = lambda: sweep.sweep(
            run, grid, key=key, devices=mesh2, keep_params=False
        )
    return rows


if __name__ == "__main__":
    main()
