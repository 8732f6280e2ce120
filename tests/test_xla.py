"""jaxnn.xla: the compile-light XLA_FLAGS are added only where XLA knows them, never over
the user's own, and a process started with them computes what NumPy computes."""

import os
import subprocess
import sys

import pytest

from jaxnn import xla


def test_knows_flags_of_the_installed_xla():
    # both flags have been in XLA since before jaxnn's oldest supported jaxlib
    assert xla.knows_flag("xla_backend_optimization_level")
    assert xla.knows_flag("xla_force_host_platform_device_count")
    assert not xla.knows_flag("xla_jaxnn_no_such_flag")
    # a prefix of a real flag is not a flag
    assert not xla.knows_flag("xla_backend_optimization")


@pytest.mark.parametrize(
    "name, error",
    [
        ("", ValueError),
        ("--xla_foo", ValueError),
        ("xla_foo=1", ValueError),
        ("xla_a xla_b", ValueError),
        (3, TypeError),
    ],
)
def test_knows_flag_rejects_what_is_not_a_flag_name(name, error):
    with pytest.raises(error, match="name must be a flag name"):
        xla.knows_flag(name)


def test_adds_the_known_flags_after_the_users_own():
    fusion = xla.knows_flag("xla_cpu_use_fusion_emitters")
    got = xla.compile_light_flags("--xla_force_host_platform_device_count=2")
    assert got.split()[0] == "--xla_force_host_platform_device_count=2"
    assert ("--xla_cpu_use_fusion_emitters=false" in got.split()) == fusion
    assert "xla_backend_optimization_level" not in got
    both = xla.compile_light_flags(None, lowest_optimization=True)
    assert "--xla_backend_optimization_level=0" in both.split()
    assert len(both.split()) == 1 + fusion


def test_never_overrides_a_flag_the_user_set():
    given = "--xla_cpu_use_fusion_emitters=true  --xla_backend_optimization_level=2"
    assert xla.compile_light_flags(given, lowest_optimization=True) == given.strip()


def test_leaves_out_flags_the_installed_xla_does_not_know(monkeypatch):
    monkeypatch.setattr(xla, "knows_flag", lambda name: False)
    assert (
        xla.compile_light_flags(" --xla_dump_to=/tmp/x ", lowest_optimization=True)
        == "--xla_dump_to=/tmp/x"
    )


@pytest.mark.parametrize(
    "flags, kw, error, match",
    [
        (["--xla_foo"], {}, TypeError, "flags must be an XLA_FLAGS string"),
        ("", {"lowest_optimization": 1}, TypeError, "lowest_optimization must be True or False"),
    ],
)
def test_bad_arguments(flags, kw, error, match):
    with pytest.raises(error, match=match):
        xla.compile_light_flags(flags, **kw)


def test_a_process_started_with_the_flags_computes_as_numpy():
    """XLA aborts on a flag it does not know: a fresh process with exactly these flags must
    start, and a jitted reduction over a fused elementwise loop must equal NumPy's."""
    flags = xla.compile_light_flags(lowest_optimization=True)
    code = (
        "import jax, jax.numpy as jnp, numpy as np\n"
        "x = np.linspace(-3, 3, 1001, dtype=np.float32)\n"
        "got = jax.jit(lambda x: (jnp.tanh(x) * jnp.exp(-x * x)).sum())(x)\n"
        "want = (np.tanh(x) * np.exp(-x * x)).sum(dtype=np.float64)\n"
        "assert abs(float(got) - want) < 1e-4 * (1 + abs(want)), (float(got), want)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


# the tests that check numbers against formulas, closed forms and finite differences
NUMERICAL = [
    "tests/test_losses.py",
    "tests/test_activations.py",
    "tests/test_schedules.py",
    "tests/test_stats.py",
    "tests/test_hessian.py",
]


def test_numerical_tests_pass_at_xla_defaults():
    # the rest of the suite runs at the compile-light flags (conftest.py); results must not
    # depend on them, so the numerical tests run once more here at XLA's own defaults
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAXNN_XLA_DEFAULTS"] = "1"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NUMERICAL],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
