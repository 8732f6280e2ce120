"""The exact Hessian of any ``loss_fn(params) -> scalar`` and its eigen-decomposition."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxnn import _checks
from jaxnn.base import Array, Params
from jaxnn.curvature import hvp
from jaxnn.hessian import _lapack

__all__ = [
    "MAX_BYTES",
    "LossFn",
    "Spectrum",
    "check_budget",
    "check_params",
    "hessian_matrix",
    "spectrum",
]

LossFn = Callable[[Params], Array]

MAX_BYTES = 4 * 2**30
"""Default memory budget (bytes) for the dense matrices of one call: 4 GiB."""


# ----------------------------------------------------------------------------- checks


def check_params(loss_fn: LossFn, params: Params) -> tuple[int, np.dtype]:
    """Checks ``loss_fn`` and ``params``; returns P and the float dtype of the flat vector."""
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function params -> scalar, got {loss_fn!r:.80}")
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("params must hold at least one array, got an empty pytree")
    for i, leaf in enumerate(leaves):
        dtype = getattr(leaf, "dtype", np.asarray(leaf).dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"params must hold floating-point arrays, but leaf {i} has dtype {dtype}"
            )
        _checks.finite(f"params (leaf {i})", leaf)
    try:
        out = jax.eval_shape(loss_fn, params)
    except Exception as e:  # the user's own error, kept as it is, with where it came from
        e.add_note("jaxnn.hessian: raised by loss_fn(params) while checking its output")
        raise
    if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(
            f"loss_fn must return a float scalar, got "
            f"{getattr(out, 'shape', type(out).__name__)} "
            f"{getattr(out, 'dtype', '')}".rstrip()
        )
    dtype = jax.eval_shape(lambda p: ravel_pytree(p)[0], params).dtype
    size = sum(int(np.prod(np.shape(x))) for x in leaves)
    return size, np.dtype(dtype)


def check_budget(what: str, size: int, dtype: np.dtype, matrices: float, max_bytes: Any) -> None:
    """Raises ValueError when ``matrices`` P × P arrays would exceed ``max_bytes``."""
    max_bytes = _checks.in_range("max_bytes", max_bytes, 0, low_open=True)
    need = matrices * size * size * dtype.itemsize
    if need > max_bytes:
        raise ValueError(
            f"{what} of {size:,} parameters needs about {need / 2**30:.2f} GiB "
            f"({matrices:g} × a {size:,}×{size:,} {dtype.name} matrix), above "
            f"max_bytes={max_bytes:,} ({max_bytes / 2**30:.2f} GiB); pass a larger max_bytes "
            f"if the memory is there, or use jaxnn.spectral (matrix-free) for a model this large"
        )


# ----------------------------------------------------------------------------- Hessian


def _hvp_column(loss_fn: LossFn, params: Params):
    """(flat w, unravel, i ↦ H eᵢ) with H eᵢ by forward-over-reverse (jvp of grad)."""
    flat, unravel = ravel_pytree(params)

    def column(i):
        basis = jax.nn.one_hot(i, flat.shape[0], dtype=flat.dtype)
        return hvp(lambda x: loss_fn(unravel(x)), flat, basis)

    return flat, unravel, column


@functools.partial(jax.jit, static_argnames=("loss_fn", "chunk"))
def _hessian(loss_fn: LossFn, params: Params, chunk: int) -> Array:
    """H by ⌈P/chunk⌉ vmapped batches of columns written into one P × P buffer.

    Every batch has the same shape (the last one starts at P − chunk and recomputes a few
    columns), so the loop body is compiled once (``lax.map(..., batch_size=chunk)`` would
    compile a second body for the remainder).
    """
    flat, _, column = _hvp_column(loss_fn, params)
    size = flat.shape[0]

    def batch(k, out):
        start = jnp.minimum(k * chunk, size - chunk)
        rows = jax.vmap(column)(start + jnp.arange(chunk))
        return lax.dynamic_update_slice(out, rows, (start, 0))

    return lax.fori_loop(0, -(-size // chunk), batch, jnp.zeros((size, size), flat.dtype))


@functools.partial(jax.jit, static_argnames=("loss_fn", "chunk"))
def _hessian_rows(loss_fn: LossFn, params: Params, start: Array, chunk: int) -> Array:
    """Rows start … start + chunk − 1 of H (the index is clipped at P − 1 past the end)."""
    flat, _, column = _hvp_column(loss_fn, params)
    rows = jnp.minimum(start + jnp.arange(chunk), flat.shape[0] - 1)
    return jax.vmap(column)(rows)


def _chunk(size: int, dtype: np.dtype, hvp_batch: Any) -> int:
    """HVPs per batch: by default 256 (see ``benchmarks/README.md``), fewer when
    a block of rows would pass 16 MiB, never under 16."""
    if hvp_batch is None:
        return min(size, max(16, min(256, 2**24 // (size * dtype.itemsize))))
    return min(size, _checks.positive_int("hvp_batch", hvp_batch))


@_checks.renamed(chunk_size="hvp_batch")  # its name in jaxnn 0.1
def hessian_matrix(
    loss_fn: LossFn, params: Params, *, hvp_batch: int | None = None, max_bytes: int = MAX_BYTES
) -> tuple[Array, Callable[[Array], Params]]:
    """The exact Hessian H_jk = ∂²E/∂w_j∂w_k of ``loss_fn`` at ``params``, as a P × P matrix.

    Built one batch of columns at a time: column j is the Hessian-vector product H e_j,
    computed forward-over-reverse (``jvp`` of ``grad``), ``hvp_batch`` columns per vmapped
    batch inside one ``fori_loop`` (one compiled program; the fastest and leanest of the
    methods compared in ``benchmarks/hessian.py``: it needs P² floats for H plus one batch
    of columns, where ``jax.hessian`` peaks at several times P²). H is symmetric to
    rounding (not symmetrised, which would need a second P² buffer).

    Memory is P² floats: 4 MB at P = 10³, 400 MB at P = 10⁴ (float32), which is about where
    the exact Hessian stops being practical (its eigendecomposition costs O(P³)); for larger
    models use :mod:`jaxnn.spectral`, which never forms H. A call whose matrix would exceed
    ``max_bytes`` raises ValueError instead of running out of memory.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``, any pure JAX function (close over the data).
        The compiled program is cached per function object: pass the same function again to
        reuse it.
      params: any pytree of floating-point arrays (the point w).
      hvp_batch: columns per vmapped batch (default 256, fewer above 16 MiB a batch).
      max_bytes: memory budget for the matrix, default :data:`MAX_BYTES` (4 GiB).

    Returns:
      ``(H, unravel)``: H of shape (P, P) in the dtype of the flattened params (float64 with
      x64 on and float64 params), and ``unravel`` mapping a length-P vector back to a pytree
      shaped like ``params``.
    """
    size, dtype = check_params(loss_fn, params)
    check_budget("the Hessian", size, dtype, 1, max_bytes)
    with jax.default_matmul_precision("highest"):
        matrix = _hessian(loss_fn, params, _chunk(size, dtype, hvp_batch))
    return matrix, ravel_pytree(params)[1]


def _hessian_on_host(
    loss_fn: LossFn, params: Params, chunk: int, size: int, dtype: np.dtype
) -> np.ndarray:
    """H assembled batch by batch into one writable Fortran-ordered NumPy array.

    Peak memory is H plus one batch of rows; LAPACK then works in place on the array.
    """
    out = np.empty((size, size), dtype, order="F")
    rows_of_out = out.T  # a C-ordered view: row j of out.T is column j of out (= row j of H)
    starts = range(0, size, chunk)
    finite = []
    with jax.default_matmul_precision("highest"):
        pending = _hessian_rows(loss_fn, params, jnp.asarray(0), chunk)
        for k, start in enumerate(starts):
            rows = pending
            if k + 1 < len(starts):  # queue the next batch before copying this one
                pending = _hessian_rows(loss_fn, params, jnp.asarray(starts[k + 1]), chunk)
            stop = min(start + chunk, size)
            rows_of_out[start:stop] = np.asarray(rows)[: stop - start]
            finite.append(bool(np.isfinite(rows_of_out[start:stop]).all()))
    if not all(finite):
        raise ValueError(_NOT_FINITE)
    return out


# ----------------------------------------------------------------------------- spectrum


class Spectrum(NamedTuple):
    """The Hessian's eigen-decomposition at one point and what it implies for η.

    Fields:
      eigenvalues: λ, ascending, shape (P,) (NumPy).
      eigenvectors: U, column i the unit eigenvector of λᵢ, shape (P, P); None when
        computed with ``vectors=False``.
      lambda_max, lambda_min: λ_P and λ₁.
      condition_number: κ = λmax/λmin at a strict minimum (every λ > zero_tol), else inf.
      n_negative: how many λ < −zero_tol (directions of descent: not a minimum).
      n_zero: how many |λ| ≤ zero_tol (flat directions: not a strict minimum).
      kind: "minimum" (every λ > 0), "saddle" (λ of both signs; erratum, notes 003: a
        critical point that is neither a minimum nor a maximum), "maximum" (every λ < 0),
        or "degenerate" (some λ = 0 and no sign change: second order cannot tell).
      stability_threshold: 2/λmax, the largest η at which gradient descent converges
        (inf when λmax ≤ 0).
      lr_top: 1/λmax, the step that solves the top direction in one step (notes 001's
        "fastest", which is fastest along that direction only).
      optimal_lr: η* = 2/(λmin + λmax), the fixed step whose worst direction contracts
        fastest; NaN when the point is not a strict minimum (no η contracts every direction).
      optimal_rate: (κ − 1)/(κ + 1), that worst-direction factor at η*; 1 when κ = inf.
      zero_tol: the tolerance used for n_zero/n_negative: P·ε·max|λ| by default
        (ε the machine epsilon of the dtype), below which an eigenvalue is round-off.
      unravel: maps a length-P vector (an eigenvector) back to the params pytree.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray | None
    lambda_max: float
    lambda_min: float
    condition_number: float
    n_negative: int
    n_zero: int
    kind: str
    stability_threshold: float
    lr_top: float
    optimal_lr: float
    optimal_rate: float
    zero_tol: float
    unravel: Callable[[Array], Params]


