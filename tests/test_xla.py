"""jaxnn.xla: the compile-light XLA_FLAGS are added only where XLA knows them, never over
the user's own, and a process started with them computes what NumPy computes."""

import json
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


# ---- the persistent compilation cache ----

CACHED_RUN = """
import json, sys
import numpy as np
from jaxnn import xla
folder = xla.use_compilation_cache()
import jax, jax.numpy as jnp
counts = {"hits": 0, "misses": 0}
def count(event, **kwargs):
    for name in counts:
        counts[name] += event == f"/jax/compilation_cache/cache_{name}"
jax.monitoring.register_event_listener(count)
xla.compile_seconds()
x = np.linspace(-2.0, 2.0, 12, dtype=np.float32).reshape(3, 4)
y = jax.jit(lambda x: jnp.tanh(x) @ jnp.exp(-x).T)(x)
print(json.dumps({"folder": str(folder), "bits": np.asarray(y).tobytes().hex(),
                  "compile": xla.compile_seconds(), **counts}))
"""


def _cached_run(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "JAXNN_"))}
    done = subprocess.run(
        [sys.executable, "-c", CACHED_RUN],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_a_second_process_reads_back_what_the_first_compiled(tmp_path):
    cache, other = tmp_path / "cache", tmp_path / "other"
    first = _cached_run(JAXNN_COMPILATION_CACHE=str(cache))
    assert first["folder"] == str(cache.resolve()) and first["hits"] == 0
    assert first["misses"] >= 1 and len(list(cache.iterdir())) == first["misses"]
    assert first["compile"] > 0
    # JAX's own setting wins over jaxnn's; the second process compiles nothing
    second = _cached_run(JAX_COMPILATION_CACHE_DIR=str(cache), JAXNN_COMPILATION_CACHE=str(other))
    assert second["folder"] == str(cache.resolve()) and not other.exists()
    assert (second["hits"], second["misses"]) == (first["misses"], 0)
    # the executable read back is the one compiled: the same bits on the same input
    assert second["bits"] == first["bits"]
    assert _cached_run(JAXNN_COMPILATION_CACHE="0")["folder"] == "None"


def test_default_cache_folder_is_per_host_under_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = xla.default_cache_dir()
    assert folder.parent == tmp_path / "jaxnn" / "xla" and folder == xla.default_cache_dir()
    assert len(folder.name) == 16 and int(folder.name, 16) >= 0
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv(xla.CACHE_ENV, "off")
    assert xla.use_compilation_cache() is None


def test_compilation_cache_bad_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    a_file = tmp_path / "a_file"
    a_file.write_text("kept")
    with pytest.raises(ValueError, match="path must be a folder the compilation cache"):
        xla.use_compilation_cache(a_file / "cache")
    with pytest.raises(TypeError, match=r"path must be a folder .* got int 3"):
        xla.use_compilation_cache(3)  # pyright: ignore[reportArgumentType]
    monkeypatch.setenv(xla.CACHE_ENV, str(a_file))
    with pytest.raises(ValueError, match=f"{xla.CACHE_ENV} must be a folder"):
        xla.use_compilation_cache()
    # the default folder cannot be made: a warning, and the run goes on without the cache
    monkeypatch.delenv(xla.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(a_file))
    with pytest.warns(UserWarning, match="compilation cache is off"):
        assert xla.use_compilation_cache() is None
    assert a_file.read_text() == "kept"


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
