"""Exact Hessian eigen-analysis: spectrum, condition number, predicted vs observed rates.

Near a minimum w* the loss is a quadratic (seed 001),

  E(w) ≈ E(w*) + ½ (w − w*)ᵀ H (w − w*),   H = U diag(λ) Uᵀ,  λ₁ ≤ … ≤ λ_P,

so one gradient-descent step w ← w − η∇E(w) moves each coordinate αᵢ = uᵢᵀ(w − w*) along
an eigenvector uᵢ on its own:

  αᵢ ← (1 − ηλᵢ) αᵢ.

Direction i converges iff |1 − ηλᵢ| < 1, so every direction converges iff η < 2/λmax. At
η = 1/λmax the top direction is solved in one step and the slowest contracts by 1 − 1/κ per
step, κ = λmax/λmin; the best fixed step η* = 2/(λmin + λmax) contracts every direction by
at most (κ − 1)/(κ + 1). (Erratum, seed 001: the seed calls η = 1/λmax the fastest; it is
fastest along the λmax direction only, and the two rates 1 − 1/κ and (κ − 1)/(κ + 1) ≈ 1 −
2/κ each hold for their own η.)

With heavy-ball momentum (Δw ← −η∇E + μΔw, w ← w + Δw) each direction follows a two-term
recurrence αₜ₊₁ = p αₜ + q αₜ₋₁ with p = 1 + μ − ηλ, q = −μ, i.e. the iteration matrix
[[1 + μ − ηλ, −μ], [1, 0]]; Nesterov's look-ahead gives p = (1 − ηλ)(1 + μ), q = −(1 − ηλ)μ.
The rate is the spectral radius ρ of that matrix: the largest |r| over the roots of
r² − p r − q.

Functions:

* :func:`hessian_matrix`  H (P × P) of any ``loss_fn(params) -> scalar``, jitted.
* :func:`spectrum`        eigenvalues, eigenvectors, κ, thresholds; says if it is a saddle.
* :func:`predicted_rates`, :func:`predicted_rates_momentum`, :func:`momentum_recurrence`,
  :func:`max_stable_lr`, :func:`polyak_momentum`: the formulas above.
* :func:`check_rates`     runs gradient descent (or momentum) from a perturbed minimum and
  fits the observed per-direction rate, to compare with the prediction.
* :func:`find_minimum`    Adam to get close, then Newton steps on the exact Hessian.

Everything here works on any pytree of floating-point params (flattened in the order of
``jax.flatten_util.ravel_pytree``; ``Spectrum.unravel`` maps an eigenvector back), in
float64 when ``jax_enable_x64`` is on. Matrix products inside run at full precision (no
TF32/bfloat16 passes on GPU/TPU). A P × P matrix needs P² floats: 400 MB at P = 10⁴ in
float32, so above about 10⁴ parameters use the matrix-free tools of :mod:`jaxnn.spectral`.
"""

from __future__ import annotations

import ctypes
import functools
import math
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxnn import _checks, initializers, optimizers
from jaxnn.base import Array, Params

LossFn = Callable[[Params], Array]

MAX_BYTES = 4 * 2**30
"""Default memory budget (bytes) for the dense matrices of one call: 4 GiB."""


# ----------------------------------------------------------------------------- checks


def _check_params(loss_fn: LossFn, params: Params) -> tuple[int, np.dtype]:
  """Checks ``loss_fn`` and ``params``; returns P and the float dtype of the flat vector."""
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be a function params -> scalar, got {loss_fn!r:.80}")
  leaves = jax.tree.leaves(params)
  if not leaves:
    raise ValueError("params must hold at least one array, got an empty pytree")
  for i, leaf in enumerate(leaves):
    dtype = getattr(leaf, "dtype", np.asarray(leaf).dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
      raise TypeError(f"params must hold floating-point arrays, but leaf {i} has dtype "
                      f"{dtype}")
    _checks.finite(f"params (leaf {i})", leaf)
  try:
    out = jax.eval_shape(loss_fn, params)
  except Exception as e:  # the user's function failed on these params: say where
    raise TypeError(f"loss_fn(params) failed: {type(e).__name__}: {e}") from e
  if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype,
                                                                          jnp.floating):
    raise ValueError(f"loss_fn must return a float scalar, got "
                     f"{getattr(out, 'shape', type(out).__name__)} "
                     f"{getattr(out, 'dtype', '')}".rstrip())
  dtype = jax.eval_shape(lambda p: ravel_pytree(p)[0], params).dtype
  size = sum(int(np.prod(np.shape(x))) for x in leaves)
  return size, np.dtype(dtype)


def _check_budget(what: str, size: int, dtype: np.dtype, matrices: float,
                  max_bytes: Any) -> None:
  """Raises ValueError when ``matrices`` P × P arrays would exceed ``max_bytes``."""
  max_bytes = _checks.in_range("max_bytes", max_bytes, 0, low_open=True)
  need = matrices * size * size * dtype.itemsize
  if need > max_bytes:
    raise ValueError(
        f"{what} of {size:,} parameters needs about {need / 2**30:.2f} GiB "
        f"({matrices:g} × a {size:,}×{size:,} {dtype.name} matrix), above "
        f"max_bytes={max_bytes:,} ({max_bytes / 2**30:.2f} GiB); pass a larger max_bytes "
        f"if the memory is there, or use jaxnn.spectral (matrix-free) for a model this large")