@_checks.renamed(chunk_size="hvp_batch")  # its name in jaxnn 0.1
def spectrum(
    loss_fn: LossFn,
    params: Params,
    vectors: bool = True,
    *,
    zero_tol: float | None = None,
    hvp_batch: int | None = None,
    max_bytes: int = MAX_BYTES,
) -> Spectrum:
    """Eigenvalues (and eigenvectors) of the exact Hessian of ``loss_fn`` at ``params``.

    On CPU, H is assembled batch by batch (as in :func:`hessian_matrix`) straight into one
    NumPy array that LAPACK then decomposes in place: eigenvalues only with LAPACK's
    two-stage tridiagonal reduction and ``?sterf`` (peak ≈ P² floats), eigenvalues and
    vectors with the divide-and-conquer ``?syevd`` (peak ≈ 3P²). Both use every core through
    OpenBLAS. On GPU/TPU, H and ``jnp.linalg.eigh`` run on the device. Measured against the
    alternatives in ``benchmarks/hessian.py`` (numbers in docs/speed.md).

    Not for use under ``jit``: the result is NumPy arrays and Python numbers.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``.
      params: the point, any pytree of floating-point arrays.
      vectors: also compute the eigenvectors (needed by :func:`check_rates`).
      zero_tol: |λ| at or below this counts as zero; default P·ε·max|λ|.
      hvp_batch: Hessian columns per batch (see :func:`hessian_matrix`).
      max_bytes: memory budget for the dense matrices (1 × P² without vectors, 3 × P² with).

    Returns:
      A :class:`Spectrum`.
    """
    size, dtype = check_params(loss_fn, params)
    check_budget(
        "spectrum(vectors=True)" if vectors else "spectrum(vectors=False)",
        size,
        dtype,
        3 if vectors else 1,
        max_bytes,
    )
    if zero_tol is not None:
        _checks.in_range("zero_tol", zero_tol, 0.0)
    chunk = _chunk(size, dtype, hvp_batch)
    if jax.default_backend() == "cpu":
        matrix = _hessian_on_host(loss_fn, params, chunk, size, dtype)
        lam, u = _lapack.eigh_host(matrix, vectors)
        del matrix
    else:
        with jax.default_matmul_precision("highest"):
            matrix = _hessian(loss_fn, params, chunk)
            _check_finite_hessian(matrix)
            if vectors:
                lam, u = jnp.linalg.eigh(matrix, symmetrize_input=False)
            else:
                lam, u = jnp.linalg.eigvalsh(matrix), None
        lam, u = np.asarray(lam), None if u is None else np.asarray(u)
    return _summary(lam, u, zero_tol, ravel_pytree(params)[1])


