"""The project's promises: README quick start, CI script, public names, the main job."""

import json
import os
import re
import stat
import subprocess
import sys
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
    assert " -m pytest -q" in commands[1]
    extract = (ROOT / ".ci/run").read_text().split("cmd=$(", 1)[1].split(")\n", 1)[0]
    found = subprocess.run(
        ["bash", "-c", extract], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == commands[1]


def test_readme_examples_run():
    namespace = {}
    for block in re.findall(r"```python\n(.*?)```", README, re.S):
        exec(compile(block, "README.md", "exec"), namespace)
    result, spec, top = namespace["result"], namespace["spec"], namespace["top"]
    assert not bool(result.diverged) and float(result.history["loss"][-1]) < 0.1
    assert len(spec.eigenvalues) == 354
    assert abs(top.values[0] - spec.lambda_max) <= 1e-3 * spec.lambda_max


DOCS = sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_docs_examples_run(page):
    """Every page's Python blocks run, in order, in one namespace per page."""
    namespace = {"__name__": f"docs_{page.stem}"}
    for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
        exec(compile(block, str(page.relative_to(ROOT)), "exec"), namespace)


def test_import_jaxnn_does_not_import_matplotlib():
    code = "import sys, jaxnn; assert 'matplotlib' not in sys.modules; jaxnn.plotting"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_public_names():
    for name in jaxnn.__all__:
        assert hasattr(jaxnn, name), name
    for module, names in {
        jaxnn.initializers: ["get", "zeros", "small", "normal", "lecun", "xavier", "glorot", "he"],
        jaxnn.activations: ["get", "sigmoid", "tanh", "relu", "identity", "softmax"],
        jaxnn.losses: [
            "quadratic",
            "binary_cross_entropy",
            "softmax_cross_entropy",
            "l2_penalty",
            "l1_penalty",
            "accuracy",
        ],
        jaxnn.optimizers: ["get", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"],
        jaxnn.schedules: [
            "constant",
            "linear",
            "power_law",
            "exponential",
            "step",
            "cosine_restarts",
            "cyclic",
        ],
        jaxnn.train: ["fit", "objective", "make_step"],
        jaxnn.sweep: ["sweep", "grid", "lr_sweep", "lr_report", "log_range", "use_cpu_devices"],
        jaxnn.hessian: ["hessian_matrix", "spectrum", "check_rates", "max_stable_lr"],
        jaxnn.spectral: [
            "hvp",
            "power_iteration",
            "lanczos",
            "top_eigenvalues",
            "bottom_eigenvalues",
            "hutchinson_trace",
            "spectral_density",
            "lambda_max_min",
            "gauss_newton",
            "sharpness_hook",
        ],
        jaxnn.xla: [
            "knows_flag",
            "compile_light_flags",
            "default_cache_dir",
            "use_compilation_cache",
            "compile_seconds",
        ],
    }.items():
        for name in names:
            assert callable(getattr(module, name)), f"{module.__name__}.{name}"
    assert jaxnn.Model._fields == ("init", "apply")
    assert jaxnn.Hook._fields == ("init", "update", "every", "with_opt_state")
    assert jaxnn.FitResult._fields == (
        "params",
        "state",
        "opt_state",
        "history",
        "diverged",
        "diverged_at",
    )


# Verdicts that are deterministic by construction (closed forms, exact quadratics, one
# computation): they must come out the same on every machine. The notes' "fastest at
# 1/λmax" is refuted by construction (the erratum).
DETERMINISTIC = {("convergence_rates", "fastest_at_1_over_lambda_max"): False}


def _run_main_job(out, *args, names=()):
    """``python -m experiments`` as a user runs it (it sets its own XLA flags)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [sys.executable, "-m", "experiments", *names, "--out", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "results.json").read_text()), proc.stdout


def test_main_job_quick(tmp_path):
    from experiments.report import OWN
    from experiments.runner import EXPERIMENTS

    out = tmp_path / "report"
    results, stdout = _run_main_job(out, "--quick")
    experiments = results["experiments"]
    assert list(experiments) == list(EXPERIMENTS)
    provenance = results["provenance"]
    assert provenance["pass"] == "quick (--quick)" and provenance["total seconds"] > 0
    assert provenance["compile seconds"] > 0
    assert "xla_cpu_use_fusion_emitters=false" in provenance["XLA_FLAGS"]
    assert {"jax", "jaxlib", "numpy"} <= set(provenance["versions"])
    page = (out / "index.html").read_text()
    assert provenance["compilation cache"] == os.environ.get("JAX_COMPILATION_CACHE_DIR", "off")
    for key in ("git commit", "XLA_FLAGS", "CPU", "backend", "compilation cache"):
        assert f"<td>{key}</td>" in page
    claims = [(name, key, c) for name, e in experiments.items() for key, c in e["claims"].items()]
    confirmed = sum(c["holds"] for _, _, c in claims)
    assert (results["confirmed"], results["claims"]) == (confirmed, len(claims))
    assert results["refuted"] == [f"{n}.{k}" for n, k, c in claims if not c["holds"]]
    assert f"<b>{confirmed} of {len(claims)} claims confirmed.</b>" in page
    assert f"{confirmed} of {len(claims)} claims confirmed" in stdout
    for name, key, c in claims:
        where = f"{name}.{key}"
        assert set(c) == {"statement", "source", "rule", "holds", "evidence", "seeds"}, where
        assert isinstance(c["holds"], bool) and c["evidence"] and c["rule"], where
        assert c["source"] == OWN or (c["source"].startswith("notes 00") and "“" in c["source"]), (
            where
        )
        # a claim rests on 5 seeds or more, or is one deterministic computation
        assert c["seeds"] == 1 or c["seeds"] >= 5, where
        assert c["holds"] or "Not confirmed" in experiments[name]["summary"], where
        assert f"id='{name}-{key}'" in page, where  # the refuted list links to every claim
        if c["seeds"] == 1:
            assert c["holds"] == DETERMINISTIC.get((name, key), True), (where, c["evidence"])
    for name, e in experiments.items():
        # the run time, and the part of it JAX spent tracing, lowering and compiling
        assert 0 < e["compile seconds"] <= e["seconds"], name
        folder = out / name
        assert json.loads((folder / "results.json").read_text())["claims"] == e["claims"]
        assert e["figures"], name
        for figure in e["figures"]:
            assert (folder / figure).stat().st_size > 10_000
            assert f"<a href='{name}/{figure}'><img src='{name}/{figure}'" in page
    for path in (out / "results.json", out / "index.html", out / "symmetry/results.json"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path  # readable by others
    # the README's claims table is made from such a file
    from experiments import table

    text = table.markdown(results)
    assert text.count("\n| `") == len(EXPERIMENTS) and f"{confirmed} of" in text

    # the verdicts do not depend on XLA's flags: the experiments whose numbers move most
    # with rounding (spreads at rounding level, loss bumps counted step by step,
    # catapults, a chaotic run far past the threshold) again at XLA's defaults
    names = ["symmetry", "learning_rate"]
    plain, _ = _run_main_job(tmp_path / "defaults", "--quick", "--xla-defaults", names=names)
    assert plain["provenance"]["XLA_FLAGS"] == "none (XLA's defaults)"
    verdicts = lambda r: {
        (n, k): c["holds"] for n, e in r["experiments"].items() if n in names
        for k, c in e["claims"].items()
    }  # fmt: skip
    assert verdicts(plain) == verdicts(results) and len(verdicts(plain)) >= 4


def test_claims_table_replaces_the_readme_block(tmp_path):
    from experiments import table

    results = {
        "provenance": {
            "pass": "full",
            "commit": "0123456789abcdef",
            "date": "2026-12-03",
            "total seconds": 300.0,
            "cpu": "a CPU",
            "versions": {"jax": "0"},
        },
        "confirmed": 1,
        "claims": 2,
        "experiments": {
            "momentum": {
                "title": "a | title",
                "claims": {
                    "a": {"holds": True, "statement": "kept"},
                    "b": {"holds": False, "statement": "refuted | here"},
                },
            }
        },
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{table.START}\nold\n{table.END}\nafter\n")
    assert table.main([str(path), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert "1 of 2 claims confirmed in the full run of commit 0123456789ab" in text
    assert "| `momentum` | a | title | 1 of 2 | refuted / here |" in text
    assert README.count(table.START) == 1  # the project's README has the block
    with pytest.raises(SystemExit):
        table.main([str(tmp_path / "missing.json")])


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
    assert list(gathered["experiments"]) == names  # the report keeps the order asked for
    assert gathered["provenance"]["experiments at once"] == 2
    assert "slow_learning: 2 of 2 claims confirmed" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["slow_learning", "--jobs", "0", "--out", str(tmp_path)])


def test_every_module_lists_its_public_names():
    """Every module of jaxnn has __all__, and every name it lists exists."""
    import importlib
    import pkgutil

    names = ["jaxnn"] + [
        m.name
        for m in pkgutil.walk_packages(jaxnn.__path__, "jaxnn.")
        if m.name != "jaxnn.cli.__main__"
    ]
    for name in names:
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), name
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, (name, missing)
