"""Shared test set-up.

Tests check numbers, not speed, so they run with :func:`jaxnn.xla.compile_light_flags`
at its lowest backend optimisation level, which compiles the suite's hundreds of small
programs faster (``benchmarks/README.md``). Results must not depend on the flags, so
tests/test_xla.py also runs the numerical tests at XLA's defaults (``JAXNN_XLA_DEFAULTS=1``
leaves ``XLA_FLAGS`` alone), and tests/test_project.py runs experiments under both.
A flag you set in ``XLA_FLAGS`` yourself is kept. This must run before JAX creates its
CPU backend (importing jax or jaxnn does not create it).

The suite shares JAX's persistent compilation cache (:func:`jaxnn.xla.use_compilation_cache`,
the same folder as ``python -m experiments``) among its workers and the processes it
starts: the programs that several of them compile (the quick experiments the main job and
the parallel-jobs test both run, say) compile once, and a second run of the suite compiles
little. ``JAXNN_COMPILATION_CACHE=0`` runs it without the cache.
"""

import os

import pytest

from jaxnn import xla

if os.environ.get("JAXNN_XLA_DEFAULTS") != "1":
    os.environ["XLA_FLAGS"] = xla.compile_light_flags(
        os.environ.get("XLA_FLAGS"), lowest_optimization=True
    )
xla.use_compilation_cache()
xla.compile_seconds()  # counts from here: the summary gives the suite's compile time


#: the tests that run the longest (each a subprocess: the main job, the numerical tests at
#: XLA's defaults, four host devices); they start first, so that with ``-n 2``
#: (pytest-xdist) the other worker runs the rest of the suite meanwhile
LONGEST = (
    "test_main_job_quick",
    "test_numerical_tests_pass_at_xla_defaults",
    "test_four_host_devices_equal_one_device",
)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.name not in LONGEST)  # stable: the rest keep their order


_WORKERS_COMPILING = []  # each pytest-xdist worker's compile seconds, as it finishes


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: tell the controller
        session.config.workeroutput["compile seconds"] = xla.compile_seconds()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _WORKERS_COMPILING.append(getattr(node, "workeroutput", {}).get("compile seconds", 0.0))


def pytest_terminal_summary(terminalreporter):
    seconds = sum(_WORKERS_COMPILING) if _WORKERS_COMPILING else xla.compile_seconds()
    terminalreporter.write_line(
        f"JAX compile time: {seconds:.0f} s in the test processes "
        f"({len(_WORKERS_COMPILING) or 1} of them; the subprocesses they start not counted), "
        f"compilation cache {os.environ.get('JAX_COMPILATION_CACHE_DIR', 'off')}"
    )


@pytest.fixture
def four_host_devices():
    """The environment for a subprocess with four CPU devices, at the suite's own XLA
    flags."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
    return dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")


@pytest.fixture
def x64():
    """float64 for the test: ``pytestmark = pytest.mark.usefixtures("x64")`` in a module
    whose every test compares against a float64 reference."""
    import jax

    with jax.enable_x64(True):
        yield


def identity_readout(p):
    """Replaces the output layer by the identity, so logits = last hidden layer."""
    import jax.numpy as jnp

    width = p[-1]["w"].shape[0]
    p = list(p)
    p[-1] = {"w": jnp.eye(width), "b": jnp.zeros(width)}
    return p
