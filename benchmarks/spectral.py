"""Matrix-free spectrum speed: ``jaxnn.spectral`` against PyHessian's way in PyTorch.

ReLU MLPs on 256 generated MNIST-sized examples (softmax cross-entropy, float32):

* one HVP; 20 HVPs alone (a jitted loop); power iteration, 20 iterations; Lanczos, 30
  steps with full reorthogonalisation — in jaxnn, in matfree (``tridiag_sym``, when
  importable) and in PyTorch written as PyHessian does (double-backward HVP,
  ``torch.autograd.grad(g·v)``; Gram-Schmidt against every earlier vector; on the GPU
  when JAX runs on one);
* the reorthogonalisation's share of Lanczos (its time less 30 HVPs) beside the time the
  memory traffic it needs takes at the machine's copy bandwidth, measured first: one
  Gram-Schmidt pass at step j reads the j + 1 basis vectors twice;
* ``--exact``: the exact path (``jaxnn.hessian.spectrum(vectors=False)``) against the top
  5 eigenvalues by Lanczos on tanh MLPs small enough for both, to find the crossover;
* ``--scale``: the top 5 eigenvalues by 30 Lanczos steps at 10⁶ and 10⁷ parameters, on
  one device and, with ``--host-devices N``, with the params split over N host devices.

Times are medians of ``--repeat`` interleaved rounds of warm calls; the first call is
reported apart, with the part of it JAX spent compiling (:func:`jaxnn.xla.compile_seconds`;
no persistent compilation cache); the exact-vs-Lanczos rows are the best of ``--repeat``
warm calls.
Run from the repository root: ``python benchmarks/spectral.py [--quick] [--exact]
[--scale [--host-devices N]] [--json PATH]``; ``--table PATH`` prints the Speed page's
table from a ``--json`` file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from train_loop import first_call, on_accelerator

import jaxnn
from jaxnn import hessian, losses, spectral, xla

TORCH = "torch (PyHessian's way)"
MODELS = {"7e5": (784, 512, 512, 10), "1e6": (784, 1024, 256, 10)}
SCALE = {"1e6": (784, 1024, 256, 10), "1e7": (784, 3000, 3000, 10)}


def best(fn, repeat: int) -> tuple[float, float, float]:
    """(first call seconds, best of ``repeat`` warm calls, the first call's compile
    seconds)."""
    first, compiling = first_call(fn)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, min(times), compiling


def interleaved(fns: dict, rounds: int) -> dict:
    """name -> (first call seconds, median of ``rounds`` warm calls, the first call's
    compile seconds), the calls of every round made one after another so that a drift of
    the machine's speed hits all alike."""
    first = {name: first_call(fn) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: (first[name][0], float(np.median(t)), first[name][1]) for name, t in times.items()
    }


