"""Matrix-free curvature: the Hessian (or Gauss-Newton) spectrum from matrix-vector products.

The exact Hessian (:mod:`jaxnn.hessian`) needs P² numbers; these tools need a few vectors
of P, so they reach networks of 10⁶–10⁷ parameters. Every vector is a pytree shaped like
the params (never a flattened copy), and every loop runs in ``lax`` control flow.

A *curvature* is a symmetric linear map v ↦ Av on params-shaped pytrees:

* :func:`hessian_curvature` — A = ∇²E(w), by :func:`hvp` (forward-over-reverse: the
  ``jvp`` of ``grad``, about the cost of two gradients); optionally E = the mean of a
  per-batch loss over a dataset, the products summed batch by batch.
* :func:`fisher` — the model's Fisher (1/n) Σᵢ E_ŷ[∇log p(ŷ|xᵢ) ∇log p(ŷ|xᵢ)ᵀ], exact or
  Monte-Carlo; :func:`empirical_fisher` — (1/n) Σᵢ ∇ℓᵢ∇ℓᵢᵀ with the data's labels;
  :func:`preconditioned` — D^{-1/2} A D^{-1/2}, the effective curvature of an adaptive
  optimiser with diagonal D.
* :func:`gauss_newton` — A = Jᵀ H_ℓ J, the generalised Gauss-Newton matrix of a loss
  ℓ(f(w)) (J the Jacobian of the model's outputs f, H_ℓ the Hessian of the loss in the
  outputs): positive semi-definite when ℓ is convex in f.

Every tool takes ``loss_fn`` — a function ``loss_fn(params) -> scalar`` (its Hessian) or
a :class:`Curvature` — and ``params``. ``mask`` (a pytree of bools shaped like params, or
a function ``path -> bool`` of the :func:`jax.tree_util.keystr` of each leaf) restricts
any of them to a block: A_BB, e.g. one layer's λmax or trace. Random probes and starting
vectors come from an explicit ``key``. Every matrix product inside, the curvature's and
the solver's own, runs at full float32 precision on GPUs and TPUs too
(:func:`jaxnn.curvature.full_precision`), so a float32 residual tolerance such as
``tol=1e-5`` can be met there.

* :func:`power_iteration` — the eigenvalue of largest |λ|; :func:`lambda_max_min` gives
  λmax and λmin separately, by shifting with a bound on |λ|.
* :func:`lanczos` — k steps with full reorthogonalisation (restarting on breakdown, so
  repeated eigenvalues are found with their multiplicity); :func:`top_eigenvalues` and
  :func:`bottom_eigenvalues` on its Ritz values.
* :func:`hutchinson_trace` — tr A ≈ mean of zᵀAz over Rademacher z, with its standard
  error; :func:`hutchpp_trace` — Hutch++, far less error at equal products when a few
  eigenvalues dominate; :func:`hessian_diagonal` — E[z ⊙ Az], entry by entry with its
  standard error; :func:`spectral_density` — stochastic Lanczos quadrature.
* :func:`sharpness_hook` — a :class:`jaxnn.train.Hook` recording λmax during training
  (edge of stability), warm-started from the previous eigenvector, or the effective
  sharpness of an adaptive optimiser; :func:`eigen_tracking_hook` — the top k (and every
  eigenvalue above c·2/η) by a warm-started block method; :func:`alignment_hook` — the
  gradient's and the update's overlap with the top-k eigenspace.
* :func:`subspace_overlap` — ‖Π_U v‖²/‖v‖², how much of a direction (a gradient, an
  update) lies in the span of some vectors (the top eigenvectors);
  :func:`directional_curvature` — vᵀAv/vᵀv, the curvature along a direction;
  :func:`principal_angles` — how far apart two subspaces are (the top eigenvectors of the
  Hessian and of the Fisher).


The operators live in :mod:`jaxnn.curvature` and are re-exported here; the solvers are
split by family (power iteration and Lanczos; trace and density estimators; the sharpness
hook).

References:
  Lanczos, "An iteration method for the solution of the eigenvalue problem of linear
  differential and integral operators" (1950), https://doi.org/10.6028/jres.045.026.
  Hutchinson, "A stochastic estimator of the trace of the influence matrix" (1990),
  https://doi.org/10.1080/03610919008812866.
  Ubaru, Chen and Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature"
  (2017), https://doi.org/10.1137/16M1104974.
  Ghorbani, Krishnan and Xiao, "An investigation into neural net optimization via Hessian
  eigenvalue density" (2019), https://proceedings.mlr.press/v97/ghorbani19b.html.
  Cohen et al., "Gradient descent on neural networks typically occurs at the edge of
  stability" (2021), https://openreview.net/forum?id=jh-rTtvkGeM.
"""

from jaxnn.curvature import (
    LIKELIHOODS,
    Curvature,
    empirical_fisher,
    fisher,
    gauss_newton,
    hessian_curvature,
    hvp,
    objective_loss,
    preconditioned,
)
from jaxnn.spectral._alignment import directional_curvature, principal_angles, subspace_overlap
from jaxnn.spectral._eigen import (
    Eigenpairs,
    Extremes,
    LanczosResult,
    PowerResult,
    bottom_eigenvalues,
    lambda_max_min,
    lanczos,
    power_iteration,
    top_eigenvalues,
)
from jaxnn.spectral._estimators import (
    Density,
    DiagonalEstimate,
    TraceEstimate,
    hessian_diagonal,
    hutchinson_trace,
    hutchpp_trace,
    spectral_density,
)
from jaxnn.spectral._sharpness import sharpness_hook
from jaxnn.spectral._tracking import alignment_hook, eigen_tracking_hook

__all__ = [
    "LIKELIHOODS",
    "Curvature",
    "Density",
    "DiagonalEstimate",
    "Eigenpairs",
    "Extremes",
    "LanczosResult",
    "PowerResult",
    "TraceEstimate",
    "alignment_hook",
    "bottom_eigenvalues",
    "directional_curvature",
    "eigen_tracking_hook",
    "empirical_fisher",
    "fisher",
    "gauss_newton",
    "hessian_curvature",
    "hessian_diagonal",
    "hutchinson_trace",
    "hutchpp_trace",
    "hvp",
    "lambda_max_min",
    "lanczos",
    "objective_loss",
    "power_iteration",
    "preconditioned",
    "principal_angles",
    "sharpness_hook",
    "spectral_density",
    "subspace_overlap",
    "top_eigenvalues",
]
