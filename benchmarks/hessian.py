"""Exact Hessian + eigendecomposition: jaxnn against what a user would otherwise write.

Model: tanh MLP 64-h-h-10 on the first 256 digits (standardised), softmax cross-entropy,
float32; h = 11, 42, 69 give P = 967, 4,966, 10,015 parameters.

Building H (P × P):

* ``jax.hessian``: ``jax.hessian(loss)(flat)`` on the flattened params;
* ``jacfwd(jacrev)``, ``jacrev(jacrev)``: the two compositions written out;
* ``vmap(hvp)``: all P Hessian-vector products (jvp of grad) in one vmap;
* ``jaxnn.hessian_matrix``: HVPs in vmapped batches inside one ``lax.fori_loop`` (one
  loop body, one P × P buffer);
* ``torch hessian``: ``torch.autograd.functional.hessian`` (when torch is importable).

Build + eigendecomposition, end to end as a user calls it:

* ``jaxnn spectrum(vectors=False)`` / ``spectrum(vectors=True)``;
* ``jax.hessian + eigh``: ``jnp.linalg.eigh`` of ``jax.hessian`` (``eigvalsh`` costs the
  same in JAX: it computes the vectors anyway);
* ``torch hessian + eigvalsh`` / ``+ eigh``.

Each case runs in a fresh subprocess (so each peak memory is its own: the peak resident
set, or on a GPU the device's peak bytes, above what the process held before the case,
reported as a multiple of the P² matrix). Cases run one after another in a fixed order
(``--repeat N`` interleaves N rounds and reports medians).
``seconds`` is a first call, JAX's compilation (about a second) included, as a user meets
it; ``again`` is a second call in the same process (compiled program reused), taken where
P < 5,000 or on a GPU. All JAX methods use every core; torch is given every core too.

Run from the repository root: ``python benchmarks/hessian.py [--sizes 967,4966,10015]
[--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

H_FOR_P = {967: 11, 4966: 42, 10015: 69}
BUILDS = (
    "jax.hessian",
    "jacfwd(jacrev)",
    "jacrev(jacrev)",
    "vmap(hvp)",
    "jaxnn.hessian_matrix",
    "torch hessian",
)
ENDS = (
    "jaxnn spectrum(vectors=False)",
    "torch hessian + eigvalsh",
    "jaxnn spectrum(vectors=True)",
    "jax.hessian + eigh",
    "torch hessian + eigh",
)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _data():
    import numpy as np

    from jaxnn import datasets

    d = datasets.digits()
    x = np.asarray(d.x[:256], np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return x, np.asarray(d.y[:256])


def _jax_case(method: str, hidden: int) -> dict:
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    import jaxnn
    from jaxnn import hessian, losses

    x, y = _data()
    x = jnp.asarray(x)
    params = jaxnn.init_mlp(jax.random.key(0), [64, hidden, hidden, 10])

    def loss_fn(p):
        return losses.softmax_cross_entropy(jaxnn.forward(p, x, activation="tanh"), y)

    flat, unravel = ravel_pytree(params)

    def flat_loss(v):
        return loss_fn(unravel(v))

    def hvps(v):
        grad = jax.grad(flat_loss)
        return jax.vmap(lambda t: jax.jvp(grad, (v,), (t,))[1])(jnp.eye(v.shape[0], dtype=v.dtype))

    builders = {
        "jax.hessian": jax.hessian(flat_loss),
        "jacfwd(jacrev)": jax.jacfwd(jax.jacrev(flat_loss)),
        "jacrev(jacrev)": jax.jacrev(jax.jacrev(flat_loss)),
        "vmap(hvp)": hvps,
    }
    hessian.spectrum(lambda w: jnp.sum(w**4), jnp.ones(3))  # start the runtime first
    gpu = jax.default_backend() != "cpu"
    device = jax.devices()[0]

    def device_bytes():
        stats = device.memory_stats() or {}
        return stats.get("peak_bytes_in_use", 0)

    jitted = {name: jax.jit(fn) for name, fn in builders.items()}

    def call():
        if method in builders:
            jax.block_until_ready(jitted[method](flat))
        elif method == "jaxnn.hessian_matrix":
            jax.block_until_ready(hessian.hessian_matrix(loss_fn, params)[0])
        elif method == "jax.hessian + eigh":
            jax.block_until_ready(jnp.linalg.eigh(jitted["jax.hessian"](flat)))
        elif method.startswith("jaxnn spectrum"):
            hessian.spectrum(loss_fn, params, vectors="True" in method)
        else:
            raise ValueError(method)

    base, base_dev = _rss(), device_bytes()
    seconds = _timed(call)
    peak = (device_bytes() - base_dev) if gpu else (_peak_rss() - base)
    return {
        "seconds": seconds,
        "again": _timed(call) if flat.size < 5000 or gpu else None,
        "peak_bytes": peak,
        "params": int(flat.size),
        "device": str(device.device_kind),
    }


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _torch_case(method: str, hidden: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    x, y = _data()
    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y.astype(np.int64)).to(dev)
    sizes = [64, hidden, hidden, 10]
    gen = torch.Generator().manual_seed(0)
    shapes = [s for m, n in itertools.pairwise(sizes) for s in ((m, n), (n,))]
    # LeCun-normal weights and zero biases, as jaxnn.init_mlp draws them
    flat = torch.cat(
        [
            (
                torch.randn(s, generator=gen) / s[0] ** 0.5 if len(s) == 2 else torch.zeros(s)
            ).reshape(-1)
            for s in shapes
        ]
    ).to(dev)

    def loss(v):
        offset, h = 0, xt
        for i, s in enumerate(shapes):
            n = int(np.prod(s))
            t = v[offset : offset + n].reshape(s)
            offset += n
            h = h @ t if len(s) == 2 else h + t
            if len(s) == 1 and i < len(shapes) - 1:
                h = torch.tanh(h)
        return torch.nn.functional.cross_entropy(h, yt)

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.max_memory_allocated() if cuda else _rss()

    def call():
        h = torch.autograd.functional.hessian(loss, flat)
        if method == "torch hessian + eigvalsh":
            torch.linalg.eigvalsh(h)
        elif method == "torch hessian + eigh":
            torch.linalg.eigh(h)
        if cuda:
            torch.cuda.synchronize()

    seconds = _timed(call)
    peak = (torch.cuda.max_memory_allocated() if cuda else _peak_rss()) - base
    return {
        "seconds": seconds,
        "again": _timed(call) if flat.numel() < 5000 or cuda else None,
        "peak_bytes": peak,
        "params": int(flat.numel()),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }


def _worker(method: str, hidden: int) -> None:
    case = _torch_case if method.startswith("torch") else _jax_case
    print("RESULT " + json.dumps(case(method, hidden)), flush=True)


def _run(method: str, hidden: int, timeout: float) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", method, str(hidden)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": tail[:120]}


def _median(runs: list[dict]) -> dict:
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    out = dict(good[0])
    for key in ("seconds", "again", "peak_bytes"):
        if out.get(key) is not None:
            out[key] = statistics.median(r[key] for r in good)
    return out


def _have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="967,4966,10015",
        help="parameter counts, from " + ", ".join(map(str, H_FOR_P)),
    )
    parser.add_argument("--quick", action="store_true", help="P = 967 and 4,966 only")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    parser.add_argument("--methods", help="comma-separated subset of the methods to run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the cases this many times, interleaved; report medians",
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker[0], int(args.worker[1]))
        return
    sizes = [967, 4966] if args.quick else [int(s) for s in args.sizes.split(",")]
    torch = _have_torch()
    if not torch:
        print("torch is not importable: its rows are left out")
    results = {}
    for size in sizes:
        matrix = 4 * size * size
        print(f"\nP = {size:,} (the P² float32 matrix: {matrix / 2**20:,.0f} MiB)")
        print(f"{'method':34s} {'seconds':>9s} {'again':>7s} {'peak / P²':>10s}")
        methods = [
            m
            for m in BUILDS + ENDS
            if (torch or not m.startswith("torch"))
            and (not args.methods or m in args.methods.split(","))
        ]
        runs = {m: [] for m in methods}
        for _ in range(args.repeat):
            for method in methods:
                runs[method].append(_run(method, H_FOR_P[size], args.timeout))
        for method in methods:
            r = _median(runs[method])
            results[f"{method} @ {size}"] = r
            if "error" in r:
                print(f"{method:34s} {r['error']}")
            else:
                again = "—" if r["again"] is None else f"{r['again']:.2f}"
                peak = r["peak_bytes"] / matrix
                print(f"{method:34s} {r['seconds']:9.2f} {again:>7s} {peak:10.2f}", flush=True)
        if torch:
            for ours, theirs in (
                ("jaxnn spectrum(vectors=False)", "torch hessian + eigvalsh"),
                ("jaxnn spectrum(vectors=True)", "torch hessian + eigh"),
            ):
                a, b = results.get(f"{ours} @ {size}", {}), results.get(f"{theirs} @ {size}", {})
                if "seconds" in a and "seconds" in b:
                    print(
                        f"  {theirs} / {ours}: {b['seconds'] / a['seconds']:.2f}× (first call)"
                        + (f", {b['again'] / a['again']:.2f}× (again)" if a["again"] else "")
                    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
