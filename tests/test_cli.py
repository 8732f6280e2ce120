"""The `jaxnn train`, `jaxnn sweep` and `jaxnn hessian` commands and the plotting module."""

import json

import jax
import numpy as np
import pytest
from matplotlib.figure import Figure

import jaxnn
from jaxnn import checkpoint, cli, plotting


def test_train_writes_results_and_figure(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "--dataset",
                "moons",
                "--n",
                "200",
                "--hidden",
                "8",
                "--optimizer",
                "adam",
                "--lr",
                "0.02",
                "--schedule",
                "step",
                "--schedule-args",
                "factor=0.5,every=20",
                "--epochs",
                "8",
                "--batch-size",
                "32",
                "--l2",
                "0.1",
                "--dropout",
                "0.1",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["sizes"] == [2, 8, 2]
    assert results["steps"] == 8 * (160 // 32)
    assert results["test_accuracy"] > 0.75 and results["diverged"] is False
    assert results["settings"]["schedule_args"] == {"factor": 0.5, "every": 20}
    assert (out / "training.png").stat().st_size > 10_000
    assert "test_accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--dropout", "1.5"], "dropout must satisfy 0.0 <= dropout < 1.0, got 1.5"),
        (["--init", "kaiming"], "argument --init: invalid choice: 'kaiming'"),
        (["--hidden", "3,x"], "argument --hidden: expected comma-separated ints"),
        (["--lr", "-1"], "lr must satisfy 0.0 <= lr, got -1.0"),
        (
            ["--schedule", "step", "--schedule-args", "factor=0.5"],
            "schedule 'step' takes ['lr0', 'factor', 'every']; the call is missing ['every']",
        ),
        (["--batch-size", "-3"], "--batch-size must be >= 0"),
    ],
)
def test_bad_options_give_one_line(tmp_path, capsys, argv, message):
    _assert_one_line_error(
        capsys,
        [
            "train",
            "--dataset",
            "moons",
            "--n",
            "40",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
            *argv,
        ],
        message,
    )


def _assert_one_line_error(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"jaxnn {argv[0]}: error: ")
    assert message in err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for option in [
        "--dataset",
        "--hidden",
        "--init",
        "--optimizer",
        "--schedule",
        "--schedule-args",
        "--weight-decay",
        "--l1",
        "--l2",
        "--batch-norm",
        "--layer-norm",
        "--dropout",
        "--out",
    ]:
        assert option in text