# ----------------------------------------------------------------------------- Hessian


def _hvp_column(loss_fn: LossFn, params: Params):
  """(flat w, unravel, i ↦ H eᵢ) with H eᵢ by forward-over-reverse (jvp of grad)."""
  flat, unravel = ravel_pytree(params)
  grad = jax.grad(lambda x: loss_fn(unravel(x)))

  def column(i):
    basis = jax.nn.one_hot(i, flat.shape[0], dtype=flat.dtype)
    return jax.jvp(grad, (flat,), (basis,))[1]

  return flat, unravel, column


@functools.partial(jax.jit, static_argnames=("loss_fn", "chunk"))
def _hessian(loss_fn: LossFn, params: Params, chunk: int) -> Array:
  """H by ⌈P/chunk⌉ vmapped batches of columns written into one P × P buffer.

  Every batch has the same shape (the last one starts at P − chunk and recomputes a few
  columns), so the loop body is compiled once; ``lax.map(..., batch_size=chunk)`` compiles
  a second body for the remainder, which took seconds of extra compile time on a GPU.
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


def _chunk(size: int, dtype: np.dtype, chunk_size: Any) -> int:
  """HVPs per batch: by default 256 (the fastest in ``benchmarks/hessian.py``), fewer when
  a block of rows would pass 16 MiB, never under 16."""
  if chunk_size is None:
    return min(size, max(16, min(256, 2**24 // (size * dtype.itemsize))))
  return min(size, _checks.positive_int("chunk_size", chunk_size))


def hessian_matrix(loss_fn: LossFn, params: Params, *, chunk_size: int | None = None,
                   max_bytes: int = MAX_BYTES) -> tuple[Array, Callable[[Array], Params]]:
  """The exact Hessian H_jk = ∂²E/∂w_j∂w_k of ``loss_fn`` at ``params``, as a P × P matrix.

  Built one batch of columns at a time: column j is the Hessian-vector product H e_j,
  computed forward-over-reverse (``jvp`` of ``grad``), ``chunk_size`` columns per vmapped
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
    chunk_size: columns per vmapped batch (default 256, fewer above 16 MiB a batch).
    max_bytes: memory budget for the matrix, default :data:`MAX_BYTES` (4 GiB).

  Returns:
    ``(H, unravel)``: H of shape (P, P) in the dtype of the flattened params (float64 with
    x64 on and float64 params), and ``unravel`` mapping a length-P vector back to a pytree
    shaped like ``params``.
  """
  size, dtype = _check_params(loss_fn, params)
  _check_budget("the Hessian", size, dtype, 1, max_bytes)
  with jax.default_matmul_precision("highest"):
    matrix = _hessian(loss_fn, params, _chunk(size, dtype, chunk_size))
  return matrix, ravel_pytree(params)[1]


def _hessian_on_host(loss_fn: LossFn, params: Params, chunk: int, size: int,
                     dtype: np.dtype) -> np.ndarray:
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
      rows_of_out[start:stop] = np.asarray(rows)[:stop - start]
      finite.append(bool(np.isfinite(rows_of_out[start:stop]).all()))
  if not all(finite):
    raise ValueError(_NOT_FINITE)
  return out


# ----------------------------------------------------------------------------- LAPACK


_BAND = 64  # the band width of the two-stage reduction (LAPACK's own default, KD = 64)


@functools.lru_cache(maxsize=None)
def _two_stage_lapack() -> dict | None:
  """LAPACK's two-stage tridiagonal reduction from the OpenBLAS that SciPy ships.

  SciPy (a dependency of JAX) bundles OpenBLAS with the whole of LAPACK, including the
  two-stage reduction of a symmetric matrix to tridiagonal form: dense → band of width KD
  with BLAS-3 (``?sytrd_sy2sb``, both cores), then band → tridiagonal by bulge chasing
  (``?sytrd_sb2st``), then the eigenvalues of the tridiagonal (``?sterf``). For
  eigenvalues alone this is about twice as fast as the one-stage reduction that
  ``jnp.linalg.eigvalsh`` (which computes the eigenvectors as well), ``numpy.linalg``,
  ``scipy.linalg.eigh`` and ``torch.linalg.eigvalsh`` use, and calling the three stages
  directly was about 20 % faster again than LAPACK's driver ``?syevd_2stage`` (15.5 s
  against 19.8 s at P = 10⁴ on 2 cores). SciPy wraps none of them, so they are called
  through ctypes; None when the library or its symbols are not there (another platform or
  build), and the caller falls back to ``scipy.linalg.eigh``.
  """
  try:
    import scipy
    from scipy import __config__ as config
  except ImportError:
    return None
  blas = getattr(config, "CONFIG", {}).get("Build Dependencies", {}).get("blas", {})
  if blas.get("name") != "scipy-openblas" or str(blas.get("has ilp64")).lower() != "false":
    return None  # the calls below pass 32-bit LAPACK integers
  for path in sorted(Path(scipy.__file__).parent.parent.glob("scipy.libs/libscipy_openblas*")):
    try:
      lib = ctypes.CDLL(str(path))
      routines = {np.dtype(dtype): tuple(getattr(lib, f"scipy_{c}{name}_") for name in (
          "sytrd_sy2sb", "sytrd_sb2st", "sterf", "lansy"))
                  for c, dtype in (("s", np.float32), ("d", np.float64))}
    except (OSError, AttributeError):
      continue
    for dtype, (_, _, _, lansy) in routines.items():
      lansy.restype = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    return routines
  return None


def _two_stage_eigvalsh(a: np.ndarray, routines: tuple) -> np.ndarray:
  """Eigenvalues of the symmetric Fortran-ordered ``a`` (lower triangle; destroyed), by
  ``?sytrd_sy2sb`` + ``?sytrd_sb2st`` + ``?sterf``, with ``?syevd``'s scaling of matrices
  whose largest entry is near underflow or overflow."""
  sy2sb, sb2st, sterf, lansy = routines
  n, dtype, kd = a.shape[0], a.dtype, min(_BAND, max(a.shape[0] - 1, 1))
  info = ctypes.c_int()

  def i(v):
    return ctypes.byref(ctypes.c_int(v))

  def c(text):
    return ctypes.c_char_p(text.encode())

  def ptr(arr):
    return arr.ctypes.data_as(ctypes.c_void_p)

  one = ctypes.c_size_t(1)  # the hidden length of each Fortran CHARACTER argument
  anrm = lansy(c("M"), c("L"), i(n), ptr(a), i(n), ptr(np.zeros(1, dtype)), one, one)
  small = np.finfo(dtype).tiny / np.finfo(dtype).eps
  rmin, rmax = math.sqrt(small), math.sqrt(1.0 / small)
  sigma = rmin / anrm if 0 < anrm < rmin else rmax / anrm if anrm > rmax else 1.0
  if sigma != 1.0:
    a *= dtype.type(sigma)
  band = np.zeros((kd + 1, n), dtype, order="F")
  tau, query = np.zeros(n, dtype), np.zeros(2, dtype)
  sy2sb(c("L"), i(n), i(kd), ptr(a), i(n), ptr(band), i(kd + 1), ptr(tau), ptr(query), i(-1),
        ctypes.byref(info), one)
  work = np.zeros(max(int(query[0]), 1), dtype)
  sy2sb(c("L"), i(n), i(kd), ptr(a), i(n), ptr(band), i(kd + 1), ptr(tau), ptr(work),
        i(work.size), ctypes.byref(info), one)
  if info.value != 0:
    raise np.linalg.LinAlgError(f"LAPACK sytrd_sy2sb failed (info={info.value})")
  d, e = np.zeros(n, dtype), np.zeros(n, dtype)
  hous_query, work_query = np.zeros(2, dtype), np.zeros(2, dtype)
  args = (c("Y"), c("N"), c("L"), i(n), i(kd), ptr(band), i(kd + 1), ptr(d), ptr(e))
  sb2st(*args, ptr(hous_query), i(-1), ptr(work_query), i(-1), ctypes.byref(info), one, one,
        one)
  hous, work = (np.zeros(max(int(q[0]), 1), dtype) for q in (hous_query, work_query))
  sb2st(*args, ptr(hous), i(hous.size), ptr(work), i(work.size), ctypes.byref(info), one,
        one, one)
  if info.value != 0:
    raise np.linalg.LinAlgError(f"LAPACK sytrd_sb2st failed (info={info.value})")
  sterf(i(n), ptr(d), ptr(e), ctypes.byref(info))
  if info.value != 0:
    raise np.linalg.LinAlgError(f"LAPACK sterf did not converge (info={info.value})")
  return d / dtype.type(sigma) if sigma != 1.0 else d


def _eigh_host(a: np.ndarray, vectors: bool) -> tuple[np.ndarray, np.ndarray | None]:
  """Eigenvalues (ascending) and optionally eigenvectors of the symmetric Fortran-ordered
  ``a``, in place (``a`` is destroyed), reading its lower triangle.

  Eigenvalues only: the two-stage reduction (see :func:`_two_stage_lapack`), extra memory
  O(P·KD). With vectors: ``?syevd`` (divide and conquer), which was faster than MRRR
  (``?syevr``: 38.6 s against 28.2 s at P = 8,000) and than ``jnp.linalg.eigh`` on 2
  cores; the vectors overwrite ``a`` and the workspace is 2P², so the peak is about 3P².
  """
  import scipy.linalg

  routines = None if vectors else _two_stage_lapack()
  if routines is not None and a.dtype in routines and a.shape[0] > 1:
    return _two_stage_eigvalsh(a, routines[a.dtype]), None
  out = scipy.linalg.eigh(a, lower=True, eigvals_only=not vectors, overwrite_a=True,
                          check_finite=False, driver="evd")
  return (out, None) if not vectors else out


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
    kind: "minimum" (every λ > 0), "saddle" (λ of both signs; erratum, seed 003: a
      critical point that is neither a minimum nor a maximum), "maximum" (every λ < 0),
      or "degenerate" (some λ = 0 and no sign change: second order cannot tell).
    stability_threshold: 2/λmax, the largest η at which gradient descent converges
      (inf when λmax ≤ 0).
    lr_top: 1/λmax, the step that solves the top direction in one step (seed 001's
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


def spectrum(loss_fn: LossFn, params: Params, vectors: bool = True, *,
             zero_tol: float | None = None, chunk_size: int | None = None,
             max_bytes: int = MAX_BYTES) -> Spectrum:
  """Eigenvalues (and eigenvectors) of the exact Hessian of ``loss_fn`` at ``params``.

  On CPU, H is assembled batch by batch (as in :func:`hessian_matrix`) straight into one
  NumPy array that LAPACK then decomposes in place: eigenvalues only with LAPACK's
  two-stage tridiagonal reduction and ``?sterf`` (peak ≈ P² floats), eigenvalues and
  vectors with the divide-and-conquer ``?syevd`` (peak ≈ 3P²). Both use every core through
  OpenBLAS. On GPU/TPU, H and ``jnp.linalg.eigh`` run on the device. Measured against the
  alternatives in ``benchmarks/hessian.py`` (numbers in the README).

  Not for use under ``jit``: the result is NumPy arrays and Python numbers.

  Args:
    loss_fn: ``loss_fn(params) -> scalar``.
    params: the point, any pytree of floating-point arrays.
    vectors: also compute the eigenvectors (needed by :func:`check_rates`).
    zero_tol: |λ| at or below this counts as zero; default P·ε·max|λ|.
    chunk_size: Hessian columns per batch (see :func:`hessian_matrix`).
    max_bytes: memory budget for the dense matrices (1 × P² without vectors, 3 × P² with).

  Returns:
    A :class:`Spectrum`.
  """
  size, dtype = _check_params(loss_fn, params)
  _check_budget("spectrum(vectors=True)" if vectors else "spectrum(vectors=False)", size,
                dtype, 3 if vectors else 1, max_bytes)
  if zero_tol is not None:
    _checks.in_range("zero_tol", zero_tol, 0.0)
  chunk = _chunk(size, dtype, chunk_size)
  if jax.default_backend() == "cpu":
    matrix = _hessian_on_host(loss_fn, params, chunk, size, dtype)
    lam, u = _eigh_host(matrix, vectors)
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


_NOT_FINITE = ("the Hessian has NaN or infinite entries: loss_fn is not finite and twice "
               "differentiable at params")


def _check_finite_hessian(matrix: Any) -> None:
  if not bool(jnp.all(jnp.isfinite(matrix))):
    raise ValueError(_NOT_FINITE)


def _summary(lam: np.ndarray, u: np.ndarray | None, zero_tol: float | None,
             unravel: Callable) -> Spectrum:
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
      eigenvalues=lam, eigenvectors=u, lambda_max=lmax, lambda_min=lmin,
      condition_number=kappa, n_negative=n_negative, n_zero=n_zero, kind=kind,
      stability_threshold=2.0 / lmax if lmax > 0 else math.inf,
      lr_top=1.0 / lmax if lmax > 0 else math.inf,
      optimal_lr=2.0 / (lmin + lmax) if strict else math.nan,
      optimal_rate=(kappa - 1.0) / (kappa + 1.0) if strict else 1.0,
      zero_tol=tol, unravel=unravel)


# ----------------------------------------------------------------------------- formulas


def predicted_rates(eigenvalues: Any, lr: Any) -> Array:
  """Gradient descent's factor per eigendirection, αᵢ ← (1 − ηλᵢ) αᵢ (seed 001).

  Negative values mean the direction oscillates in sign; |1 − ηλᵢ| > 1 means it diverges.
  """
  _checks.in_range("lr", lr, 0.0, low_open=True)
  return 1.0 - lr * jnp.asarray(eigenvalues)


def momentum_recurrence(eigenvalues: Any, lr: Any, mu: Any,
                        nesterov: bool = False) -> tuple[Array, Array]:
  """(p, q) of each direction's recurrence αₜ₊₁ = p αₜ + q αₜ₋₁ under momentum.

  Heavy ball (Δw ← −η∇E + μΔw, w ← w + Δw): p = 1 + μ − ηλ, q = −μ, the iteration
  matrix [[1 + μ − ηλ, −μ], [1, 0]]. Nesterov (gradient at the look-ahead point):
  p = (1 − ηλ)(1 + μ), q = −(1 − ηλ)μ, i.e. characteristic polynomial
  r² − (1 − ηλ)(1 + μ) r + (1 − ηλ)μ. With μ = 0 both reduce to p = 1 − ηλ, q = 0.
  """
  _checks.in_range("lr", lr, 0.0, low_open=True)
  _checks.in_range("mu", mu, 0.0, 1.0, high_open=True)
  x = 1.0 - lr * jnp.asarray(eigenvalues)
  if nesterov:
    return x * (1.0 + mu), -x * mu
  return x + mu, jnp.full_like(x, -mu)


def spectral_radius(p: Any, q: Any) -> Array:
  """max |r| over the roots of r² − p r − q: (|p| + √(p² + 4q))/2 when the roots are
  real, √(−q) (their common modulus) when they are complex."""
  p, q = jnp.asarray(p), jnp.asarray(q)
  disc = p * p + 4.0 * q
  real = 0.5 * (jnp.abs(p) + jnp.sqrt(jnp.maximum(disc, 0.0)))
  return jnp.where(disc >= 0, real, jnp.sqrt(jnp.maximum(-q, 0.0)))


def predicted_rates_momentum(eigenvalues: Any, lr: Any, mu: Any,
                             nesterov: bool = False) -> Array:
  """Momentum's rate per eigendirection: the spectral radius ρ of its 2 × 2 iteration
  matrix (see :func:`momentum_recurrence`); |αₜ| shrinks like ρᵗ (times t when the two
  roots coincide), and the direction diverges when ρ > 1."""
  return spectral_radius(*momentum_recurrence(eigenvalues, lr, mu, nesterov))


def max_stable_lr(lambda_max: Any, mu: Any = 0.0, nesterov: bool = False) -> Any:
  """The largest stable step for curvature λmax (the same bound read as λ < … for a given η).

  Gradient descent: η < 2/λmax. Heavy ball: η < 2(1 + μ)/λmax (a root of the recurrence
  reaches −1 at ηλ = 2 + 2μ). Nesterov: η < 2(1 + μ)/((1 + 2μ) λmax) (a root reaches −1
  at (1 − ηλ)(1 + 2μ) = −1).
  """
  _checks.in_range("lambda_max", lambda_max, 0.0, low_open=True)
  _checks.in_range("mu", mu, 0.0, 1.0, high_open=True)
  bound = 2.0 * (1.0 + mu) / lambda_max
  return bound / (1.0 + 2.0 * mu) if nesterov else bound


class PolyakStep(NamedTuple):
  """Polyak's optimal heavy-ball step for a quadratic with λ in [λmin, λmax]."""
  lr: float
  mu: float
  rate: float


