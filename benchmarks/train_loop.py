"""Training-loop speed: ``jaxnn.fit`` against the loops a user would otherwise write.

Same model, loss, optimiser and minibatch sizes for every implementation: a ReLU MLP,
softmax cross-entropy, SGD with momentum 0.9 (η = 0.01), minibatches drawn from a fresh
permutation every epoch.

* ``fit``: ``jaxnn.train.fit``, every step inside one ``lax.scan`` (compiled once,
  timed on a second call that reuses the compiled program);
* ``jit loop``: a Python loop calling ``jax.jit(jaxnn.train.make_step(...))`` per step;
* ``step scan``: the same step alone in a jitted ``lax.scan`` over the index arrays of the
  NumPy loops: ``fit`` without its divergence guard, shuffling and records, which
  shows what those cost per step;
* ``numpy``: forward and backward written out by hand in NumPy (float32);
* ``torch``: a PyTorch eager loop (``nn.Sequential``, ``optim.SGD``), when importable; on
  the GPU when JAX runs on one (PyTorch's default float32 products, without TF32).

Models: tiny (two moons, 2-16-16-2, batch 32: per-step dispatch dominates), digits
(64-128-128-10, batch 128) and wide (784-512-512-10, batch 256, generated data). The
floor is the float32 matrix-multiply bound: 6 × params × batch FLOPs per step over the
GEMM rate measured first (:func:`gemm_rate`: NumPy's on a CPU, JAX's on an accelerator).
The goals (:data:`GOALS`) are set for the CPU; on an accelerator the benchmark reports
without them.

Run from the repository root: ``python benchmarks/train_loop.py [--quick] [--json PATH]``.
Rounds are interleaved and medians reported; trust the ratios more than absolute times.
Each implementation's first call is timed apart, with the part of it JAX spent compiling
(:func:`jaxnn.xla.compile_seconds`; no persistent compilation cache). PyTorch's OpenMP
threads would keep spinning after its steps and slow the implementation timed next, so
``OMP_WAIT_POLICY=PASSIVE`` is set (unless set already) before PyTorch is imported.
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
import jax.numpy as jnp
import numpy as np

import jaxnn
from jaxnn import datasets, losses, optimizers, train, xla

LR, MU = 0.01, 0.9
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when PyTorch starts OpenMP


def on_accelerator() -> bool:
    """Whether JAX computes on an accelerator (a GPU or TPU) rather than the CPU."""
    return jax.default_backend() != "cpu"


def gemm_rate(repeats: int = 7) -> float:
    """float32 GFLOP/s of a square matrix product, the fastest of ``repeats`` (a floor is
    the best the machine does; a shared machine's speed drifts): on the CPU a 1024³ NumPy
    product; on an accelerator a jitted 8192³ ``jnp`` product at JAX's default precision,
    the one the models train at (TF32 on recent NVIDIA GPUs). :func:`gemm_what` names it."""
    n = 8192 if on_accelerator() else 1024
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    if on_accelerator():
        a, b, matmul = jnp.asarray(a), jnp.asarray(b), jax.jit(jnp.matmul)

        def product():
            matmul(a, b).block_until_ready()
    else:

        def product():
            a @ b

    product()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times) / 1e9


def gemm_what() -> str:
    """Which product :func:`gemm_rate` times on this machine."""
    if on_accelerator():
        return f"jnp.matmul 8192^3 on {jax.devices()[0].device_kind}, default precision"
    return "NumPy, 1024^3"


def make_data(name: str):
    if name == "tiny":
        d = datasets.moons(1024, key=jax.random.key(0))
        return np.asarray(d.x), np.asarray(d.y), (2, 16, 16, 2), 32
    if name == "digits":
        d = datasets.digits()
        x = np.asarray(d.x) / 16.0
        return x.astype(np.float32), np.asarray(d.y), (64, 128, 128, 10), 128
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 784), dtype=np.float32)
    return x, rng.integers(0, 10, 4096).astype(np.int32), (784, 512, 512, 10), 256


def permutations(n, batch, steps, seed=0):
    """Per-step index arrays: a fresh permutation per epoch, full batches only."""
    rng = np.random.default_rng(seed)
    per_epoch, out = n // batch, []
    while len(out) < steps:
        perm = rng.permutation(n)
        out += [perm[i * batch : (i + 1) * batch] for i in range(per_epoch)]
    return out[:steps]


# ---- the implementations: each returns a function run(steps) that trains and blocks ----


def jax_setup():
    """The objective (ReLU MLP, softmax cross-entropy) and optimiser every JAX
    implementation uses."""
    objective = train.objective(
        functools.partial(jaxnn.forward, activation="relu"), losses.softmax_cross_entropy
    )
    return objective, optimizers.momentum(LR, MU)


def bench_fit(x, y, sizes, batch):
    objective, optimizer = jax_setup()
    params = jaxnn.init_mlp(jax.random.key(1), sizes, init="he")
    data = (jnp.asarray(x), jnp.asarray(y))

    def run(steps):
        result = train.fit(
            objective,
            params,
            optimizer,
            data,
            key=jax.random.key(2),
            steps=steps,
            batch_size=batch,
            progress=False,
        )
        jax.block_until_ready(result.params)

    return run


def bench_jit_loop(x, y, sizes, batch):
    objective, optimizer = jax_setup()
    step = jax.jit(train.make_step(objective, optimizer))
    params0 = jaxnn.init_mlp(jax.random.key(1), sizes, init="he")
    key = jax.random.key(2)

    def run(steps):
        params, state, opt_state = params0, {}, optimizer.init(params0)
        for idx in permutations(len(x), batch, steps):
            params, state, opt_state, _ = step(params, state, opt_state, (x[idx], y[idx]), key)
        jax.block_until_ready(params)

    return run


def step_scan(objective, optimizer, params, data, indices, key):
    """The training step alone in a ``lax.scan`` over rows of minibatch ``indices`` (steps,
    batch), from ``params`` and a fresh optimiser state: the final params. Traceable, so it
    can be jitted or vmapped (over the optimiser's numbers)."""
    step = train.make_step(objective, optimizer)
    xs, ys = data

    def body(carry, idx):
        params, state, opt_state, _ = step(*carry, (xs[idx], ys[idx]), key)
        return (params, state, opt_state), None

    return jax.lax.scan(body, (params, {}, optimizer.init(params)), indices)[0][0]


def bench_step_scan(x, y, sizes, batch):
    objective, optimizer = jax_setup()
    params0 = jaxnn.init_mlp(jax.random.key(1), sizes, init="he")
    data, key = (jnp.asarray(x), jnp.asarray(y)), jax.random.key(2)
    scan = jax.jit(
        lambda params, indices: step_scan(objective, optimizer, params, data, indices, key)
    )

    def run(steps):
        indices = jnp.asarray(np.stack(permutations(len(x), batch, steps)))
        jax.block_until_ready(scan(params0, indices))

    return run


#: The goals this benchmark checks: (model, implementation, reference, least ratio of
#: the reference's seconds per step to the implementation's); "floor" as the reference
#: gives a most ratio of seconds per step to the floor instead.
GOALS = (
    ("digits", "fit", "numpy", 1.0),
    ("digits", "fit", "torch", 3.0),
    ("tiny", "fit", "jit loop", 10.0),
    ("wide", "fit", "floor", 1.15),
)


def goals(report: dict) -> list[dict]:
    """Each of :data:`GOALS` measured: the ratio and whether it is met."""
    out = []
    for model, impl, reference, bound in GOALS:
        row = report["models"][model]
        t = row["seconds_per_step"][impl]
        if reference == "floor":
            ratio = t / row["floor_s"]
            met = ratio <= bound
        elif reference in row["seconds_per_step"]:
            ratio = row["seconds_per_step"][reference] / t
            met = ratio >= bound
        else:
            continue  # PyTorch not installed
        out.append(
            {"model": model, "impl": impl, "reference": reference, "bound": bound,
             "ratio": ratio, "met": bool(met)}
        )  # fmt: skip
    return out


def markdown(report: dict) -> str:
    """The Speed page's table (docs/speed.md) from a report: steps/s of each implementation,
    how many times faster ``fit`` ran, ``fit`` against the floor and its first call."""
    impls = ["fit", "jit loop", "step scan", "numpy", "torch"]
    heads = ["`fit`", "jit-step loop", "step alone in a scan", "NumPy by hand", "PyTorch eager"]
    lines = [
        "| model | " + " | ".join(heads) + " | `fit` x floor | `fit` first call (compiling) |",
        "| --- " * (len(heads) + 3) + "|",
    ]
    for name, row in report["models"].items():
        t = row["seconds_per_step"]
        cells = [f"{1 / t['fit']:,.0f}"] + [
            f"{1 / t[i]:,.0f} (fit {t[i] / t['fit']:.2f}x)" if i in t else "n/a" for i in impls[1:]
        ]
        model = f"{name} {'-'.join(map(str, row['sizes']))}, batch {row['batch']}"
        first = f"{row['first_call_seconds']['fit']:.2f} s ({row['compile_seconds']['fit']:.2f} s)"
        lines.append(
            f"| {model} | " + " | ".join(cells) + f" | {t['fit'] / row['floor_s']:.2f} | {first} |"
        )
    return "\n".join(lines)


def bench_numpy(x, y, sizes, batch):
    rng = np.random.default_rng(1)
    w0 = [
        (rng.standard_normal((m, n)) * np.sqrt(2 / m)).astype(np.float32)
        for m, n in itertools.pairwise(sizes)
    ]
    b0 = [np.zeros(n, np.float32) for n in sizes[1:]]

    def run(steps):
        w, b = [a.copy() for a in w0], [a.copy() for a in b0]
        vw, vb = [np.zeros_like(a) for a in w], [np.zeros_like(a) for a in b]
        for idx in permutations(len(x), batch, steps):
            xb, yb = x[idx], y[idx]
            acts = [xb]
            for l in range(len(w) - 1):
                acts.append(np.maximum(acts[-1] @ w[l] + b[l], 0.0))
            logits = acts[-1] @ w[-1] + b[-1]
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1.0
            delta = p / len(yb)  # dC/da for the mean softmax cross-entropy: (z - y)/n
            for l in range(len(w) - 1, -1, -1):
                gw, gb = acts[l].T @ delta, delta.sum(0)
                if l:
                    delta = (delta @ w[l].T) * (acts[l] > 0)
                vw[l] = -LR * gw + MU * vw[l]  # notes 001's momentum
                vb[l] = -LR * gb + MU * vb[l]
                w[l] += vw[l]
                b[l] += vb[l]

    return run


def torch_device() -> str:
    """Where the PyTorch implementations run: on the GPU when JAX runs on one and PyTorch
    sees CUDA, else on the CPU."""
    import torch

    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def torch_sync() -> None:
    """Waits for PyTorch's queued GPU work (nothing on the CPU, where it runs eagerly)."""
    import torch

    if torch_device() == "cuda":
        torch.cuda.synchronize()


def torch_mlp(sizes, seed):
    """A PyTorch ReLU MLP with layer widths ``sizes`` (torch's default init, ``seed``), set
    to use every core, on :func:`torch_device`."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(seed)
    layers = []
    for i, (m, n) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(m, n))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(torch_device())


def bench_torch(x, y, sizes, batch, lr=LR):
    import torch

    net = torch_mlp(sizes, seed=1)
    device = torch_device()
    state0 = {k: v.clone() for k, v in net.state_dict().items()}
    xt = torch.from_numpy(np.array(x)).to(device)
    yt = torch.from_numpy(y.astype(np.int64)).to(device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(steps):
        net.load_state_dict(state0)
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=MU)
        for idx in permutations(len(x), batch, steps):
            idx = torch.from_numpy(idx).to(device)
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
        torch_sync()

    return run


def first_call(fn, *args) -> tuple[float, float]:
    """(seconds, of which JAX compiling: :func:`jaxnn.xla.compile_seconds`) of a call."""
    compiling, start = xla.compile_seconds(), time.perf_counter()
    fn(*args)
    return time.perf_counter() - start, xla.compile_seconds() - compiling


def measure(runs: dict, steps: int, rounds: int) -> tuple[dict, dict]:
    """Median seconds per step of each implementation, rounds interleaved; and each one's
    first call: ``{name: (seconds, compile seconds)}``."""
    first = {name: first_call(run, steps) for name, run in runs.items()}  # compile, caches
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run(steps)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--table", help="print the Speed page's table from this --json file")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as f:
            print(markdown(json.load(f)))
        return
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
        print(
            "PyTorch is not importable: the torch column is left out "
            "(pip install torch to include it)"
        )
    xla.compile_seconds()  # counts from here
    rate = gemm_rate()
    print(
        f"float32 GEMM rate ({gemm_what()}): {rate:.1f} GFLOP/s; "
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs\n"
    )
    plan = {"tiny": 2000, "digits": 1000, "wide": 60}
    rounds = 3 if args.quick else 5
    report = {
        "gemm_gflops": rate,
        "gemm": gemm_what(),
        "jax": jax.__version__,
        "device": jax.devices()[0].device_kind,
        "torch_device": torch_device() if have_torch else None,
        "models": {},
    }
    for name, steps in plan.items():
        steps = max(10, steps // 4) if args.quick else steps
        x, y, sizes, batch = make_data(name)
        params = sum(m * n + n for m, n in itertools.pairwise(sizes))
        floor = 6 * params * batch / (rate * 1e9)
        runs = {
            "fit": bench_fit(x, y, sizes, batch),
            "jit loop": bench_jit_loop(x, y, sizes, batch),
            "step scan": bench_step_scan(x, y, sizes, batch),
            "numpy": bench_numpy(x, y, sizes, batch),
        }
        if have_torch:
            runs["torch"] = bench_torch(x, y, sizes, batch)
        per_step, first = measure(runs, steps, rounds)
        print(
            f"{name}: {'-'.join(map(str, sizes))}, batch {batch}, {params:,} params, "
            f"{steps} steps; floor {floor * 1e3:.3f} ms/step"
        )
        print(
            f"  {'implementation':<16}{'steps/s':>10}{'x floor':>10}{'fit speed-up':>14}"
            f"{'first call s':>14}{'compile s':>11}"
        )
        for impl, t in per_step.items():
            seconds, compiling = first[impl]
            print(
                f"  {impl:<16}{1 / t:>10.0f}{t / floor:>10.2f}{t / per_step['fit']:>13.2f}x"
                f"{seconds:>14.2f}{compiling:>11.2f}"
            )
        report["models"][name] = {
            "sizes": sizes,
            "batch": batch,
            "params": params,
            "steps": steps,
            "floor_s": floor,
            "seconds_per_step": per_step,
            "first_call_seconds": {impl: s for impl, (s, _) in first.items()},
            "compile_seconds": {impl: c for impl, (_, c) in first.items()},
        }
        print()
    report["goals"] = [] if on_accelerator() else goals(report)
    print("goals:" if report["goals"] else "goals: set for the CPU, not checked here")
    for g in report["goals"]:
        if g["reference"] == "floor":
            what = f"at most {g['bound']:g}x the floor: {g['ratio']:.2f}x"
        else:
            what = f"at least {g['bound']:g}x {g['reference']}: {g['ratio']:.2f}x"
        print(f"  {g['model']} {g['impl']} {what}  {'met' if g['met'] else 'NOT met'}")
    print("\n" + markdown(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