def copy_bandwidth(mb: int = 512) -> float:
    """GB/s of the faster of a NumPy and a jitted copy of ``mb`` MB (read + write counted),
    over 5 copies (50 on an accelerator, where one takes a fraction of a millisecond)."""
    a = np.ones(mb * 2**20 // 4, np.float32)
    b = np.empty_like(a)
    x = jnp.asarray(a)
    copy = jax.jit(lambda v: v + 0.0)
    repeats = 50 if on_accelerator() else 5
    rates = []
    for run in (lambda: np.copyto(b, a), lambda: copy(x).block_until_ready()):
        run()
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        rates.append(2 * a.nbytes * repeats / (time.perf_counter() - start) / 1e9)
    return max(rates)


def problem(sizes, activation="relu", batch=256, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((batch, sizes[0]), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, sizes[-1], batch))
    params = jaxnn.init_mlp(jax.random.key(seed), sizes, init="he")

    def loss(p):
        return losses.softmax_cross_entropy(jaxnn.forward(p, x, activation=activation), y)

    return params, loss, (np.asarray(x), np.asarray(y))


def bench_jax(sizes) -> dict:
    params, loss, _ = problem(sizes)
    v = jax.tree.map(jnp.ones_like, params)
    key = jax.random.key(1)

    @jax.jit
    def twenty(v):
        return lax.fori_loop(0, 20, lambda i, u: spectral.hvp(loss, params, u), v)

    out = {}
    out["hvp"] = lambda: jax.block_until_ready(spectral.hvp(loss, params, v))
    out["20 hvps"] = lambda: jax.block_until_ready(twenty(v))
    out["power 20"] = lambda: jax.block_until_ready(
        spectral.power_iteration(loss, params, key=key, tol=0.0, max_iter=20).eigenvalue
    )
    out["lanczos 30"] = lambda: jax.block_until_ready(
        spectral.lanczos(loss, params, 30, key=key).alpha
    )
    try:
        from matfree import decomp
    except ImportError:
        return out
    tri = jax.jit(
        lambda u: decomp.tridiag_sym(30, reortho="full")(
            lambda w, p: spectral.hvp(loss, p, w), u, params
        )
    )
    unit = jax.tree.map(lambda a: a / jnp.sqrt(sum(jnp.sum(b**2) for b in jax.tree.leaves(v))), v)
    out["matfree lanczos 30"] = lambda: jax.block_until_ready(tri(unit))
    return out


def bench_torch(sizes) -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    from train_loop import torch_device, torch_mlp, torch_sync

    _, _, (x, y) = problem(sizes)
    net = torch_mlp(sizes, seed=0)
    params = list(net.parameters())
    device = torch_device()
    xt = torch.from_numpy(np.array(x)).to(device)
    yt = torch.from_numpy(y.astype(np.int64)).to(device)
    loss = torch.nn.functional.cross_entropy(net(xt), yt)
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def hvp(v):  # PyHessian's hessian_vector_product: d(g·v)/dθ on the kept graph
        return torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)

    def dot(a, b):
        return sum(torch.sum(p * q) for p, q in zip(a, b))

    def normalise(v):
        n = torch.sqrt(dot(v, v))
        return [p / n for p in v]

    def power(iters=20):
        v = normalise([torch.randn_like(p) for p in params])
        for _ in range(iters):
            hv = hvp(v)
            lam = dot(hv, v)
            v = normalise([h.detach() for h in hv])
        return float(lam)

    def lanczos(k=30):  # PyHessian's density(): full reorthogonalisation in a Python loop
        v = normalise([torch.randint_like(p, high=2) * 2 - 1 for p in params])
        basis, alpha, beta = [v], [], []
        for i in range(k):
            w = [h.detach() for h in hvp(basis[-1])]
            a = float(dot(w, basis[-1]))
            alpha.append(a)
            if i:
                w = [p - a * q - beta[-1] * r for p, q, r in zip(w, basis[-1], basis[-2])]
            else:
                w = [p - a * q for p, q in zip(w, basis[-1])]
            for q in basis:  # Gram-Schmidt against every earlier vector
                c = dot(w, q)
                w = [p - c * r for p, r in zip(w, q)]
            b = float(torch.sqrt(dot(w, w)))
            beta.append(b)
            basis.append([p / b for p in w])
        return alpha

    v = [torch.ones_like(p) for p in params]
    return {"hvp": lambda: (hvp(v), torch_sync()), "power 20": power, "lanczos 30": lanczos}


def exact_vs_lanczos(repeat) -> list:
    rows = []
    key = jax.random.key(0)
    for h in (16, 32, 64):
        sizes = (64, h, h, 10)
        params, loss, _ = problem(sizes, activation="tanh")
        size = sum(int(np.size(p)) for p in jax.tree.leaves(params))
        exact = best(lambda loss=loss, p=params: hessian.spectrum(loss, p, vectors=False), repeat)
        top = best(
            lambda loss=loss, p=params: spectral.top_eigenvalues(loss, p, 5, key=key), repeat
        )
        rows.append({"params": size, "exact": exact, "lanczos top 5": top})
        print(
            f"  P = {size:>6,}: exact spectrum {exact[1]:7.3f} s (first {exact[0]:.2f}, "
            f"compiling {exact[2]:.2f}), Lanczos top 5 {top[1]:7.3f} s (first {top[0]:.2f}, "
            f"compiling {top[2]:.2f})"
        )
    return rows


