"""Data and parameters placed on a device mesh, with JAX's own SPMD machinery.

jaxnn has no parallel layer of its own: its programs are ``jit``-compiled, so arrays
placed on a ``jax.sharding.Mesh`` with a ``NamedSharding`` run sharded, and XLA's SPMD
partitioner inserts the communication. Two placements cover what jaxnn's users need:

* :func:`shard_batch` — a dataset split over the mesh's batch axis (data parallelism):
  ``fit``, the matrix-free spectra, ``hessian_curvature``'s batched products and the
  sharpness hooks then compute every per-example term on the device that holds the
  example, and the means over the batch become all-reduces.
* :func:`shard_params` — each parameter array split over a model axis along one of its
  dimensions (fully sharded parameters), for a model larger than one device's memory:
  Hessian-vector products, Lanczos (whose basis vectors are shaped like the params and
  inherit their sharding) and Hutchinson run unchanged.

A mesh of two axes does both, and :func:`jaxnn.sweep.sweep` takes a mesh with a
``"runs"`` axis, so a sweep of a data-parallel model uses every device.

The same script runs on one CPU, on the host's CPU split into devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``), on a multi-GPU host
(``jax.devices()`` lists the GPUs) and on several hosts (call
``jax.distributed.initialize()`` first on each host; ``jax.devices()`` then lists every
host's devices, and a mesh over them spans the hosts). References: JAX, "Distributed
arrays and automatic parallelization"; Xu et al. 2021, "GSPMD".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnn.base import Params

__all__ = ["REMAINDERS", "check_mesh", "make_mesh", "shard_batch", "shard_params"]

#: What :func:`shard_batch` does with a dataset whose size the batch axis does not divide.
REMAINDERS = ("error", "drop", "pad")


def make_mesh(
    axis_shapes: Sequence[int], axis_names: Sequence[str], *, devices: Sequence[Any] | None = None
) -> Mesh:
    """``jax.make_mesh(axis_shapes, axis_names)`` with every axis of type ``Auto``.

    jaxnn's programs leave the sharding of intermediates to XLA's propagation (GSPMD);
    ``jax.make_mesh`` on recent JAX makes ``Explicit`` axes, under which a mean over a
    sharded batch must name its output sharding, so jaxnn asks for ``Auto`` axes.
    """
    from jax.sharding import AxisType

    names = tuple(axis_names)
    return jax.make_mesh(
        tuple(axis_shapes), names, axis_types=(AxisType.Auto,) * len(names), devices=devices
    )


def check_mesh(mesh: Any, argument: str = "mesh") -> Mesh:
    """``mesh`` checked to be a ``Mesh`` whose axes are all ``Auto`` (see :func:`make_mesh`)."""
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{argument} must be a jax.sharding.Mesh (e.g. jaxnn.sharding.make_mesh((4,), "
            f"('data',))), got {type(mesh).__name__}"
        )
    explicit = [
        name
        for name, kind in zip(mesh.axis_names, getattr(mesh, "axis_types", ()))
        if str(kind).endswith("Explicit")
    ]
    if explicit:
        raise ValueError(
            f"{argument} has Explicit axes {tuple(explicit)}; jaxnn's programs leave "
            f"intermediate shardings to XLA's propagation, which needs Auto axes: make it "
            f"with jaxnn.sharding.make_mesh(...) or jax.make_mesh(..., axis_types="
            f"(jax.sharding.AxisType.Auto,) * {len(mesh.axis_names)})"
        )
    return mesh


def _axis_size(mesh: Any, axis: str, argument: str) -> int:
    check_mesh(mesh)
    if axis not in mesh.axis_names:
        raise ValueError(
            f"{argument}={axis!r} is not an axis of the mesh, whose axes are "
            f"{tuple(mesh.axis_names)}"
        )
    return int(mesh.shape[axis])


def shard_batch(data: Any, mesh: Mesh, axis: str = "data", *, remainder: str = "error") -> Any:
    """``data`` (a ``Dataset`` or any pytree of arrays with the examples on their first
    axis) placed on ``mesh``, split over ``axis`` along the examples and replicated over
    the mesh's other axes: ``NamedSharding(mesh, PartitionSpec(axis))``.

    With n examples and D devices on ``axis``, each holds n/D consecutive examples. When D
    does not divide n, ``remainder`` decides: ``"error"`` refuses (the default: nothing
    changes silently); ``"drop"`` keeps the first D⌊n/D⌋ examples; ``"pad"`` appends the
    first D⌈n/D⌉ − n examples again, so those few count twice in every full-batch mean
    (use it for evaluation only where that does not matter).

    Raises:
      TypeError: ``mesh`` is not a ``Mesh``.
      ValueError: ``axis`` is not one of the mesh's axes; the leaves disagree on n; D
        does not divide n with ``remainder="error"``; an unknown ``remainder``.
    """
    size = _axis_size(mesh, axis, "axis")
    if remainder not in REMAINDERS:
        raise ValueError(f"remainder must be one of {', '.join(REMAINDERS)}, got {remainder!r}")
    leaves, treedef = jax.tree.flatten(data)
    if not leaves:
        raise ValueError("data holds no arrays to place")
    counts = {int(np.shape(leaf)[0]) if np.ndim(leaf) else -1 for leaf in leaves}
    if len(counts) != 1 or -1 in counts:
        raise ValueError(
            f"every array of data must have the examples on its first axis, with one "
            f"count; got first-axis lengths {sorted(counts)}"
        )
    (n,) = counts
    if n % size:
        if remainder == "error":
            raise ValueError(
                f"data has {n} examples, which the mesh axis {axis!r} of {size} devices "
                f"does not divide: pass remainder='drop' (keep {n - n % size}) or "
                f"remainder='pad' (repeat {size - n % size}), or choose another size"
            )
        keep = n - n % size if remainder == "drop" else n + size - n % size
        index = np.arange(keep) % n
        leaves = [np.asarray(leaf)[index] if keep > n else leaf[:keep] for leaf in leaves]
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return jax.tree.unflatten(treedef, [jax.device_put(leaf, sharding) for leaf in leaves])


def _spec(shape: tuple[int, ...], axis: str, size: int) -> PartitionSpec:
    """Split the largest dimension that ``size`` divides (replicate if none does)."""
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % size == 0 and shape[dim] >= size:
            return PartitionSpec(*([None] * dim), axis)
    return PartitionSpec()


def shard_params(params: Params, mesh: Mesh, axis: str = "model") -> Params:
    """``params`` placed on ``mesh``, every array split over ``axis`` along its largest
    dimension that the axis' device count D divides (replicated over the other axes).

    An array with no such dimension (a bias of odd length, a scalar) is replicated; for a
    model whose weight matrices have a dimension divisible by D, each device then holds
    about 1/D of the parameters. jaxnn's matrix-free tools take the result as they take
    any params: their vectors (Hessian-vector products, the Lanczos basis, Hutchinson's
    probes) are shaped like the params and carry the same sharding, so a model larger than
    one device is analysed without gathering it.

    Raises:
      TypeError: ``mesh`` is not a ``Mesh``.
      ValueError: ``axis`` is not one of the mesh's axes.
    """
    size = _axis_size(mesh, axis, "axis")
    return jax.tree.map(
        lambda leaf: jax.device_put(
            leaf, NamedSharding(mesh, _spec(tuple(np.shape(leaf)), axis, size))
        ),
        params,
    )
