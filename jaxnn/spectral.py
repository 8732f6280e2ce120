"""Matrix-free curvature: the Hessian (or Gauss-Newton) spectrum from matrix-vector products.

The exact Hessian (:mod:`jaxnn.hessian`) needs P² numbers; these tools need a few vectors
of P, so they reach networks of 10⁶–10⁷ parameters. Every vector is a pytree shaped like
the params (never a flattened copy), and every loop runs in ``lax`` control flow.

A *curvature* is a symmetric linear map v ↦ Av on params-shaped pytrees:

* :func:`hessian_curvature` — A = ∇²E(w), by :func:`hvp` (forward-over-reverse: the
  ``jvp`` of ``grad``, about the cost of two gradients); optionally E = the mean of a
  per-batch loss over a dataset, the products summed batch by batch.
* :func:`gauss_newton` — A = Jᵀ H_ℓ J, the generalised Gauss-Newton matrix of a loss
  ℓ(f(w)) (J the Jacobian of the model's outputs f, H_ℓ the Hessian of the loss in the
  outputs): positive semi-definite when ℓ is convex in f.

Every tool takes ``loss_fn`` — a function ``loss_fn(params) -> scalar`` (its Hessian) or
a :class:`Curvature` — and ``params``. ``mask`` (a pytree of bools shaped like params, or
a function ``path -> bool`` of the :func:`jax.tree_util.keystr` of each leaf) restricts
any of them to a block: A_BB, e.g. one layer's λmax or trace. Random probes and starting
vectors come from an explicit ``key``.

* :func:`power_iteration` — the eigenvalue of largest |λ|; :func:`lambda_max_min` gives
  λmax and λmin separately, by shifting with a bound on |λ|.
* :func:`lanczos` — k steps with full reorthogonalisation (restarting on breakdown, so
  repeated eigenvalues are found with their multiplicity); :func:`top_eigenvalues` and
  :func:`bottom_eigenvalues` on its Ritz values.
* :func:`hutchinson_trace` — tr A ≈ mean of zᵀAz over Rademacher z, with its standard
  error; :func:`spectral_density` — stochastic Lanczos quadrature.
* :func:`sharpness_hook` — a :class:`jaxnn.train.Hook` recording λmax during training
  (edge of stability), warm-started from the previous eigenvector.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxnn import _checks, hessian
from jaxnn.base import Array, Params, PRNGKey
from jaxnn.train import Hook

Tree = Any


# ---------------------------------------------------------------------------------------
# curvature operators
# ---------------------------------------------------------------------------------------

class Curvature(NamedTuple):
  """A symmetric linear map: ``matvec(params, v) -> A v`` (pytrees shaped like params)."""
  matvec: Callable[[Params, Tree], Tree]


@functools.partial(jax.jit, static_argnums=0)
def hvp(loss_fn: Callable[[Params], Array], params: Params, v: Tree) -> Tree:
  """H v = ∂/∂t ∇E(w + t v) at t = 0: the ``jvp`` of ``grad`` (forward-over-reverse),
  pytree in, pytree out, without forming H."""
  return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def hessian_curvature(loss_fn: Callable, data: Any = None, *,
                      batch_size: int | None = None) -> Curvature:
  """The Hessian of ``loss_fn(params)``, or of the dataset mean of ``loss_fn(params,
  batch)``.

  With ``data`` (a pytree of arrays sharing a leading axis of n rows), E(w) is the mean
  over the n examples of a per-batch mean loss, and
  H v = Σ_b (n_b / n) ∇²E_b(w) v over consecutive batches of ``batch_size`` rows (the
  last one smaller when n is not a multiple), summed inside ``lax.scan``: a dataset whose
  full-batch HVP would not fit in memory still works.
  """
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be a function, got {loss_fn!r}")
  if data is None:
    if batch_size is not None:
      raise ValueError("batch_size needs data=...")
    return Curvature(functools.partial(hvp, loss_fn))
  rows = {int(np.shape(a)[0]) for a in jax.tree.leaves(data)}
  if len(rows) != 1:
    raise ValueError(f"every array in data must have the same number of rows, got shapes "
                     f"{[np.shape(a) for a in jax.tree.leaves(data)]}")
  n = rows.pop()
  for i, leaf in enumerate(jax.tree.leaves(data)):
    _checks.finite(f"data (array {i})", leaf)
  size = n if batch_size is None else _checks.positive_int("batch_size", batch_size)
  if size > n:
    raise ValueError(f"batch_size must be at most the {n} rows of data, got {size}")
  full, rest = divmod(n, size)

  def batch_hvp(params, v, batch):
    return jax.jvp(jax.grad(lambda p: loss_fn(p, batch)), (params,), (v,))[1]

  def matvec(params, v):
    head = jax.tree.map(lambda a: a[:full * size].reshape((full, size) + a.shape[1:]),
                        data)
    total = lax.scan(lambda acc, b: (optax.tree.add(acc, batch_hvp(params, v, b)), None),
                     optax.tree.zeros_like(v), head)[0]
    total = optax.tree.scale(size / n, total)
    if rest:
      tail = jax.tree.map(lambda a: a[full * size:], data)
      total = optax.tree.add_scale(total, rest / n, batch_hvp(params, v, tail))
    return total

  return Curvature(matvec)


def objective_loss(objective: Any, state: Any = None, batch: Any = None, *,
                   train: bool = False, key: PRNGKey | None = None) -> Callable:
  """The training loss of a :func:`jaxnn.train.objective` (data loss + penalty) as a
  function of the params alone: ``loss_fn(params)`` on ``batch``, or ``loss_fn(params,
  batch)`` for :func:`hessian_curvature` over a dataset when ``batch`` is None.

  By default the model is in inference mode: batch norm uses its running averages in
  ``state`` and dropout is off, so E is a fixed function of w and its Hessian is that of
  the network as it predicts. ``train=True`` analyses the training-mode loss instead
  (batch statistics: each example's output then depends on the whole batch; dropout
  draws its mask from ``key``).
  """
  if not hasattr(objective, "value"):
    raise TypeError(f"objective must be built by jaxnn.train.objective, got "
                    f"{type(objective).__name__}")
  state = {} if state is None else state

  def on(params, data):
    return objective.value(params, state, data, train=train, key=key)[0]

  return on if batch is None else (lambda params: on(params, batch))


def gauss_newton(model_fn: Callable[[Params], Array],
                 output_loss: Callable[[Array], Array]) -> Curvature:
  """The generalised Gauss-Newton matrix G = Jᵀ H_ℓ J of E(w) = ℓ(f(w)).

  G v = Jᵀ (H_ℓ (J v)): J v by ``jvp`` of ``model_fn``, H_ℓ u by forward-over-reverse on
  ``output_loss`` at f(w), Jᵀ by ``vjp``. For a model linear in w with a quadratic ℓ,
  G equals the Hessian; G drops the term Σ_k (∂ℓ/∂f_k) ∇²f_k, and is positive
  semi-definite whenever ℓ is convex in f (squared error, softmax cross-entropy).
  """
  if not (callable(model_fn) and callable(output_loss)):
    raise TypeError("gauss_newton needs model_fn(params) -> outputs and "
                    "output_loss(outputs) -> scalar")

  def matvec(params, v):
    outputs, jv = jax.jvp(model_fn, (params,), (v,))
    hjv = jax.jvp(jax.grad(output_loss), (outputs,), (jv,))[1]
    return jax.vjp(model_fn, params)[1](hjv)[0]

  return Curvature(matvec)


def _block(mask: Any, params: Params) -> Tree | None:
  """``mask`` as a pytree of 0/1 arrays shaped like params (None: everything)."""
  if mask is None:
    return None
  if callable(mask):
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    picks = [bool(mask(jax.tree_util.keystr(path))) for path, _ in flat]
    mask = jax.tree.unflatten(treedef, picks)
  try:
    ones = jax.tree.map(lambda m, p: jnp.broadcast_to(jnp.asarray(m, p.dtype), p.shape),
                        mask, params)
  except (ValueError, TypeError):
    raise ValueError("mask must be a pytree shaped like params (a bool per leaf or per "
                     "entry) or a function path -> bool") from None
  if not any(bool(jnp.any(m)) for m in jax.tree.leaves(ones)):
    raise ValueError("mask selects no parameter")
  return ones


@functools.lru_cache(maxsize=64)
def _hessian_of(loss_fn: Callable) -> Curvature:
  """One Curvature per loss function, so that compiled loops are reused across calls."""
  return hessian_curvature(loss_fn)


def _matvec(loss_fn: Callable | Curvature) -> Callable[[Params, Tree], Tree]:
  if isinstance(loss_fn, Curvature):
    return loss_fn.matvec
  if callable(loss_fn):
    return _hessian_of(loss_fn).matvec
  raise TypeError(f"loss_fn must be a function loss_fn(params) -> scalar or a Curvature, "
                  f"got {loss_fn!r}")


def _restricted(matvec: Callable, params: Params, block: Tree | None) -> Callable:
  """v ↦ A_BB v = B A B v (B the 0/1 block), or v ↦ A v without a block."""
  if block is None:
    return functools.partial(matvec, params)
  return lambda v: optax.tree.mul(block, matvec(params, optax.tree.mul(block, v)))


def _random_tree(key: PRNGKey, like: Tree, rademacher: bool = False) -> Tree:
  """Independent N(0, 1) (or ±1) entries in a pytree shaped like ``like``, drawn as one
  flat vector of all P entries and cut into the leaves: one random-number kernel for the
  whole tree (XLA:CPU takes about a second to compile each, and one per leaf would make
  every program that draws a probe that much slower to build)."""
  flat, unravel = ravel_pytree(like)
  if rademacher:
    return unravel(jax.random.rademacher(key, flat.shape, flat.dtype))
  return unravel(jax.random.normal(key, flat.shape, flat.dtype))


def _random_unit(key: PRNGKey, params: Params, block: Tree | None,
                 rademacher: bool = False) -> Tree:
  v = _random_tree(key, params, rademacher)
  if block is not None:
    v = optax.tree.mul(block, v)
  return optax.tree.scale(1.0 / optax.tree.norm(v), v)


def _size(params: Params, block: Tree | None) -> int:
  if block is None:
    return sum(int(np.size(p)) for p in jax.tree.leaves(params))
  return int(sum(jnp.sum(b) for b in jax.tree.leaves(block)))


# ---------------------------------------------------------------------------------------
# power iteration
# ---------------------------------------------------------------------------------------

class PowerResult(NamedTuple):
  """``eigenvalue`` (the Rayleigh quotient vᵀAv), ``eigenvector`` (unit pytree),
  ``iterations`` used, ``converged`` (relative change of the eigenvalue ≤ tol)."""
  eigenvalue: Array
  eigenvector: Tree
  iterations: Array
  converged: Array


def _power(op: Callable, v: Tree, shift: Any, tol: Any, max_iter: int) -> PowerResult:
  """Power iteration on A + shift·I (shift None: on A) from the unit vector v, in
  ``lax.while_loop``."""
  def apply(u):
    return op(u) if shift is None else optax.tree.add_scale(op(u), shift, u)

  def measure(u, au):  # uᵀAu and ‖Au‖², both reductions over the same pass
    return optax.tree.vdot(u, au), optax.tree.vdot(au, au)

  def body(carry):
    i, u, au, lam, square, _ = carry
    new = optax.tree.scale(lax.rsqrt(square), au)
    a_new = apply(new)
    lam_new, square = measure(new, a_new)
    return (i + 1, new, a_new, lam_new, square,
            jnp.abs(lam_new - lam) <= tol * jnp.abs(lam_new))

  def cond(carry):
    i, _, _, _, _, done = carry
    return (i < max_iter) & ~done

  au = apply(v)
  lam, square = measure(v, au)
  i, u, _, lam, _, done = lax.while_loop(cond, body, (jnp.asarray(0), v, au, lam, square,
                                                      jnp.asarray(False)))
  return PowerResult(lam if shift is None else lam - shift, u, i, done)


def power_iteration(loss_fn: Callable | Curvature, params: Params, *, key: PRNGKey,
                    tol: float = 1e-6, max_iter: int = 200, shift: float = 0.0,
                    v0: Tree | None = None, mask: Any = None) -> PowerResult:
  """The eigenvalue of A of largest |λ| (which may be negative) and its eigenvector.

  vₜ₊₁ = (A + sI)vₜ / ‖(A + sI)vₜ‖ from a random unit v₀ (or ``v0``), until the
  Rayleigh quotient λₜ = vₜᵀAvₜ changes by at most ``tol``·|λₜ| or ``max_iter`` steps;
  the error shrinks like (|λ₂ + s|/|λ₁ + s|)ᵗ. With ``shift`` s, the iteration finds the
  eigenvalue λ maximising |λ + s| (reported without the shift): :func:`lambda_max_min`
  uses this to separate λmax from λmin.
  """
  _checks.prng_key("key", key)
  _checks.in_range("tol", tol, 0.0)
  max_iter = _checks.positive_int("max_iter", max_iter)
  matvec, block = _matvec(loss_fn), _block(mask, params)
  concrete = _checks.concrete(shift)
  shift = None if concrete is not None and float(concrete) == 0.0 else jnp.asarray(
      shift, _dtype(params))
  return _power_jit(matvec, params, block, key if v0 is None else v0, shift, float(tol),
                    max_iter)


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def _power_jit(matvec, params, block, start, shift, tol, max_iter):
  return _power(_restricted(matvec, params, block), _start(start, params, block), shift,
                tol, max_iter)


def _start(start: Any, params: Params, block: Tree | None, rademacher: bool = False) -> Tree:
  """The unit starting vector: random from a key (normal, or Rademacher), or ``start``
  normalised."""
  if hasattr(start, "dtype") and jax.dtypes.issubdtype(start.dtype, jax.dtypes.prng_key):
    return _random_unit(start, params, block, rademacher)
  return optax.tree.scale(1.0 / optax.tree.norm(start), start)


def _dtype(params: Params) -> Any:
  return jnp.result_type(*jax.tree.leaves(params))


@functools.lru_cache(maxsize=64)
def _negated(matvec: Callable) -> Curvature:
  return Curvature(lambda p, v: optax.tree.scale(-1.0, matvec(p, v)))


class Extremes(NamedTuple):
  """λmax and λmin of A with their eigenvectors and the iterations each took."""
  lambda_max: Array
  lambda_min: Array
  max_vector: Tree
  min_vector: Tree
  iterations: tuple


def lambda_max_min(loss_fn: Callable | Curvature, params: Params, *, key: PRNGKey,
                   tol: float = 1e-6, max_iter: int = 500, mask: Any = None) -> Extremes:
  """λmax and λmin by power iteration, each labelled.

  A first run finds λ₁, the eigenvalue of largest |λ|; s = |λ₁| bounds every |λ|. Then
  A + sI has eigenvalues λ + s ∈ [0, 2s], the largest being λmax + s, and sI − A has
  s − λ ∈ [0, 2s], the largest being s − λmin: one run on each gives λmax and λmin
  whatever their signs. The shifted runs converge at the rate (λ₂ + s)/(λmax + s).
  """
  first = power_iteration(loss_fn, params, key=key, tol=tol, max_iter=max_iter, mask=mask)
  s = jnp.abs(first.eigenvalue)
  top = power_iteration(loss_fn, params, key=jax.random.fold_in(key, 2), tol=tol,
                        max_iter=max_iter, shift=s, mask=mask)
  low = power_iteration(_negated(_matvec(loss_fn)), params, key=jax.random.fold_in(key, 1), tol=tol,
                        max_iter=max_iter, shift=s, mask=mask)
  return Extremes(top.eigenvalue, -low.eigenvalue, top.eigenvector, low.eigenvector,
                  (int(first.iterations), int(top.iterations), int(low.iterations)))


# ---------------------------------------------------------------------------------------
# Lanczos
# ---------------------------------------------------------------------------------------

class LanczosResult(NamedTuple):
  """``alpha`` (k,), ``beta`` (k − 1,): the tridiagonal T = QᵀAQ (β = 0 where the Krylov
  space was exhausted and restarted); ``basis``: Q, every leaf with a leading axis of k;
  ``ritz_values`` (ascending) and ``ritz_vectors`` (k × k, the eigenvectors of T: the
  Ritz vector i is Σⱼ Q[j] ritz_vectors[j, i]); ``restarts``: how many breakdowns."""
  alpha: Array
  beta: Array
  basis: Tree
  ritz_values: Array
  ritz_vectors: Array
  restarts: Array


def _lanczos(op: Callable, v: Tree, key: PRNGKey, block: Tree | None, k: int) -> tuple:
  """k Lanczos steps, reorthogonalising against the basis built so far (module doc)."""
  dtype = _dtype(v)
  eps = jnp.finfo(dtype).eps
  rows = max(4, -(-k // 8))  # the basis is read a group of rows at a time
  groups = -(-(k + 1) // rows)
  basis = jax.tree.map(lambda x: jnp.zeros((groups * rows,) + x.shape, x.dtype), v)

  def project(q_all, w, j):
    """w − Σ_{i ≤ j} (qᵢᵀw) qᵢ, a group of rows at a time (block modified Gram-Schmidt),
    touching only the groups that hold q₀ … qⱼ."""
    def remove(g, out):
      part = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, g * rows, rows), q_all)
      coef = sum(jnp.tensordot(a, x, axes=x.ndim) for a, x in
                 zip(jax.tree.leaves(part), jax.tree.leaves(out)))
      return jax.tree.map(lambda o, a: o - jnp.tensordot(coef, a, axes=1), out, part)

    return lax.fori_loop(0, j // rows + 1, remove, w)

  def orthogonalise(q_all, w, j):
    """One classical Gram-Schmidt pass, and a second when the first removed more than
    half of ‖w‖ (where one pass loses orthogonality: Kahan-Parlett, "twice is enough")."""
    def again(state):
      passes, _, before, after = state
      return (passes == 0) | ((passes == 1) & (after < 0.5 * before))

    def one_pass(state):
      passes, u, _, after = state
      u = project(q_all, u, j)
      return passes + 1, u, after, optax.tree.norm(u)

    norm = optax.tree.norm(w)
    return lax.while_loop(again, one_pass, (jnp.asarray(0), w, norm, norm))[1]

  def restart(q_all, j):
    return orthogonalise(q_all, _random_unit(jax.random.fold_in(key, j), v, block), j)

  def body(j, carry):
    q_all, q, q_prev, beta_prev, alpha, beta, scale, restarts = carry
    w = op(q)
    a = optax.tree.vdot(q, w)
    w = jax.tree.map(lambda x, u, p: x - a * u - beta_prev * p, w, q, q_prev)  # 3-term
    w = orthogonalise(q_all, w, j)
    b = optax.tree.norm(w)
    scale = jnp.maximum(scale, jnp.maximum(jnp.abs(a), b))
    broken = b <= eps ** (2 / 3) * scale
    w = lax.cond(broken, lambda: restart(q_all, j), lambda: w)
    q_next = optax.tree.scale(1.0 / optax.tree.norm(w), w)
    q_all = jax.tree.map(lambda m, x: m.at[j + 1].set(x), q_all, q_next)
    b = jnp.where(broken, 0.0, b)
    return (q_all, q_next, q, b, alpha.at[j].set(a), beta.at[j].set(b), scale,
            restarts + (broken & (j < k - 1)))

  start = jax.tree.map(lambda m, x: m.at[0].set(x), basis, v)
  zero = jnp.zeros((), dtype)
  carry = (start, v, optax.tree.zeros_like(v), zero, jnp.zeros(k, dtype), jnp.zeros(k, dtype),
           zero, jnp.asarray(0))
  q_all, _, _, _, alpha, beta, _, restarts = lax.fori_loop(0, k, body, carry)
  return jax.tree.map(lambda m: m[:k], q_all), alpha, beta[:-1], restarts


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def _lanczos_jit(matvec, params, block, start, key, k, rademacher=False):
  return _lanczos(_restricted(matvec, params, block),
                  _start(start, params, block, rademacher), key, block, k)


def lanczos(loss_fn: Callable | Curvature, params: Params, k: int, *, key: PRNGKey,
            v0: Tree | None = None, mask: Any = None) -> LanczosResult:
  """k steps of the Lanczos iteration with full reorthogonalisation.

  From a unit q₀: w = A qⱼ, αⱼ = qⱼᵀw, w ← w − αⱼqⱼ − βⱼ₋₁qⱼ₋₁, then w ← w − Σ_{i≤j}
  (qᵢᵀw) qᵢ over the basis so far (classical Gram-Schmidt, repeated once when it removes
  more than half of ‖w‖, which keeps the basis orthogonal to working precision), βⱼ = ‖w‖,
  qⱼ₊₁ = w/βⱼ; then T = tridiag(β, α, β) = QᵀAQ, whose eigenvalues (the Ritz values)
  approximate A's extremes first. When βⱼ falls to round-off (≤ ε^(2/3) × the largest
  |α|, β seen) the Krylov space is invariant: the iteration restarts from a random vector
  orthogonal to the basis and records βⱼ = 0, so k = P recovers the whole spectrum,
  repeated eigenvalues included. Costs k products with A and about k²P multiply-adds for
  the reorthogonalisation (the basis is read in groups, skipping those not yet filled);
  memory k + 1 vectors.

  The loop runs in ``lax.fori_loop`` under ``jit``; T (at most k × k) is diagonalised on
  the host.

  Written here rather than taken from matfree: matfree's ``tridiag_sym(30,
  reortho="full")`` gave the same tridiagonal matrices but took 1.09 s against 0.47 s
  here for 30 steps at P = 669,706 (``benchmarks/spectral.py``): it reorthogonalises
  against the whole fixed-size basis at every step, this loop only against the part
  filled so far. JAX's ``jax.experimental.sparse.linalg.lobpcg_standard`` (a block of 5,
  ``m=30``, on the flattened params) stopped after one iteration on that model with
  eigenvalues 37.9, 22.2, 13.9, 9.8, 6.0, where these 30 steps give the top five as 53.3,
  46.7, 40.6, 33.2, 28.7 with residuals ‖Hv − λv‖ ≈ 1e-5.
  """
  _checks.prng_key("key", key)
  matvec, block = _matvec(loss_fn), _block(mask, params)
  size = _size(params, block)
  k = _checks.positive_int("k", k)
  if k > size:
    raise ValueError(f"k must be at most the {size} parameters, got {k}")
  basis, alpha, beta, restarts = _lanczos_jit(matvec, params, block,
                                              key if v0 is None else v0,
                                              jax.random.fold_in(key, 7), k)
  values, vectors = np.linalg.eigh(_tridiagonal(alpha, beta))
  return LanczosResult(alpha, beta, basis, values, vectors, restarts)


def _tridiagonal(alpha: Array, beta: Array) -> np.ndarray:
  alpha, beta = np.asarray(alpha, float), np.asarray(beta, float)
  return np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)


class Eigenpairs(NamedTuple):
  """``values`` (the selected Ritz values), ``vectors`` (their Ritz vectors: a pytree,
  every leaf with a leading axis of len(values)), ``residuals`` ‖Av − λv‖ (each costs one
  more product with A), and the :class:`LanczosResult`."""
  values: np.ndarray
  vectors: Tree
  residuals: np.ndarray
  lanczos: LanczosResult


def _extreme(loss_fn, params, k, key, order, mask, top: bool) -> Eigenpairs:
  _checks.prng_key("key", key)
  k = _checks.positive_int("k", k)
  block = _block(mask, params)
  op = _restricted(_matvec(loss_fn), params, block)
  size = _size(params, block)
  order = min(size, max(30, 3 * k)) if order is None else _checks.positive_int(
      "order", order)
  if k > order:
    raise ValueError(f"k must be at most order={order}, got {k}")
  result = lanczos(loss_fn, params, order, key=key, mask=mask)
  pick = np.argsort(result.ritz_values)[::-1][:k] if top else np.argsort(
      result.ritz_values)[:k]
  coef = jnp.asarray(result.ritz_vectors[:, pick], _dtype(params))
  vectors = jax.tree.map(lambda q: jnp.tensordot(coef.T, q, axes=1), result.basis)
  values = result.ritz_values[pick]
  residuals = []
  for i in range(k):
    u = jax.tree.map(lambda x, i=i: x[i], vectors)
    r = optax.tree.add_scale(op(u), -float(values[i]), u)
    residuals.append(float(optax.tree.norm(r)))
  return Eigenpairs(values, vectors, np.asarray(residuals), result)


def top_eigenvalues(loss_fn: Callable | Curvature, params: Params, k: int = 5, *,
                    key: PRNGKey, order: int | None = None, mask: Any = None) -> Eigenpairs:
  """The k largest eigenvalues (descending) from ``order`` Lanczos steps (default
  max(30, 3k), at most P), with Ritz vectors and residuals ‖Av − λv‖."""
  return _extreme(loss_fn, params, k, key, order, mask, top=True)


def bottom_eigenvalues(loss_fn: Callable | Curvature, params: Params, k: int = 5, *,
                       key: PRNGKey, order: int | None = None,
                       mask: Any = None) -> Eigenpairs:
  """The k smallest eigenvalues (ascending; negative ones first) from ``order`` Lanczos
  steps, with Ritz vectors and residuals. The bottom of a network's spectrum is a dense
  cluster near 0, where Lanczos converges slowly: check the residuals."""
  return _extreme(loss_fn, params, k, key, order, mask, top=False)


# ---------------------------------------------------------------------------------------
# trace and density
# ---------------------------------------------------------------------------------------

class TraceEstimate(NamedTuple):
  """``trace`` ≈ mean of zᵀAz; ``stderr`` its standard error (sample std / √probes);
  ``samples`` the probes' zᵀAz."""
  trace: float
  stderr: float
  samples: np.ndarray