def at_scale() -> dict:
    """The top 5 by 30 Lanczos steps at 10⁶ and 10⁷ parameters: the first call (compilation
    included) and a warm one, on one device and, when there are several, with the params
    (and so the Lanczos basis) split over all of them (:func:`jaxnn.sharding.shard_params`
    on a one-axis mesh)."""
    from jaxnn import sharding

    counts = sorted({1, len(jax.devices())})
    out = {}
    for name, sizes in SCALE.items():
        params, loss, _ = problem(sizes)
        size = sum(int(np.size(p)) for p in jax.tree.leaves(params))
        for count in counts:
            mesh = sharding.make_mesh((count,), ("model",), devices=jax.devices()[:count])
            placed = sharding.shard_params(params, mesh, "model")

            found = []  # the warm call's pairs, reported below

            def top(placed=placed, loss=loss, found=found):
                pairs = spectral.top_eigenvalues(loss, placed, 5, key=jax.random.key(0), order=30)
                found.append(jax.block_until_ready(pairs))

            first, warm, compiling = best(top, 1)
            pairs = found[-1]
            out[f"{name} on {count}"] = {
                "params": size,
                "devices": count,
                "first_s": first,
                "warm_s": warm,
                "compile_s": compiling,
                "values": pairs.values.tolist(),
                "residuals": pairs.residuals.tolist(),
            }
            print(
                f"  {'-'.join(map(str, sizes))} (P = {size:,}) on {count} device(s): top 5 by 30 "
                f"Lanczos steps {warm:.1f} s warm, {first:.1f} s first call "
                f"({compiling:.1f} s compiling); "
                f"{np.round(pairs.values, 3)}"
            )
    return out