def polyak_momentum(lambda_min: float, lambda_max: float) -> PolyakStep:
  """η = 4/(√λmax + √λmin)², μ = ((√κ − 1)/(√κ + 1))²; every direction then has spectral
  radius √μ = (√κ − 1)/(√κ + 1) ≈ 1 − 2/√κ (against (κ − 1)/(κ + 1) ≈ 1 − 2/κ without
  momentum); the extreme directions are critically damped (a double root)."""
  _checks.in_range("lambda_min", lambda_min, 0.0, low_open=True)
  _checks.in_range("lambda_max", lambda_max, float(lambda_min))
  smin, smax = math.sqrt(lambda_min), math.sqrt(lambda_max)
  rate = (smax - smin) / (smax + smin)
  return PolyakStep(lr=4.0 / (smax + smin)**2, mu=rate * rate, rate=rate)


# ----------------------------------------------------------------------------- rate check


class RateCheck(NamedTuple):
  """Predicted against observed convergence rates, per eigendirection (ascending λ).

  Fields:
    eigenvalues: λᵢ.
    predicted: 1 − ηλᵢ (plain descent; signed), or the spectral radius ρᵢ (momentum).
    observed: the fitted rate on the same footing (NaN where the direction fell below
      round-off too fast to measure, e.g. a rate of exactly 0).
    max_gap: the largest |predicted − observed| over measured directions (with momentum,
      also over the recurrence coefficients p and q).
    diverging: |predicted| > 1 (the direction grows).
    growth: |observed|, the observed factor by which |αᵢ| changes per step.
    predicted_pq, observed_pq: (P, 2) arrays of the recurrence (p, q) with momentum;
      None for plain descent.
    alpha: αᵢ(t) = uᵢᵀ(wₜ − w*) for t = 0 … steps, shape (steps + 1, P).
    steps_used: how many ratios (or recurrence rows) each fit used.
    lr, mu, nesterov: the run's settings.
    grad_norm: ‖∇E(w*)‖ at the given point (should be ≈ 0: it is meant to be a minimum).
    floor: per step, shape (steps + 1, 1): |αᵢ(t)| below floor[t] was treated as
      round-off, floor[t] = 100·ε·(‖w*‖/√P + ‖wₜ − w*‖), about 100 times the rounding
      error of one coordinate (a diverging direction raises it for all the others).
  """
  eigenvalues: np.ndarray
  predicted: np.ndarray
  observed: np.ndarray
  max_gap: float
  diverging: np.ndarray
  growth: np.ndarray
  predicted_pq: np.ndarray | None
  observed_pq: np.ndarray | None
  alpha: np.ndarray
  steps_used: np.ndarray
  lr: float
  mu: float
  nesterov: bool
  grad_norm: float
  floor: np.ndarray


