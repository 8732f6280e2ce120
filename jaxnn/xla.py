"""XLA settings that compile faster, for runs made of many small programs.

A study with jaxnn is often hundreds of small compiled programs, each run for a fraction
of a second: a sweep per figure, a Hessian per checkpoint, a test per formula. On a CPU
host most of such a run is XLA compiling. Two XLA:CPU settings trade little or nothing
for compile time:

* ``--xla_cpu_use_fusion_emitters=false`` compiles fused loops with XLA:CPU's earlier
  (legacy) code emitters: most small programs compile faster, at the same run-time speed
  and with the same numbers up to floating-point rounding (some deep, wide training
  loops compile slower).
* ``--xla_backend_optimization_level=0`` skips LLVM's optimisation passes: compiling is
  faster again but the compiled code runs slower, so it suits a test suite (which checks
  numbers, not speed) or a pass of brief runs, not a long run.

The measurements behind both are in ``benchmarks/README.md``.

XLA reads ``XLA_FLAGS`` once, when JAX creates its first backend (at the first array or
computation, not at ``import jax``), and aborts the whole process on a flag it does not
know. :func:`compile_light_flags` therefore adds a flag only when the installed XLA knows
it (:func:`knows_flag`), and never overrides a flag the user has already set::

    os.environ["XLA_FLAGS"] = jaxnn.xla.compile_light_flags(os.environ.get("XLA_FLAGS"))

Nothing here needs or starts a JAX backend. The flags only concern XLA:CPU; on a GPU or
TPU backend they change nothing.
"""

from __future__ import annotations

import importlib.util
import mmap
from pathlib import Path

__all__ = ["FUSION_EMITTERS", "LOWEST_OPTIMIZATION", "compile_light_flags", "knows_flag"]

#: The flags :func:`compile_light_flags` adds: name -> value.
FUSION_EMITTERS = {"xla_cpu_use_fusion_emitters": "false"}
LOWEST_OPTIMIZATION = {"xla_backend_optimization_level": "0"}

# the libraries that hold XLA's flag table: libjax_common (jaxlib 0.5 on), xla_extension
_LIBRARIES = ("*jax_common.*", "xla_extension.*")


def _flag_names(flags: str) -> set[str]:
    """The names of the flags in an ``XLA_FLAGS`` value: ``"--a=1 --b"`` -> ``{"a", "b"}``."""
    return {word.lstrip("-").split("=", 1)[0] for word in flags.split() if word.startswith("--")}


def knows_flag(name: str) -> bool:
    """Whether the installed XLA (in jaxlib) defines the flag ``name`` (without ``--``).

    Reads jaxlib's library for the flag's name as a whole string; False when the name is
    absent or the library cannot be found or read, so that an answer of True is safe to
    pass in ``XLA_FLAGS``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a flag name (a str), got {type(name).__name__} {name!r}")
    if not name or name.startswith("-") or "=" in name or " " in name:
        raise ValueError(
            f"name must be a flag name without '--' or '=' such as "
            f"'xla_cpu_use_fusion_emitters', got {name!r}"
        )
    spec = importlib.util.find_spec("jaxlib")
    if spec is None or spec.origin is None:
        return False
    folder = Path(spec.origin).parent
    needle = b"\0" + name.encode() + b"\0"
    for path in (p for pattern in _LIBRARIES for p in sorted(folder.glob(pattern))):
        if not path.is_file() or path.suffix == ".pyi":
            continue
        try:
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return data.find(needle) >= 0
        except (OSError, ValueError):
            return False
    return False


def compile_light_flags(flags: str | None = None, *, lowest_optimization: bool = False) -> str:
    """``flags`` (an ``XLA_FLAGS`` value; None reads as empty) with the faster-compiling
    settings appended: :data:`FUSION_EMITTERS` always, :data:`LOWEST_OPTIMIZATION` too when
    ``lowest_optimization`` (compiled code runs slower; for test suites and passes of
    brief runs such as ``python -m experiments --quick``).

    A flag already named in ``flags`` keeps the user's value; a flag the installed XLA does
    not know (:func:`knows_flag`) is left out, since XLA would abort on it. Set the result
    as ``os.environ["XLA_FLAGS"]`` before JAX's first computation; later it has no effect.
    """
    if flags is None:
        flags = ""
    if not isinstance(flags, str):
        raise TypeError(
            f"flags must be an XLA_FLAGS string such as '--xla_foo=1' or None, "
            f"got {type(flags).__name__} {flags!r}"
        )
    if not isinstance(lowest_optimization, bool):
        raise TypeError(f"lowest_optimization must be True or False, got {lowest_optimization!r}")
    wanted = dict(FUSION_EMITTERS)
    if lowest_optimization:
        wanted.update(LOWEST_OPTIMIZATION)
    given = _flag_names(flags)
    added = [
        f"--{name}={value}"
        for name, value in wanted.items()
        if name not in given and knows_flag(name)
    ]
    return " ".join([flags.strip(), *added]).strip()