def hutchinson_trace(loss_fn: Callable | Curvature, params: Params, *, key: PRNGKey,
                     probes: int = 100, mask: Any = None) -> TraceEstimate:
  """Hutchinson's estimator: tr A = E[zᵀAz] for z with independent ±1 entries
  (Rademacher), whose variance 2 Σ_{i≠j} A²ᵢⱼ is the least among such probes. Runs the
  probes in ``lax.map``: one product with A each."""
  _checks.prng_key("key", key)
  probes = _checks.positive_int("probes", probes, 2)
  block = _block(mask, params)
  samples = np.asarray(_probe_quadratics(_matvec(loss_fn), params, block,
                                         jax.random.split(key, probes)), float)
  return TraceEstimate(float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(probes)),
                       samples)


@functools.partial(jax.jit, static_argnums=0)
def _probe_quadratics(matvec, params, block, keys):
  op = _restricted(matvec, params, block)

  def one(k):
    z = _random_tree(k, params, rademacher=True)
    if block is not None:
      z = optax.tree.mul(block, z)
    return optax.tree.vdot(z, op(z))
  return lax.map(one, keys)


class Density(NamedTuple):
  """``grid`` and ``density`` (integrating to 1 over the grid); ``nodes`` (probes,
  order) and ``weights`` (probes, order): each probe's Ritz values θ and weights τ
  (Σ τ = 1), the Gauss quadrature of the spectral measure; ``sigma`` the broadening;
  ``mean`` = the mean over probes of Σ τθ, the estimate of the mean eigenvalue tr(A)/P,
  and ``mean_stderr`` its standard error over the probes (NaN for one probe)."""
  grid: np.ndarray
  density: np.ndarray
  nodes: np.ndarray
  weights: np.ndarray
  sigma: float
  mean: float
  mean_stderr: float