@functools.partial(jax.jit, static_argnames=("loss_fn", "steps", "nesterov"))
def _descent_path(loss_fn: LossFn, params_star: Params, start: Array, velocity: Array,
                  basis: Array, lr: Array, mu: Array, steps: int,
                  nesterov: bool) -> tuple[Array, Array]:
  """α(t) = Uᵀ(wₜ − w*) for t = 0 … steps of jaxnn's momentum/nesterov from ``start``
  with the velocity (optax's ``trace``) set to ``velocity``, and ‖∇E(w*)‖."""
  flat_star, unravel = ravel_pytree(params_star)
  grad = jax.grad(lambda x: loss_fn(unravel(x)))
  make = optimizers.nesterov if nesterov else optimizers.momentum
  opt = make(lr, mu)

  def step(carry, _):
    x, state = carry
    updates, state = opt.update(grad(x), state, x)
    x = optax.apply_updates(x, updates)
    return (x, state), x - flat_star

  state = optax.tree_utils.tree_set(opt.init(start), trace=velocity)
  _, path = lax.scan(step, (start, state), None, length=steps)
  path = jnp.concatenate([(start - flat_star)[None], path])
  return path @ basis, jnp.linalg.norm(grad(flat_star))


# compiled once per (loss_fn, steps, nesterov): checks at several η and μ of one loss reuse it
_descent_path_jit = jax.jit(_descent_path, static_argnums=(0, 7, 8))


