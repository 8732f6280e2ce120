"""Shared test set-up.

The suite's time goes almost entirely to XLA compiling hundreds of small programs (each
eager op and each jitted test function, ~60 ms apiece on 2 cores). Tests check numbers,
not speed, so they ask XLA:CPU for its lowest backend optimisation level, which roughly
halves compile time; benchmarks under benchmarks/ run at XLA's default level. Set
XLA_FLAGS yourself to override. This must run before JAX creates its CPU backend.
"""

import os

if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_backend_optimization_level=0").strip()