def spectral_density(loss_fn: Callable | Curvature, params: Params, *, key: PRNGKey,
                     order: int = 30, probes: int = 10, points: int = 512,
                     sigma: float | None = None, mask: Any = None) -> Density:
  """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani et al. 2019).

  The spectral density φ(t) = (1/P) Σᵢ δ(t − λᵢ) is estimated from ``probes`` random
  unit vectors v: ``order`` Lanczos steps from v give T = S diag(θ) Sᵀ, and
  vᵀ g(A) v ≈ Σⱼ τⱼ g(θⱼ) with τⱼ = S₀ⱼ² (Gauss quadrature, exact for polynomials of
  degree < 2·order). Averaging over probes and broadening each node with a Gaussian of
  width σ (default 1 % of the spectrum's range) gives
  φ(t) ≈ (1/probes) Σ_v Σⱼ τⱼ N(t; θⱼ, σ²), on ``points`` grid points spanning the nodes
  ± 5σ. Its mean Σ τθ estimates tr(A)/P.
  """
  _checks.prng_key("key", key)
  probes = _checks.positive_int("probes", probes)
  points = _checks.positive_int("points", points, 2)
  matvec, block = _matvec(loss_fn), _block(mask, params)
  size = _size(params, block)
  order = _checks.positive_int("order", order)
  if order > size:
    raise ValueError(f"order must be at most the {size} parameters, got {order}")
  nodes, weights = [], []
  for i, k in enumerate(jax.random.split(key, probes)):
    # the Rademacher probe is drawn inside the compiled loop (no program of its own)
    _, alpha, beta, _ = _lanczos_jit(matvec, params, block, k, jax.random.fold_in(k, i),
                                     order, True)
    theta, s = np.linalg.eigh(_tridiagonal(alpha, beta))
    nodes.append(theta)
    weights.append(s[0] ** 2)
  nodes, weights = np.array(nodes), np.array(weights)
  span = float(nodes.max() - nodes.min()) or max(abs(float(nodes.max())), 1.0)
  sigma = 0.01 * span if sigma is None else float(_checks.in_range("sigma", sigma, 0.0,
                                                                    low_open=True))
  grid = np.linspace(nodes.min() - 5 * sigma, nodes.max() + 5 * sigma, points)
  gauss = np.exp(-0.5 * ((grid[:, None] - nodes.reshape(-1)[None, :]) / sigma) ** 2)
  density = gauss @ weights.reshape(-1) / (probes * sigma * math.sqrt(2 * math.pi))
  means = (nodes * weights).sum(axis=1)
  stderr = float(means.std(ddof=1) / math.sqrt(probes)) if probes > 1 else math.nan
  return Density(grid, density, nodes, weights, sigma, float(means.mean()), stderr)