def markdown(report: dict) -> str:
    """The Speed page's table (docs/speed.md) from a report: per model, milliseconds of one
    HVP, 20 power iterations and 30 Lanczos steps in jaxnn, matfree and PyTorch (warm
    medians), and the Lanczos goal (30 HVPs + twice the basis reads' time)."""

    def ms(rows, impl, what):
        t = rows.get(impl, {}).get(what)
        return f"{t[1] * 1e3:,.1f}" if t else "n/a"

    def faster(rows, what):
        torch = rows.get(TORCH, {}).get(what)
        return f" (**{torch[1] / rows['jaxnn'][what][1]:.2f}×**)" if torch else ""

    lines = [
        "| P | one HVP: jaxnn / PyTorch | 20 power iterations: jaxnn / PyTorch | "
        "30 Lanczos steps: jaxnn / matfree / PyTorch | Lanczos against its goal |",
        "| --- " * 5 + "|",
    ]
    for model in report["models"].values():
        rows = model["rows"]
        lanczos = rows["jaxnn"]["lanczos 30"][1]
        lines.append(
            f"| {model['params']:,} ({'-'.join(map(str, model['sizes']))}) | "
            f"{ms(rows, 'jaxnn', 'hvp')} / {ms(rows, TORCH, 'hvp')} ms | "
            f"{ms(rows, 'jaxnn', 'power 20')} / {ms(rows, TORCH, 'power 20')} ms"
            f"{faster(rows, 'power 20')} | {ms(rows, 'jaxnn', 'lanczos 30')} / "
            f"{ms(rows, 'jaxnn', 'matfree lanczos 30')} / {ms(rows, TORCH, 'lanczos 30')} ms"
            f"{faster(rows, 'lanczos 30')} | {lanczos * 1e3:,.0f} / "
            f"{model['lanczos_goal_s'] * 1e3:,.0f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 7·10⁵ model only")
    parser.add_argument("--exact", action="store_true", help="exact path vs Lanczos")
    parser.add_argument("--scale", action="store_true", help="10⁶ and 10⁷ parameters")
    parser.add_argument(
        "--host-devices", type=int, default=1,
        help="split the CPU into this many XLA devices (for --scale's sharded rows)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json")
    parser.add_argument("--table", help="print the Speed page's table from this --json file")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as f:
            print(markdown(json.load(f)))
        return
    if args.host_devices > 1:  # before JAX creates its CPU backend
        flag = f"--xla_force_host_platform_device_count={args.host_devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    xla.compile_seconds()  # counts from here
    bandwidth = copy_bandwidth()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; "
        f"copy bandwidth {bandwidth:.1f} GB/s\n"
    )
    report = {
        "bandwidth_gbs": bandwidth,
        "jax": jax.__version__,
        "device": jax.devices()[0].device_kind,
        "models": {},
    }
    for name, sizes in list(MODELS.items())[: 1 if args.quick else None]:
        size = sum(m * n + n for m, n in itertools.pairwise(sizes))
        print(f"{'-'.join(map(str, sizes))}, batch 256, P = {size:,}")
        fns = {("jaxnn", what): fn for what, fn in bench_jax(sizes).items()}
        torch_fns = bench_torch(sizes)
        if torch_fns is not None:
            fns.update({(TORCH, what): fn for what, fn in torch_fns.items()})
        rows = {}
        for (impl, what), timing in interleaved(fns, args.repeat).items():
            rows.setdefault(impl, {})[what] = timing
        torch_rows = rows.get(TORCH)
        for impl, result in rows.items():
            for what, (first, t, compiling) in result.items():
                print(
                    f"  {impl:<24} {what:<20} {t * 1e3:9.1f} ms   (first call {first:.2f} s, "
                    f"compiling {compiling:.2f} s)"
                )
        jx = rows["jaxnn"]
        reortho = jx["lanczos 30"][1] - 30 * jx["20 hvps"][1] / 20
        traffic = 2 * sum(j + 1 for j in range(30)) * size * 4  # one pass, read twice
        print(
            f"  reorthogonalisation: {reortho:.3f} s of Lanczos; its {traffic / 1e9:.2f} GB of "
            f"basis reads take {traffic / (bandwidth * 1e9):.3f} s at the copy bandwidth"
        )
        goal = 30 * jx["20 hvps"][1] / 20 + 2 * traffic / (bandwidth * 1e9)
        met = "met" if jx["lanczos 30"][1] <= goal else "NOT met"
        print(
            f"  goal, Lanczos at most 30 HVPs + twice the basis reads' time: "
            f"{jx['lanczos 30'][1] * 1e3:.0f} ms against {goal * 1e3:.0f} ms  {met}"
        )
        print(f"  power iteration / its 20 HVPs: {jx['power 20'][1] / jx['20 hvps'][1]:.2f}")
        if torch_rows is not None:
            for what in ("power 20", "lanczos 30"):
                print(f"  {what}: jaxnn {torch_rows[what][1] / jx[what][1]:.2f}x faster than torch")
        report["models"][name] = {
            "sizes": sizes,
            "params": size,
            "rows": {i: {w: list(t) for w, t in r.items()} for i, r in rows.items()},
            "reortho_s": reortho,
            "traffic_gb": traffic / 1e9,
            "lanczos_goal_s": goal,
        }
        print()
    if args.exact:
        print("exact spectrum against Lanczos (tanh MLP 64-h-h-10, batch 256):")
        report["exact_vs_lanczos"] = exact_vs_lanczos(args.repeat)
    if args.scale:
        print("scale:")
        report["scale"] = at_scale()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
