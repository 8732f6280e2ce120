"""Training: a pure step, objectives, and ``fit``, which runs every step in one compiled scan.

* :func:`objective` turns a model and a loss into ``objective(params, state, batch, key)
  -> (loss, new_state)``, the one function the rest of jaxnn differentiates.
* :func:`make_step` composes it with an optax optimiser into a pure step.
* :func:`fit` runs epochs × minibatches (reshuffled every epoch from a key) inside
  ``lax.scan`` under ``jit``: no Python in the hot loop. It records the loss, the gradient
  norm ‖∇E‖ and the learning rate η_τ of every step, evaluates on held-out data every k
  steps, runs :class:`Hook`s, guards against divergence, shows progress and checkpoints.
* :func:`loss_spikes` reads the spikes of the loss out of a history, and whether the
  sharpness fell across each (a catapult).

Minibatch SGD (notes 003): at step τ, with B_τ the τ-th minibatch of the current epoch's
permutation, w ← w + Δw(∇ (1/|B_τ|) Σ_{x∈B_τ} E_x(w)); full-batch gradient descent is the
case batch_size = n.

**Divergence guard.** A step τ is *divergent* when its loss or gradient norm is not finite,
when its loss exceeds ``blowup`` × the first step's loss (default 10⁴: a step size just
above 2/λmax grows the error by |1 − ηλmax| per step, geometrically but finitely for
hundreds of steps), or when the update would make a parameter non-finite. From that step
on the parameters, model state and optimiser state are frozen; the result reports
``diverged=True`` and ``diverged_at=τ``, and later history entries are NaN.
"""

from jaxnn.train._fit import Execution, FitResult, History, fit
from jaxnn.train._hooks import (
    Hook,
    HookHistory,
    layer_grad_norms,
    layer_grad_norms_hook,
    layer_stats_hook,
)
from jaxnn.train._instability import Spike, loss_spikes
from jaxnn.train._objective import Objective, StepInfo, as_objective, make_step, objective

__all__ = [
    "Execution",
    "FitResult",
    "History",
    "Hook",
    "HookHistory",
    "Objective",
    "Spike",
    "StepInfo",
    "as_objective",
    "fit",
    "layer_grad_norms",
    "layer_grad_norms_hook",
    "layer_stats_hook",
    "loss_spikes",
    "make_step",
    "objective",
]
