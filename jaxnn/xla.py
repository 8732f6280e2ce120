"""XLA settings that compile faster, and a compilation cache, for runs made of many small
programs.

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

A second run of the same programs need not have XLA compile them again (JAX still traces
and lowers them): :func:`use_compilation_cache` turns on JAX's persistent compilation
cache (``jax_compilation_cache_dir``) with the thresholds that let small CPU programs in
(JAX's defaults keep only programs that took a second or more to compile, which leaves out
almost every program of a CPU study). The ``jaxnn`` command, ``python -m experiments``
and the test suite call it; a script can too::

    jaxnn.xla.use_compilation_cache()  # before the first computation

The cache lives in :func:`default_cache_dir`, one folder per jaxlib version and CPU;
``JAXNN_COMPILATION_CACHE`` names another folder, or ``0`` turns it off, and JAX's own
``JAX_COMPILATION_CACHE_DIR`` wins over both. Deleting the folder is always safe.
:func:`compile_seconds` tells how much of a run went to compiling.

Nothing here needs or starts a JAX backend. The flags only concern XLA:CPU; on a GPU or
TPU backend they change nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import mmap
import os
import platform
import sys
import warnings
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "FUSION_EMITTERS",
    "LOWEST_OPTIMIZATION",
    "compile_light_flags",
    "compile_seconds",
    "default_cache_dir",
    "knows_flag",
    "use_compilation_cache",
]

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


#: The environment variable that names jaxnn's compilation cache folder, or turns the cache
#: off with ``0`` (also ``off``, ``false``, ``no``).
CACHE_ENV = "JAXNN_COMPILATION_CACHE"
_OFF = ("0", "off", "false", "no")
# JAX's settings (each read from its environment variable, upper-cased, when jax is
# imported): the folder, and thresholds that cache every program however small or quick
_CACHE_DIR_SETTING = "jax_compilation_cache_dir"
_THRESHOLDS = {
    "jax_persistent_cache_min_compile_time_secs": "0",
    "jax_persistent_cache_min_entry_size_bytes": "-1",
}


def _host() -> str:
    """What a compiled CPU program depends on: the machine, its CPU's model and instruction
    set extensions (/proc/cpuinfo where there is one), Python's and jaxlib's versions."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [line for line in f if line.startswith(("model name", "flags", "Features"))]
        cpu = "".join(dict.fromkeys(lines))  # every core repeats them
    except OSError:
        pass
    jaxlib = importlib.util.find_spec("jaxlib")
    version = "none"
    if jaxlib is not None and jaxlib.origin is not None:
        version_file = Path(jaxlib.origin).parent / "version.py"
        version = version_file.read_text() if version_file.is_file() else jaxlib.origin
    return "\n".join([platform.machine(), cpu, sys.version, version])


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/jaxnn/xla/<host>`` (``~/.cache`` when ``XDG_CACHE_HOME`` is unset):
    the compilation cache folder of this host.

    ``<host>`` is a digest of the CPU's model and instruction set, the machine type and the
    Python and jaxlib versions. XLA:CPU compiles for the host's instruction set (AVX2 on
    one machine, AVX-512 on the next) and refuses a program compiled for features the host
    lacks, so machines that share a home folder keep their programs apart, and a new jaxlib
    starts a new folder (an old one can be deleted).
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    digest = hashlib.sha256(_host().encode()).hexdigest()[:16]
    return Path(base) / "jaxnn" / "xla" / digest