def test_sweep_command_writes_results_and_figure(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert (
        cli.main(
            [
                "sweep",
                "--dataset",
                "moons",
                "--n",
                "120",
                "--hidden",
                "6",
                "--lr",
                "1e-2:30:6",
                "--momentum",
                "0,0.5",
                "--seeds",
                "2",
                "--steps",
                "40",
                "--devices",
                str(len(jax.devices("cpu"))),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["points"] == 24 and len(results["runs"]) == 24
    assert results["grid"]["lr"] == pytest.approx(np.geomspace(1e-2, 30, 6).tolist())
    assert results["grid"]["mu"] == [0.0, 0.5] and results["grid"]["seed"] == [0, 1]
    assert results["lambda_max"] > 0 and "exact Hessian" in results["lambda_max_source"]
    rows = results["report"]
    assert [r["group"] for r in rows] == [{"mu": 0.0}, {"mu": 0.5}]
    assert rows[1]["threshold"] == pytest.approx(3.0 / results["lambda_max"])
    assert results["window"] == 40  # the whole run by default
    for row in rows:  # a run that never rose above its start ended below it: stable ≤ converging
        assert row["largest_stable_lr"] <= row["largest_converging_lr"] or np.isnan(
            row["largest_stable_lr"]
        )
    assert (out / "sweep.png").stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "stable up to η" in text and "converges up to" in text and "24 runs" in text


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["--lr", "0:1:8"],
            "argument --lr: expected LOW:HIGH:NUM or comma-separated numbers, "
            "got '0:1:8' (low must satisfy 0.0 < low, got 0.0)",
        ),
        (["--lr", "a,b"], "argument --lr: expected LOW:HIGH:NUM or comma-separated numbers"),
        (["--lr", "0.1,-0.1"], "grid axis 'lr': lr must satisfy 0.0 < lr, got -0.1"),
        (["--dropout", "0,1"], "grid axis 'dropout': dropout must satisfy 0.0 <= dropout < 1.0"),
        (["--momentum", "0.5", "--optimizer", "adam"], "--mu goes with --optimizer sgd"),
        (["--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["--lambda-max", "big"], "--lambda-max must be a number, 'auto' or 'none'"),
        (["--devices", "0"], "--devices must be >= 1, got 0"),
        (["--window", "3"], "--window must be between 1 and --steps (2), got 3"),
    ],
)
def test_sweep_bad_options_give_one_line(tmp_path, capsys, argv, message):
    _assert_one_line_error(
        capsys,
        ["sweep", "--dataset", "moons", "--n", "40", "--steps", "2", "--out", str(tmp_path), *argv],
        message,
    )


def test_hessian_command_reports_spectrum_and_rates(tmp_path, capsys):
    out = tmp_path / "h"
    argv = [
        "hessian",
        "--dataset",
        "moons",
        "--n",
        "60",
        "--hidden",
        "4",
        "--steps",
        "1000",
        "--check-steps",
        "20",
        "--lr",
        "x0.95",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "minimum" and results["dtype"] == "float64"
    assert results["parameters"] == 2 * 4 + 4 + 4 * 2 + 2
    assert results["grad_norm"] < 1e-10
    lam = np.array(results["rate_check"]["eigenvalues"])
    assert results["lambda_max"] == lam[-1] and results["lambda_min"] == lam[0] > 0
    assert results["condition_number"] == pytest.approx(lam[-1] / lam[0])
    check = results["rate_check"]
    assert check["lr"] == pytest.approx(0.95 * 2 / lam[-1])
    assert check["max_gap"] < 1e-3 and check["diverging"] == 0
    for name in ("spectrum.png", "rates.png", "directions.png"):
        assert (out / name).stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "strict minimum" in text and "λmax" in text and "rate check at η" in text
    # the minimum found is written, and loading it needs no more Adam steps
    again = tmp_path / "again"
    assert (
        cli.main(
            [
                *argv[:-1],
                str(again),
                "--params",
                str(out / "minimum.ckpt"),
                "--steps",
                "0",
                "--lr",
                "top",
            ]
        )
        == 0
    )
    reloaded = json.loads((again / "results.json").read_text())
    assert reloaded["loss"] == pytest.approx(results["loss"], rel=1e-12)
    top = reloaded["rate_check"]["observed"][-1]  # rate 1 − ηλmax = 0 at η = 1/λmax
    assert top is None or abs(top) < 1e-3


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--lr", "fast"], "--lr must be 'optimal', 'top', 'xK' or a number, got 'fast'"),
        (["--l2", "-1"], "--l2 must be >= 0, got -1.0"),
        (["--steps", "-2"], "--steps must be >= 0, got -2"),
    ],
)
def test_hessian_bad_options_give_one_line(tmp_path, capsys, argv, message):
    _assert_one_line_error(
        capsys,
        ["hessian", "--n", "40", "--hidden", "3", "--steps", "10", "--out", str(tmp_path), *argv],
        message,
    )


def test_hessian_refuses_params_of_another_model(tmp_path, capsys):
    checkpoint.save(tmp_path / "p.ckpt", jaxnn.init_mlp(jax.random.key(0), [2, 3, 2]))
    _assert_one_line_error(
        capsys,
        [
            "hessian",
            "--n",
            "40",
            "--hidden",
            "5",
            "--params",
            str(tmp_path / "p.ckpt"),
            "--out",
            str(tmp_path),
        ],
        "",
    )


def test_decimal_log_ticks_label_a_short_log_axis_plainly():

    fig = Figure()
    ax = fig.subplots()
    ax.plot([1, 2, 3], [0.9, 2.0, 4.5])
    ax.set_yscale("log")
    plotting.decimal_log_ticks(ax)
    fig.canvas.draw()  # the Agg canvas of a bare Figure: labels are formatted on draw
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
    assert "2" in labels and "4" in labels and not any("10" in t for t in labels)


def test_train_resumes_bit_for_bit_after_kill(tmp_path):
    """`jaxnn train --checkpoint` killed with SIGKILL mid-run, then `--resume`d, ends where
    the uninterrupted run ends: the same losses and the same params, bit for bit."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def argv(out, ckpt):
        return [
            "train",
            "--dataset",
            "moons",
            "--hidden",
            "16",
            "--epochs",
            "800",
            "--batch-size",
            "16",
            "--checkpoint",
            str(ckpt),
            "--checkpoint-every",
            "500",
            "--out",
            str(out),
            "--no-progress",
        ]

    assert cli.main(argv(tmp_path / "whole", tmp_path / "whole.ckpt")) == 0
    killed = tmp_path / "killed.ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxnn.cli", *argv(tmp_path / "killed", killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not killed.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed.exists(), "the run wrote no checkpoint before it was killed"
    assert cli.main([*argv(tmp_path / "killed", killed), "--resume"]) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "results.json").read_text())
    for name in ("steps", "final_train_loss", "test_loss", "test_accuracy"):
        assert resumed[name] == whole[name], name  # bit for bit: the same computation
    like = checkpoint.read_header(tmp_path / "whole.ckpt")
    assert like["format"] == checkpoint.FORMAT
    assert oct((tmp_path / "killed" / "results.json").stat().st_mode & 0o777) == oct(
        0o666 & ~_umask()
    )


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