_NOT_FINITE = (
    "the Hessian has NaN or infinite entries: loss_fn is not finite and twice "
    "differentiable at params"
)


def _check_finite_hessian(matrix: Any) -> None:
    if not bool(jnp.all(jnp.isfinite(matrix))):
        raise ValueError(_NOT_FINITE)


def _summary(
    lam: np.ndarray, u: np.ndarray | None, zero_tol: float | None, unravel: Callable
) -> Spectrum:
    """The :class:`Spectrum` fields that follow from the eigenvalues."""
    lam = np.asarray(lam)
    eps = float(np.finfo(lam.dtype).eps)
    scale = float(np.max(np.abs(lam)))
    tol = lam.size * eps * scale if zero_tol is None else float(zero_tol)
    n_negative = int(np.sum(lam < -tol))
    n_zero = int(np.sum(np.abs(lam) <= tol))
    n_positive = lam.size - n_negative - n_zero
    if n_negative and n_positive:
        kind = "saddle"
    elif n_zero:
        kind = "degenerate"
    elif n_negative:
        kind = "maximum"
    else:
        kind = "minimum"
    lmin, lmax = float(lam[0]), float(lam[-1])
    strict = kind == "minimum"
    kappa = lmax / lmin if strict else math.inf
    return Spectrum(
        eigenvalues=lam,
        eigenvectors=u,
        lambda_max=lmax,
        lambda_min=lmin,
        condition_number=kappa,
        n_negative=n_negative,
        n_zero=n_zero,
        kind=kind,
        stability_threshold=2.0 / lmax if lmax > 0 else math.inf,
        lr_top=1.0 / lmax if lmax > 0 else math.inf,
        optimal_lr=2.0 / (lmin + lmax) if strict else math.nan,
        optimal_rate=(kappa - 1.0) / (kappa + 1.0) if strict else 1.0,
        zero_tol=tol,
        unravel=unravel,
    )