def use_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turns on JAX's persistent compilation cache in ``path``, for this process and the
    processes it starts; returns the folder, or None when the cache is off.

    Every compiled program is written to the folder (the thresholds
    ``jax_persistent_cache_min_compile_time_secs = 0`` and
    ``jax_persistent_cache_min_entry_size_bytes = -1``), and a program compiled before, by
    any process, with the same jaxlib, backend, XLA flags and compile options, is read back
    instead of compiled. The numbers do not change: the same program compiles to the same
    executable. Call it before JAX's first computation; it sets the ``JAX_*`` environment
    variables, so processes started later (``multiprocessing``'s spawn, a subprocess)
    share the cache.

    Args:
      path: the folder (made if missing). ``None`` uses, in order:
        ``JAX_COMPILATION_CACHE_DIR`` when set (JAX's own; kept as it is), the folder named
        by ``JAXNN_COMPILATION_CACHE`` (:data:`CACHE_ENV`; ``0`` turns the cache off),
        :func:`default_cache_dir`.

    A threshold already set in the environment (``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``
    and ``JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES``) is kept. When the default folder
    cannot be made (a read-only home), this warns and leaves the cache off; a folder you
    name (``path`` or an environment variable) that cannot be made raises ``ValueError``.

    The cache is trusted: whoever can write to the folder can run code in your process, so
    keep it private (a folder made here is readable by you alone). See JAX's guide,
    "Persistent compilation cache".
    """
    source = "path"  # who chose the folder, for the message when it cannot be made
    if path is None:
        chosen = os.environ.get(CACHE_ENV, "").strip()
        if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            path, source = os.environ["JAX_COMPILATION_CACHE_DIR"], "JAX_COMPILATION_CACHE_DIR"
        elif chosen.lower() in _OFF:
            return None
        elif chosen:
            path, source = chosen, CACHE_ENV
        else:
            source = None
            try:
                path = default_cache_dir()
            except RuntimeError as error:  # no home folder to put it in
                return _cache_off(f"there is no default folder ({error})")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a folder (a str or os.PathLike) or None, got {type(path).__name__} "
            f"{path!r}"
        )
    folder = Path(path).expanduser()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"{folder} is not writable")
    except OSError as error:
        if source is not None:
            raise ValueError(
                f"{source} must be a folder the compilation cache can be written to, got "
                f"{str(path)!r} ({error})"
            ) from error
        return _cache_off(f"its folder {folder} cannot be made ({error})")
    folder = folder.resolve()
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    for setting, value in _THRESHOLDS.items():
        os.environ.setdefault(setting.upper(), value)
    if "jax" in sys.modules:  # jax has read the environment already: tell it directly
        _update_jax(folder)
    return folder


def _cache_off(why: str) -> None:
    warnings.warn(
        f"jaxnn's compilation cache is off: {why}; set {CACHE_ENV} to a folder, or to 0 to "
        "turn it off without this warning",
        stacklevel=3,
    )


def _update_jax(folder: Path) -> None:
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    for setting in _THRESHOLDS:
        value = os.environ[setting.upper()]
        jax.config.update(setting, float(value) if "secs" in setting else int(value))
    if jax.config.values.get(_CACHE_DIR_SETTING) != str(folder):
        jax.config.update(_CACHE_DIR_SETTING, str(folder))
        compilation_cache.reset_cache()  # the next compilation opens the new folder


# the events JAX records for one compilation, none inside another: tracing a function to a
# jaxpr (at the top level only), lowering the jaxpr to StableHLO, and XLA compiling it (or
# reading it back from the persistent cache)
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compiling = {"seconds": 0.0, "listening": False}  # this process's compile time so far


def _listen(event: str, duration_secs: float, **kwargs: str | int) -> None:
    if event in _COMPILE_EVENTS:
        _compiling["seconds"] += duration_secs


def compile_seconds() -> float:
    """Seconds this process has spent compiling since the first call: JAX tracing functions,
    lowering them and XLA compiling them (or reading them from the compilation cache).

    The first call starts counting (it registers a listener with ``jax.monitoring``) and
    returns 0.0; the difference of two later calls is the compile time in between. Runs on
    several threads add up, so it can exceed the wall-clock time between the calls.
    """
    if not _compiling["listening"]:
        import jax

        jax.monitoring.register_event_duration_secs_listener(_listen)
        _compiling["listening"] = True
    return _compiling["seconds"]
