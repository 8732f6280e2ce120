"""The devices a sweep runs on, and how many runs go to them at a time."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
from jax.sharding import Mesh

from jaxnn import _checks

__all__ = [
    "CHUNK_BYTES",
    "DEVICES_PER_CORE",
    "RUNS_AXIS",
    "device_count",
    "pick_chunk",
    "resolve_devices",
    "runs_shards",
    "use_cpu_devices",
]

#: Default device-memory budget of one chunk, per device, where the device does not report
#: its memory (CPU).
CHUNK_BYTES = 2**30

#: XLA:CPU devices per core that :func:`use_cpu_devices` makes by default.
DEVICES_PER_CORE = 8


def use_cpu_devices(n: int | None = None) -> int:
    """Runs XLA:CPU as ``n`` devices (default: :data:`DEVICES_PER_CORE` per core available
    to this process, at most 64).

    XLA:CPU runs a batched matrix product — one small product per run of a vmapped sweep —
    on a single core, and the hundreds of small unfused operations of a training step one
    after another, so on one device a sweep of small models keeps about one core busy. As
    n devices, the sweep's sharding gives each device K/n runs, and the devices' programs
    run side by side; more devices than cores still help (``benchmarks/lr_sweep.py``,
    numbers in ``benchmarks/README.md``). Other work is
    unaffected: unsharded programs run on the first device, whose large matrix products
    still use every core.

    Call it before JAX computes anything (right after ``import``), as JAX fixes its devices
    at its first computation; the ``jaxnn sweep`` command does. Setting
    ``XLA_FLAGS=--xla_force_host_platform_device_count=n`` before Python starts does the
    same.

    Returns:
      The number of CPU devices.

    Raises:
      RuntimeError: JAX has already started with a different number of CPU devices.
    """
    if n is None:
        cores = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1)
        )
        n = min(DEVICES_PER_CORE * cores, 64)
    n = _checks.positive_int("n", n)
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:
        have = len(jax.devices("cpu"))
        if have != n:
            raise RuntimeError(
                f"use_cpu_devices({n}) must run before JAX's first computation; JAX already runs "
                f"the CPU as {have} device(s). Call it right after import, or set "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={n} before starting "
                f"Python"
            ) from None
    return n


#: The axis of a sweep's ``Mesh`` that splits the runs.
RUNS_AXIS = "runs"


def resolve_devices(devices: Sequence[Any] | Mesh | None) -> tuple | Mesh:
    """``devices`` as a tuple of devices, or a ``Mesh`` checked to have a ``runs`` axis."""
    if isinstance(devices, Mesh):
        from jaxnn.sharding import check_mesh

        check_mesh(devices, "devices")
        if RUNS_AXIS not in devices.axis_names:
            raise ValueError(
                f"devices is a Mesh with axes {tuple(devices.axis_names)}, but a sweep splits "
                f"its runs over an axis named {RUNS_AXIS!r}: e.g. jaxnn.sharding.make_mesh((2, 2), "
                f"({RUNS_AXIS!r}, 'data'))"
            )
        return devices
    devices = tuple(jax.devices() if devices is None else devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(
            f"devices must be a non-empty sequence of jax.Device (e.g. "
            f"jax.devices()), got {devices!r}"
        )
    return devices


def runs_shards(devices: tuple | Mesh) -> int:
    """How many parts the runs are split into: the devices, or the mesh's ``runs`` axis."""
    return devices.shape[RUNS_AXIS] if isinstance(devices, Mesh) else len(devices)


def device_count(devices: tuple | Mesh) -> int:
    return devices.devices.size if isinstance(devices, Mesh) else len(devices)


def pick_chunk(chunk_size: int | None, k: int, devices: tuple | Mesh, per_run: int) -> int:
    """Points per compiled call: a multiple of the runs' shard count, with the least
    padding."""
    n_dev = runs_shards(devices)
    if chunk_size is not None:
        chunk = _checks.positive_int("chunk_size", chunk_size)
        return -(-chunk // n_dev) * n_dev
    first = devices.devices.flat[0] if isinstance(devices, Mesh) else devices[0]
    stats = first.memory_stats() or {}
    budget = stats["bytes_limit"] // 4 if "bytes_limit" in stats else CHUNK_BYTES
    per_device = max(1, budget // max(1, 8 * per_run))
    chunks = -(-k // (per_device * n_dev))
    return -(-k // (chunks * n_dev)) * n_dev
