"""The project's promises: README quick start, CI script, public names, the main job."""

import json
import re
import subprocess
from pathlib import Path

import pytest

import jaxnn

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
  quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
  commands = re.findall(r"```bash\n(.*?)\n```", quick, re.S)
  assert len(commands) == 2 and all("\n" not in c for c in commands)
  assert commands[0].endswith("python -m experiments")
  assert commands[1].endswith("python -m pytest -q")
  extract = (ROOT / ".ci/run").read_text().split("cmd=$(", 1)[1].split(")\n", 1)[0]
  found = subprocess.run(["bash", "-c", extract], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
  assert found == commands[1]


def test_readme_examples_run():
  namespace = {}
  for block in re.findall(r"```python\n(.*?)```", README, re.S):
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
  assert namespace["logits"].shape == (32, 10)
  assert float(namespace["result"].history["eval"]["accuracy"][-1]) > 0.9


def test_public_names():
  for name in jaxnn.__all__:
    assert hasattr(jaxnn, name), name
  for module, names in {
      jaxnn.initializers: ["get", "zeros", "small", "normal", "lecun", "xavier", "glorot",
                           "he"],
      jaxnn.activations: ["get", "sigmoid", "tanh", "relu", "identity", "softmax"],
      jaxnn.losses: ["quadratic", "binary_cross_entropy", "softmax_cross_entropy",
                     "l2_penalty", "l1_penalty", "accuracy"],
      jaxnn.optimizers: ["get", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"],
      jaxnn.schedules: ["constant", "linear", "power_law", "exponential", "step",
                        "cosine_restarts", "cyclic"],
      jaxnn.train: ["fit", "objective", "make_step"],
      jaxnn.sweep: ["sweep", "grid", "lr_sweep", "lr_report", "log_range",
                    "use_cpu_devices"],
      jaxnn.hessian: ["hessian_matrix", "spectrum", "check_rates", "max_stable_lr"],
      jaxnn.spectral: ["hvp", "power_iteration", "lanczos", "top_eigenvalues",
                       "bottom_eigenvalues", "hutchinson_trace", "spectral_density",
                       "lambda_max_min", "gauss_newton", "sharpness_hook"],
      jaxnn.xla: ["knows_flag", "compile_light_flags"],
  }.items():
    for name in names:
      assert callable(getattr(module, name)), f"{module.__name__}.{name}"
  assert jaxnn.Model._fields == ("init", "apply")
  assert jaxnn.Hook._fields == ("init", "update", "every")
  assert jaxnn.FitResult._fields == ("params", "state", "opt_state", "history", "diverged",
                                     "diverged_at")


def test_main_job_quick(tmp_path, capsys):
  from experiments.__main__ import EXPERIMENTS, main

  assert main(["--quick", "--out", str(tmp_path)]) == 0
  results = json.loads((tmp_path / "results.json").read_text())
  assert set(results) == set(EXPERIMENTS)
  page = (tmp_path / "index.html").read_text()
  for name, result in results.items():
    folder = tmp_path / name
    assert json.loads((folder / "results.json").read_text())["claims"] == result["claims"]
    for figure in result["figures"]:
      assert (folder / figure).stat().st_size > 10_000
      assert f"{name}/{figure}" in page
    assert all(isinstance(v, bool) for v in result["claims"].values())
    for claim, holds in result["claims"].items():  # a claim the run refutes says why
      assert holds or "Not confirmed" in result["summary"], (name, claim)
  # the seeds' claims that --quick can support, computed from the run
  for name in ("init_distribution", "slow_learning", "symmetry", "convergence_rates",
               "weight_decay", "softmax_likelihood", "deep_activations", "momentum",
               "adaptive", "gradient_clipping", "hessian_spectrum"):
    assert all(results[name]["claims"].values()), results[name]["claim_details"]
  for name, claim in [("learning_rate", "larger_lr_spikes"),
                      ("learning_rate", "largest_diverges"),
                      ("normalization", "normalisation_allows_larger_lr"),
                      ("regularization", "proximal_l1_exact_zeros"),
                      ("regularization", "subgradient_l1_small_weights")]:
    assert results[name]["claims"][claim], results[name]["claim_details"][claim]
  assert "claims confirmed" in capsys.readouterr().out
  assert main(["--list"]) == 0
  assert "init_distribution" in capsys.readouterr().out
  with pytest.raises(SystemExit):
    main(["no_such_experiment", "--out", str(tmp_path)])


def test_parallel_jobs_give_the_same_results_as_one_process(tmp_path, capsys):
  from experiments.__main__ import main

  names = ["slow_learning", "init_distribution"]
  one, two = tmp_path / "one", tmp_path / "two"
  assert main([*names, "--quick", "--jobs", "1", "--out", str(one)]) == 0
  assert main([*names, "--quick", "--jobs", "2", "--out", str(two)]) == 0
  for name in names:  # spawned processes compute the very same numbers
    a, b = (json.loads((d / name / "results.json").read_text()) for d in (one, two))
    assert a == b
  gathered = json.loads((two / "results.json").read_text())
  assert list(gathered) == names  # the report keeps the order asked for
  assert "slow_learning: 2 of 2 claims confirmed" in capsys.readouterr().out
  with pytest.raises(SystemExit):
    main(["slow_learning", "--jobs", "0", "--out", str(tmp_path)])
