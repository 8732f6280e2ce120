"""Shared test set-up.

The suite's time goes almost entirely to XLA compiling hundreds of small programs (each
eager op and each jitted test function). Tests check numbers, not speed, so they run
with :func:`jaxnn.xla.compile_light_flags` at its lowest backend optimisation level: no
LLVM optimisation passes and XLA:CPU's legacy loop emitters, which together cut the
suite's compile time to about a half. Results must not depend on the flags, so
tests/test_xla.py also runs the numerical tests at XLA's defaults (``JAXNN_XLA_DEFAULTS=1``
leaves ``XLA_FLAGS`` alone), and tests/test_project.py runs experiments under both.
A flag you set in ``XLA_FLAGS`` yourself is kept. This must run before JAX creates its
CPU backend (importing jax or jaxnn does not create it).
"""

import os

from jaxnn import xla

if os.environ.get("JAXNN_XLA_DEFAULTS") != "1":
    os.environ["XLA_FLAGS"] = xla.compile_light_flags(
        os.environ.get("XLA_FLAGS"), lowest_optimization=True
    )
