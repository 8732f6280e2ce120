"""jaxnn.plotting: figures drawn from arrays."""

import numpy as np
from matplotlib.figure import Figure

from jaxnn import plotting


def test_plotting_takes_arrays():
    history = {
        "loss": np.linspace(2, 0.1, 50),
        "grad_norm": np.linspace(1, 0.1, 50),
        "lr": np.full(50, 0.1),
        "eval": {"step": np.array([0, 25, 50]), "loss": np.array([2.0, 0.5, 0.2])},
    }
    fig = plotting.training_curves(history, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert fig.axes[0].get_yscale() == "log"
    fig = plotting.layer_statistics(
        np.arange(4), {"std": np.ones((4, 3)), "saturated": np.zeros((4, 3))}
    )
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    lam = np.array([-0.5, 1e-9, 0.1, 1.0, 10.0])
    fig = plotting.eigenvalue_histogram(lam, zero_tol=1e-6, marks={"λmax": 10.0})
    assert fig.axes[0].get_xscale() == "symlog" and len(fig.axes[0].lines) == 1
    pred = 1 - 0.1 * lam
    fig = plotting.rate_check(lam, pred, np.where(lam > 1, np.nan, pred + 1e-9))
    assert len(fig.axes) == 2
    alpha = 1e-3 * pred[None, :] ** np.arange(10)[:, None]
    fig = plotting.direction_decay(alpha, lam, pred, directions=[0, 4])
    assert len(fig.axes[0].lines) == 4  # observed and predicted for each direction


def test_lr_sweep_figure():
    fig = plotting.lr_sweep_curves(
        [0.1, 0.3, 1.0],
        [[[2.0], [0.5], [np.nan]], [[1.0], [0.1], [5.0]]],
        [[[False], [False], [True]], [[False], [False], [True]]],
        labels=["μ = 0", "μ = 0.9"],
        thresholds=[0.5, 0.9],
    )
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "learning rate" in ax.get_xlabel()
    assert any("failed run" in t.get_text() for t in ax.get_legend().get_texts())