# ---------------------------------------------------------------------------------------
# sharpness during training
# ---------------------------------------------------------------------------------------

def sharpness_hook(objective: Callable, batch: Any, *, every: int = 10, iters: int = 20,
                   tol: float = 1e-4, key: PRNGKey | None = None, lr: float | None = None,
                   mu: float = 0.0, nesterov: bool = False):
  """A :class:`jaxnn.train.Hook` recording the sharpness λ of the training loss on
  ``batch`` every ``every`` steps (Cohen et al. 2021, edge of stability).

  λ is the Rayleigh quotient of up to ``iters`` power iterations (stopping at relative
  change ``tol``), warm-started from the previous call's eigenvector, carried in the
  hook's state: after the first call a few products with H suffice while λmax drifts.
  Power iteration finds the eigenvalue of largest |λ|, which is λmax whenever λmax >
  |λmin| (the usual case in training; a record with ``sharpness`` < 0 says it was not).
  The record holds ``sharpness`` and ``iterations``, and with ``lr`` the threshold it is
  compared with: 2/η, 2(1 + μ)/η for heavy-ball momentum μ, 2(1 + μ)/((1 + 2μ)η) for
  Nesterov (:func:`jaxnn.hessian.max_stable_lr` read as a bound on λ).
  """
  every = _checks.positive_int("every", every)
  iters = _checks.positive_int("iters", iters)
  key = jax.random.key(0) if key is None else key
  threshold = None if lr is None else float(hessian.max_stable_lr(float(lr), mu, nesterov))

  def init(params):
    return _random_unit(key, params, None)

  def update(v, params, state, step):
    op = functools.partial(hvp, lambda p: objective(p, state, batch,
                                                    jax.random.fold_in(key, step))[0], params)
    result = _power(op, v, None, tol, iters)
    record = {"sharpness": result.eigenvalue, "iterations": result.iterations}
    if threshold is not None:
      record["threshold"] = jnp.asarray(threshold, _dtype(params))
    return result.eigenvector, record

  return Hook(init, update, every)
