"""Shared test set-up.

The suite's time goes almost entirely to XLA compiling hundreds of small programs (each
eager op and each jitted test function, ~60 ms apiece on 2 cores). Tests check numbers,
not speed, so they run with :func:`jaxnn.xla.compile_light_flags` at its lowest backend
optimisation level: no LLVM optimisation passes, which roughly halves compile time, and
XLA:CPU's legacy loop emitters, which halve it again for the suite's programs
(tests/test_train.py and tests/test_optimizers.py: 57 s against 29 s). Benchmarks under
benchmarks/ run with XLA's defaults. A flag you set in XLA_FLAGS yourself is kept. This
must run before JAX creates its CPU backend (importing jax or jaxnn does not create it).
"""

import os

from jaxnn import xla

os.environ["XLA_FLAGS"] = xla.compile_light_flags(os.environ.get("XLA_FLAGS"),
                                                  lowest_optimization=True)
