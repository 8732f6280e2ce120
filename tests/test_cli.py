"""The `jaxnn train` command and the plotting module."""

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from jaxnn import cli, plotting


def test_train_writes_results_and_figure(tmp_path, capsys):
  out = tmp_path / "run"
  assert cli.main(["train", "--dataset", "moons", "--n", "200", "--hidden", "8",
                   "--optimizer", "adam", "--lr", "0.02", "--schedule", "step",
                   "--schedule-args", "factor=0.5,every=20", "--epochs", "8",
                   "--batch-size", "32", "--l2", "0.1", "--dropout", "0.1",
                   "--out", str(out), "--no-progress"]) == 0
  results = json.loads((out / "results.json").read_text())
  assert results["sizes"] == [2, 8, 2]
  assert results["steps"] == 8 * (160 // 32)
  assert results["test_accuracy"] > 0.75 and results["diverged"] is False
  assert results["settings"]["schedule_args"] == {"factor": 0.5, "every": 20}
  assert (out / "training.png").stat().st_size > 10_000
  assert "test_accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--dropout", "1.5"], "dropout must satisfy 0.0 <= dropout < 1.0, got 1.5"),
    (["--init", "kaiming"], "argument --init: invalid choice: 'kaiming'"),
    (["--hidden", "3,x"], "argument --hidden: expected comma-separated ints"),
    (["--lr", "-1"], "eta must satisfy 0.0 <= eta, got -1.0"),
    (["--schedule", "step", "--schedule-args", "factor=0.5"],
     "schedule 'step' takes ['eta0', 'factor', 'every']; the call is missing ['every']"),
    (["--batch-size", "-3"], "--batch-size must be >= 0"),
])
def test_bad_options_give_one_line(tmp_path, capsys, argv, message):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["train", "--dataset", "moons", "--n", "40", "--epochs", "1",
              "--out", str(tmp_path), *argv])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("jaxnn train: error: ") and message in err


def test_help_explains_every_option(capsys):
  with pytest.raises(SystemExit):
    cli.main(["train", "--help"])
  text = capsys.readouterr().out
  for option in ["--dataset", "--hidden", "--init", "--optimizer", "--schedule",
                 "--schedule-args", "--weight-decay", "--l1", "--l2", "--batch-norm",
                 "--layer-norm", "--dropout", "--out"]:
    assert option in text


def test_plotting_takes_arrays():
  history = {"loss": np.linspace(2, 0.1, 50), "grad_norm": np.linspace(1, 0.1, 50),
             "lr": np.full(50, 0.1), "eval": {"step": np.array([0, 25, 50]),
                                               "loss": np.array([2.0, 0.5, 0.2])}}
  fig = plotting.training_curves(history, title="t")
  assert isinstance(fig, Figure) and len(fig.axes) == 3
  assert fig.axes[0].get_yscale() == "log"
  fig = plotting.layer_statistics(np.arange(4), {"std": np.ones((4, 3)),
                                                  "saturated": np.zeros((4, 3))})
  assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
