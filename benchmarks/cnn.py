"""CNN training speed: ``jaxnn.cnn`` in ``fit`` against a Flax CNN of the same shape.

Model: MNIST-1D (5,000 signals of 40 samples), a 1-D CNN 40×1 → conv 5 (16 channels) →
tanh → max-pool 2 → conv 5 (16) → tanh → pool 2 → dense 10; softmax cross-entropy, SGD
with momentum 0.9, minibatches of 256 from a fresh permutation every epoch.

* ``jaxnn fit``: ``jaxnn.cnn`` in ``jaxnn.fit`` (every step in one ``lax.scan``), with
  the convolution lowered as jaxnn lowers it on CPU (shifted products, one matmul);
* ``jaxnn fit, lax conv``: the same with ``lax.conv_general_dilated`` inside the scan,
  the lowering jaxnn uses on accelerators;
* ``flax nnx, jit loop``: the same network in Flax NNX (``nnx.Conv``), a Python loop of
  ``nnx.jit`` steps with ``optax.sgd`` — what a Flax user writes;
* ``flax nnx in fit``: the NNX module through ``jaxnn.interop.from_nnx`` in ``fit``;
* ``torch``: a PyTorch eager loop (``nn.Conv1d``), when importable.

Run from the repository root: ``python benchmarks/cnn.py [--quick] [--json PATH]``.
Rounds are interleaved and medians reported; read the ratios, not the times. PyTorch's
OpenMP threads keep spinning on the cores after each of its steps, which slows whatever
runs next in the process (XLA's threads, and PyTorch's own next step): the benchmark sets
``OMP_WAIT_POLICY=PASSIVE`` (unless set already) before PyTorch is imported, and
docs/speed.md gives the rows with and without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxnn
from jaxnn import conv, datasets, interop, losses, optimizers, train

BATCH, LR, MU, CHANNELS, KERNEL = 256, 0.05, 0.9, (16, 16), 5
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when PyTorch starts OpenMP


def _data():
    d = datasets.mnist1d(5000, key=None)
    return np.asarray(d.x), np.asarray(d.y)


def jaxnn_fit(x, y, steps, lowering=None):
    net = jaxnn.cnn(
        input_shape=(40, 1), channels=CHANNELS, classes=10, kernel=KERNEL, activation="tanh"
    )
    objective = train.objective(net, losses.softmax_cross_entropy)
    params, state = net.init(jax.random.key(0))
    data = datasets.Dataset(jnp.asarray(x), jnp.asarray(y))
    original = conv._conv
    if lowering is not None:
        conv._conv = lowering  # the benchmark's comparison only
    try:

        def go():
            r = train.fit(
                objective, params, optimizers.momentum(LR, MU), data, state=state,
                key=jax.random.key(1), steps=steps, batch_size=BATCH,
            )  # fmt: skip
            jax.block_until_ready(r.params)

        go()  # compile
        start = time.perf_counter()
        go()
        return time.perf_counter() - start
    finally:
        conv._conv = original


def _nnx_net():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.c1 = nnx.Conv(1, CHANNELS[0], kernel_size=(KERNEL,), rngs=rngs)
            self.c2 = nnx.Conv(CHANNELS[0], CHANNELS[1], kernel_size=(KERNEL,), rngs=rngs)
            self.out = nnx.Linear(10 * CHANNELS[1], 10, rngs=rngs)

        def __call__(self, x):
            x = x.reshape(x.shape[0], 40, 1)
            x = nnx.max_pool(jnp.tanh(self.c1(x)), (2,), (2,))
            x = nnx.max_pool(jnp.tanh(self.c2(x)), (2,), (2,))
            return self.out(x.reshape(x.shape[0], -1))

    return Net


def flax_loop(x, y, steps):
    from flax import nnx

    model = _nnx_net()(nnx.Rngs(0))
    opt = nnx.Optimizer(model, optax.sgd(LR, MU), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, xb, yb):
        def loss(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(xb), yb).mean()

        grads = nnx.grad(loss)(model)
        opt.update(model, grads)

    rng = np.random.default_rng(0)
    xs, ys = jnp.asarray(x), jnp.asarray(y)

    def go():
        perm = rng.permutation(len(x))
        for s in range(steps):
            lo = (s * BATCH) % (len(x) - BATCH + 1)
            idx = perm[lo : lo + BATCH]
            step(model, opt, xs[idx], ys[idx])
        jax.block_until_ready(nnx.state(model))

    go()
    start = time.perf_counter()
    go()
    return time.perf_counter() - start


def flax_fit(x, y, steps):
    model = interop.from_nnx(_nnx_net())
    objective = train.objective(model, losses.softmax_cross_entropy)
    params, state = model.init(jax.random.key(0))
    data = datasets.Dataset(jnp.asarray(x), jnp.asarray(y))

    def go():
        r = train.fit(
            objective, params, optimizers.momentum(LR, MU), data, state=state,
            key=jax.random.key(1), steps=steps, batch_size=BATCH,
        )  # fmt: skip
        jax.block_until_ready(r.params)

    go()
    start = time.perf_counter()
    go()
    return time.perf_counter() - start


def torch_loop(x, y, steps):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(1, CHANNELS[0], KERNEL, padding="same"), torch.nn.Tanh(),
        torch.nn.MaxPool1d(2),
        torch.nn.Conv1d(CHANNELS[0], CHANNELS[1], KERNEL, padding="same"), torch.nn.Tanh(),
        torch.nn.MaxPool1d(2), torch.nn.Flatten(), torch.nn.Linear(10 * CHANNELS[1], 10),
    )  # fmt: skip
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MU)
    xs = torch.tensor(x).reshape(-1, 1, 40)
    ys = torch.tensor(y, dtype=torch.long)
    rng = np.random.default_rng(0)

    def go():
        perm = rng.permutation(len(x))
        for s in range(steps):
            lo = (s * BATCH) % (len(x) - BATCH + 1)
            idx = torch.tensor(perm[lo : lo + BATCH])
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xs[idx]), ys[idx]).backward()
            opt.step()

    go()
    start = time.perf_counter()
    go()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    steps, rounds = (50, 1) if args.quick else (300, 3)
    x, y = _data()
    contenders = {
        "jaxnn fit": lambda: jaxnn_fit(x, y, steps),
        "jaxnn fit, lax conv": lambda: jaxnn_fit(
            x, y, steps, lambda z, w, padding: conv._conv_general(z, w, padding)
        ),
        "flax nnx, jit loop": lambda: flax_loop(x, y, steps),
        "flax nnx in fit": lambda: flax_fit(x, y, steps),
    }
    try:
        import torch  # noqa: F401

        contenders["torch"] = lambda: torch_loop(x, y, steps)
    except ImportError:
        print("torch not importable: skipped")
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, go in contenders.items():
            times[name].append(go())
    rate = {name: steps / statistics.median(t) for name, t in times.items()}
    print(f"{'CNN on MNIST-1D, batch ' + str(BATCH):<28} steps/s   × jaxnn fit")
    for name, r in rate.items():
        print(f"  {name:<26} {r:8.1f}   {r / rate['jaxnn fit']:6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": steps, "rounds": rounds, "steps_per_second": rate}, f, indent=1)


if __name__ == "__main__":
    main()