def _fit_ratio(alpha: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Least-squares r in αₜ₊₁ ≈ r αₜ over steps with both |α| above the floor: Σαₜ₊₁αₜ / Σαₜ²."""
  a0, a1 = alpha[:-1], alpha[1:]
  with np.errstate(invalid="ignore", over="ignore"):
    ok = (np.abs(a0) >= floor[:-1]) & (np.abs(a1) >= floor[1:]) & np.isfinite(a0) & (
        np.isfinite(a1))
    num = np.sum(np.where(ok, a1 * a0, 0.0), axis=0)
    den = np.sum(np.where(ok, a0 * a0, 0.0), axis=0)
  used = ok.sum(axis=0)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(used >= 1, num / den, np.nan), used


def _fit_recurrence(alpha: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Least-squares (p, q) in αₜ₊₁ ≈ p αₜ + q αₜ₋₁ per direction, over rows where αₜ or
  αₜ₋₁ is above the floor; NaN with fewer than 3 rows or a rank-deficient fit.

  Solved by QR, not the normal equations: when one root dominates, the columns αₜ and
  αₜ₋₁ are nearly parallel and the normal equations would square that ill-conditioning.
  """
  y, x1, x2 = alpha[2:], alpha[1:-1], alpha[:-2]
  with np.errstate(invalid="ignore", over="ignore"):
    ok = ((np.abs(x1) >= floor[1:-1]) | (np.abs(x2) >= floor[:-2])) & np.isfinite(y) & (
        np.isfinite(x1) & np.isfinite(x2))
  design = np.stack([np.where(ok, x1, 0.0).T, np.where(ok, x2, 0.0).T], axis=-1)  # (P, T, 2)
  target = np.where(ok, y, 0.0).T[..., None]
  q_factor, r = np.linalg.qr(design)
  rhs = np.swapaxes(q_factor, -1, -2) @ target
  r11, r12, r22 = r[:, 0, 0], r[:, 0, 1], r[:, 1, 1]
  used = ok.sum(axis=0)
  scale = np.maximum(np.abs(r11), np.abs(r22))
  good = (used >= 3) & (np.abs(r22) > 1e2 * np.finfo(alpha.dtype).eps * scale) & (
      np.abs(r11) > 0)
  with np.errstate(invalid="ignore", divide="ignore"):
    q = np.where(good, rhs[:, 1, 0] / r22, np.nan)
    p = np.where(good, (rhs[:, 0, 0] - r12 * q) / r11, np.nan)
  return np.stack([p, q], axis=1), used


def check_rates(loss_fn: LossFn, params_star: Params, lr: float, steps: int = 50, *,
                mu: float = 0.0, nesterov: bool = False, key: Any = None,
                perturbation: float | None = None,
                spec: Spectrum | None = None) -> RateCheck:
  """Runs descent from a perturbed minimum and compares each direction's rate with theory.

  Starts at w₀ = w* + Σᵢ cᵢuᵢ with |cᵢ| equal and random signs (a component in every
  eigendirection), runs ``steps`` steps of jaxnn's optimiser (``momentum(lr, mu)`` or
  ``nesterov(lr, mu)``; μ = 0 is plain gradient descent; with μ > 0 the velocity starts
  at Σᵢ c′ᵢuᵢ, independent signs, not at 0, so that both roots of every direction are
  excited and the fit below can see them), projects wₜ − w* on the
  eigenvectors, αᵢ(t) = uᵢᵀ(wₜ − w*), and fits per direction:

  * μ = 0: r̂ᵢ = Σₜ αᵢ(t+1)αᵢ(t) / Σₜ αᵢ(t)², least squares over the steps where |αᵢ| is
    above round-off (NaN where fewer than two such steps remain), against 1 − ηλᵢ.
  * μ > 0: (p̂ᵢ, q̂ᵢ) of αₜ₊₁ = p̂ αₜ + q̂ αₜ₋₁ by least squares (a single ratio cannot
    describe oscillating or critically damped directions), and the spectral radius of
    r² − p̂r − q̂, against :func:`momentum_recurrence` and
    :func:`predicted_rates_momentum`.

  The prediction holds where E is quadratic, so w* must be a minimum to high accuracy
  (see :func:`find_minimum`; ``grad_norm`` in the result says how close) and the
  perturbation small. Use float64 (``jax_enable_x64``) for tight comparisons.

  Args:
    loss_fn: ``loss_fn(params) -> scalar``.
    params_star: the minimum w*.
    lr: the step η > 0.
    steps: steps to run (≥ 2; ≥ 3 with momentum).
    mu: momentum μ in [0, 1).
    nesterov: use Nesterov's look-ahead.
    key: PRNG key for the signs of the perturbation (default ``jax.random.key(0)``).
    perturbation: |cᵢ| per direction; default √ε·max(1, ‖w*‖)/√P (ε the machine
      epsilon), which balances the error of the quadratic model (∝ |cᵢ|) against
      round-off (∝ ε/|cᵢ|).
    spec: a :class:`Spectrum` with eigenvectors at ``params_star``, if already computed.

  Returns:
    A :class:`RateCheck`.
  """
  _checks.in_range("lr", lr, 0.0, low_open=True)
  _checks.in_range("mu", mu, 0.0, 1.0, high_open=True)
  steps = _checks.positive_int("steps", steps, 3 if mu else 2)
  if perturbation is not None:
    _checks.in_range("perturbation", perturbation, 0.0, low_open=True)
  if spec is None:
    spec = spectrum(loss_fn, params_star, vectors=True)
  elif not isinstance(spec, Spectrum) or spec.eigenvectors is None:
    raise ValueError("spec must be a Spectrum computed with vectors=True at params_star")
  flat_star = ravel_pytree(params_star)[0]
  size = flat_star.shape[0]
  if spec.eigenvectors.shape != (size, size):
    raise ValueError(f"spec has eigenvectors of shape {spec.eigenvectors.shape}, but "
                     f"params_star has {size} parameters")
  dtype = np.dtype(flat_star.dtype)
  eps = float(np.finfo(dtype).eps)
  host_star = np.asarray(flat_star)
  norm = float(np.linalg.norm(host_star))
  if perturbation is None:
    perturbation = math.sqrt(eps) * max(1.0, norm) / math.sqrt(size)
  key = jax.random.key(0) if key is None else key
  # ±1 signs from the key; the start is built on the host (no program per problem size)
  signs = np.where(np.asarray(initializers.standard("uniform", key, (2, size), dtype)) < 0,
                   -1.0, 1.0).astype(dtype)
  basis = np.asarray(spec.eigenvectors, dtype)
  start = jnp.asarray(host_star + basis @ (perturbation * signs[0]))
  velocity = jnp.asarray(basis @ (perturbation * signs[1]) if mu else np.zeros_like(host_star))
  basis = jnp.asarray(basis)
  with jax.default_matmul_precision("highest"):
    alpha, grad_norm = _descent_path_jit(loss_fn, params_star, start, velocity, basis,
                                         jnp.asarray(lr, dtype), jnp.asarray(mu, dtype),
                                         steps, bool(nesterov))
  alpha = np.asarray(alpha)
  # 100 × the round-off in αᵢ(t): ε times the sizes of w* and of the whole deviation
  floor = 100 * eps * (norm / math.sqrt(size) + np.linalg.norm(alpha, axis=1, keepdims=True))
  with np.errstate(over="ignore", invalid="ignore"):
    floor = np.where(np.isfinite(floor), floor, np.inf)
  lam = spec.eigenvalues
  if mu:
    pred_pq = np.stack([np.asarray(v) for v in momentum_recurrence(lam, lr, mu, nesterov)],
                       axis=1)
    obs_pq, used = _fit_recurrence(alpha, floor)
    predicted = np.asarray(spectral_radius(pred_pq[:, 0], pred_pq[:, 1]))
    observed = np.asarray(spectral_radius(obs_pq[:, 0], obs_pq[:, 1]))
    gaps = np.concatenate([np.abs(predicted - observed), np.abs(pred_pq - obs_pq).ravel()])
  else:
    pred_pq = obs_pq = None
    predicted = np.asarray(predicted_rates(lam, lr))
    observed, used = _fit_ratio(alpha, floor)
    gaps = np.abs(predicted - observed)
  gaps = gaps[np.isfinite(gaps)]
  return RateCheck(
      eigenvalues=lam, predicted=predicted, observed=observed,
      max_gap=float(gaps.max()) if gaps.size else math.nan,
      diverging=np.abs(predicted) > 1.0, growth=np.abs(observed),
      predicted_pq=pred_pq, observed_pq=obs_pq, alpha=alpha, steps_used=used,
      lr=float(lr), mu=float(mu), nesterov=bool(nesterov), grad_norm=float(grad_norm),
      floor=floor)


# ----------------------------------------------------------------------------- minimum


class Minimum(NamedTuple):
  """What :func:`find_minimum` reached.

  Fields:
    params: the point found.
    loss: E there.
    grad_norm: ‖∇E‖ there.
    converged: ``grad_norm <= gtol``.
    newton_steps: Newton steps taken.
    spectrum: the Hessian's :class:`Spectrum` there (with eigenvectors).
    kind: ``spectrum.kind``: "minimum" is what was asked for; "saddle" means Newton
      converged to a saddle point.
    report: one line for a person: what was found and, if not a minimum, what to do.
  """
  params: Params
  loss: float
  grad_norm: float
  converged: bool
  newton_steps: int
  spectrum: Spectrum
  kind: str
  report: str


@functools.partial(jax.jit, static_argnames=("loss_fn", "steps"))
def _adam(loss_fn: LossFn, params: Params, lr: Array, steps: int) -> Params:
  opt = optimizers.adam(lr)

  def step(carry, _):
    p, state = carry
    updates, state = opt.update(jax.grad(loss_fn)(p), state, p)
    return (optax.apply_updates(p, updates), state), None

  (params, _), _ = lax.scan(step, (params, opt.init(params)), None, length=steps)
  return params


@functools.partial(jax.jit, static_argnames=("loss_fn",))
def _value_and_flat_grad(loss_fn: LossFn, params: Params) -> tuple[Array, Array]:
  value, grad = jax.value_and_grad(loss_fn)(params)
  return value, ravel_pytree(grad)[0]


def _newton_direction(matrix: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, bool]:
  """(step, H positive definite?). Newton's −H⁻¹g by a Cholesky solve when H is positive
  definite; otherwise the saddle-free step −Σᵢ (uᵢᵀg/|λᵢ|) uᵢ (Dauphin et al. 2014), with
  |λᵢ| ≤ P·ε·max|λ| left out: a descent direction that moves away from saddle points
  instead of toward them. On the host (LAPACK through NumPy): the Newton loop's small
  dense algebra needs no compiled programs."""
  try:
    factor = np.linalg.cholesky(matrix)
    step = -np.linalg.solve(factor.T, np.linalg.solve(factor, grad))
    if np.all(np.isfinite(step)):
      return step, True
  except np.linalg.LinAlgError:
    pass
  lam, u = np.linalg.eigh(matrix)
  tol = lam.shape[0] * np.finfo(lam.dtype).eps * np.max(np.abs(lam))
  inv = np.where(np.abs(lam) > tol, 1.0 / np.where(lam == 0, 1.0, np.abs(lam)), 0.0)
  return -(u * inv) @ (u.T @ grad), False


def find_minimum(loss_fn: LossFn, params: Params, *, steps: int = 2000, lr: float = 1e-2,
                 newton_steps: int = 50, gtol: float | None = None,
                 max_bytes: int = MAX_BYTES) -> Minimum:
  """Gets to a minimum accurately enough for :func:`check_rates`.

  ``steps`` steps of Adam (one jitted scan) to get close, then Newton steps on the exact
  Hessian: w ← w − H⁻¹∇E where H is positive definite (quadratic convergence near a strict
  minimum), and the saddle-free step w ← w − |H|⁻¹∇E where it is not (|H| = U|Λ|Uᵀ; plain
  Newton would head for the nearest critical point, a saddle included). Each step is
  halved (up to 20 times) until it lowers E, or, where H is positive definite, ‖∇E‖;
  the search stops when ‖∇E‖ ≤ ``gtol`` or no step is accepted. The result's ``kind`` and
  ``report`` say whether the point reached is a minimum, a saddle or degenerate.

  Args:
    loss_fn: ``loss_fn(params) -> scalar``.
    params: where to start.
    steps: Adam steps (0 to go straight to Newton).
    lr: Adam's step.
    newton_steps: the most Newton steps.
    gtol: target ‖∇E‖; default ε^(3/4) of the dtype (1.8e-12 in float64, 6.4e-6 in
      float32).
    max_bytes: memory budget for the Hessian (see :func:`hessian_matrix`).
  """
  size, dtype = _check_params(loss_fn, params)
  _check_budget("find_minimum's Hessian", size, dtype, 3, max_bytes)
  steps = _checks.positive_int("steps", steps, 0)
  newton_steps = _checks.positive_int("newton_steps", newton_steps, 0)
  _checks.in_range("lr", lr, 0.0, low_open=True)
  eps = float(np.finfo(dtype).eps)
  gtol = eps**0.75 if gtol is None else float(_checks.in_range("gtol", gtol, 0.0))
  if steps:
    params = _adam(loss_fn, params, jnp.asarray(lr, dtype), steps)
  flat, unravel = ravel_pytree(params)
  flat = np.asarray(flat)
  value, grad = (np.asarray(a) for a in _value_and_flat_grad(loss_fn, params))
  norm = float(np.linalg.norm(grad))
  taken = 0
  while taken < newton_steps and norm > gtol and np.isfinite(norm):
    matrix, _ = hessian_matrix(loss_fn, unravel(jnp.asarray(flat)), max_bytes=max_bytes)
    direction, convex = _newton_direction(np.asarray(matrix), grad)
    for _ in range(21):
      trial = flat + direction
      t_value, t_grad = (np.asarray(a) for a in _value_and_flat_grad(
          loss_fn, unravel(jnp.asarray(trial))))
      t_norm = float(np.linalg.norm(t_grad))
      if t_value < value or (convex and t_norm < norm):
        break
      direction = 0.5 * direction
    else:
      break  # no step along the Newton direction lowers ‖∇E‖: round-off reached
    flat, value, grad, norm, taken = trial, t_value, t_grad, t_norm, taken + 1
  params = unravel(jnp.asarray(flat))
  spec = spectrum(loss_fn, params, vectors=True, max_bytes=max_bytes)
  converged = norm <= gtol
  where = f"‖∇E‖ = {norm:.3g} after {taken} Newton steps"
  if not converged:
    where += f" (target {gtol:.3g} not reached)"
  if spec.kind == "minimum":
    report = f"strict minimum: {where}; κ = {spec.condition_number:.4g}"
  elif spec.kind == "saddle":
    report = (f"saddle point, not a minimum: {where}; {spec.n_negative} of {size} "
              f"Hessian eigenvalues are negative (λmin = {spec.lambda_min:.3g}); start "
              f"elsewhere, or step along the eigenvector of λmin to leave it")
  elif spec.kind == "degenerate":
    report = (f"degenerate critical point: {where}; {spec.n_zero} Hessian eigenvalues are "
              f"zero (|λ| ≤ {spec.zero_tol:.2g}), so it is not a strict minimum and κ = inf")
  else:
    report = f"maximum, not a minimum: {where}; every Hessian eigenvalue is negative"
  return Minimum(params=params, loss=float(value), grad_norm=norm, converged=converged,
                 newton_steps=taken, spectrum=spec, kind=spec.kind, report=report)
