"""Argument checks shared by every jaxnn module.

jaxnn checks a value only where it is concrete: a Python number, a NumPy array, or a JAX
array outside ``jit``/``vmap``. Inside traced code the value is unknown until run time, so
the check is skipped and the assumption is stated in the caller's docstring instead.
Shapes and dtypes are static even under ``jit``, so shape checks always run.

Every error names the argument, shows the value given and says what was expected.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Iterable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

__all__ = [
    "concrete",
    "finite",
    "in_range",
    "is_traced",
    "keywords",
    "positive_int",
    "prng_key",
    "real_scalar",
    "renamed",
    "resolve",
    "same_shape",
    "shape",
]


def is_traced(tree: Any) -> bool:
    """True when any leaf of ``tree`` is a tracer: a value unknown until run time."""
    return any(isinstance(x, Tracer) for x in jax.tree.leaves(tree))


def concrete(value: Any) -> np.ndarray | None:
    """Returns ``value`` as a NumPy array, or None when it is a tracer (unknown until run)."""
    if is_traced(value):
        return None
    try:
        return np.asarray(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return None


def real_scalar(name: str, value: Any) -> Any:
    """Checks that ``value`` is a real scalar (Python, NumPy or 0-d JAX; traced allowed)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, numbers.Real):
        return value
    shape = np.shape(value)
    dtype = getattr(value, "dtype", None)
    if (
        shape != ()
        or dtype is None
        or not np.issubdtype(dtype, np.number)
        or np.issubdtype(dtype, np.complexfloating)
    ):
        raise TypeError(
            f"{name} must be a real scalar, got {type(value).__name__} with shape {shape}"
        )
    return value


def in_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """Checks ``low <= value <= high`` (or strict, per side) when ``value`` is concrete.

    A NaN is always rejected. Traced values pass unchecked.
    """
    real_scalar(name, value)
    arr = concrete(value)
    if arr is None:
        return value
    v = float(arr)
    ok = not np.isnan(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        left = "" if low is None else f"{low} {'<' if low_open else '<='} "
        right = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise ValueError(f"{name} must satisfy {left}{name}{right}, got {v!r}")
    return value


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Checks that ``value`` is a Python/NumPy integer ``>= minimum`` and returns it as int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def finite(name: str, value: Any) -> Any:
    """Raises ValueError if a concrete ``value`` holds NaN or infinity.

    A JAX array that lives off the host (on a GPU or TPU) or is split over several devices
    is tested where it lives, and only one bool comes back: a dataset is not copied to the
    host on every ``fit`` call. The host reads it only to describe a failure.
    """
    if isinstance(value, jax.Array) and not is_traced(value) and _off_host(value):
        if not jnp.issubdtype(value.dtype, jnp.inexact):
            return value
        with jax.ensure_compile_time_eval():  # also when called while tracing (fit in jit)
            if bool(jnp.isfinite(value).all()):
                return value
    arr = concrete(value)
    if arr is not None and np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        raise ValueError(
            f"{name} must be finite, but {len(bad)} of its {arr.size} entries are "
            f"NaN or infinite (first at index {tuple(int(i) for i in bad[0])})"
        )
    return value


def _off_host(array: jax.Array) -> bool:
    """Whether reading ``array`` on the host would copy it from a device or gather it from
    several."""
    devices = array.sharding.device_set
    return len(devices) > 1 or next(iter(devices)).platform != "cpu"


def prng_key(name: str, value: Any) -> Any:
    """Checks that ``value`` is one PRNG key; returns it as a typed key.

    Accepts a typed key (``jax.random.key(seed)``) and a legacy raw key, the ``uint32[2]``
    array of ``jax.random.PRNGKey(seed)`` (wrapped with ``jax.random.wrap_key_data``, so
    both give the same random numbers), concrete or traced.
    """
    dtype = getattr(value, "dtype", None)
    shape = np.shape(value) if dtype is not None else None
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return value
    elif dtype == np.uint32 and shape == _legacy_key_shape():
        return jax.random.wrap_key_data(value)
    raise TypeError(
        f"{name} must be one PRNG key, from jax.random.key(seed) or jax.random.PRNGKey(seed), "
        f"got {type(value).__name__} {dtype or ''}{shape if shape is not None else ''}"
    )


def _legacy_key_shape() -> tuple[int, ...]:
    """The raw form of the default key implementation: (2,) for threefry."""
    return jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))).shape


def same_shape(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Raises ValueError unless ``a`` and ``b`` have the same shape (no broadcasting)."""
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got "
            f"{name_a}.shape={np.shape(a)} and {name_b}.shape={np.shape(b)}"
        )


def resolve(kind: str, name: Any, table: dict[str, Any]) -> Any:
    """Returns ``table[name]``, or ``name`` itself when it is callable.

    Raises:
      ValueError: for an unknown name; the message lists the valid ones.
      TypeError: for anything that is neither a name nor a callable.
    """
    if callable(name):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"{kind} must be a name (one of {sorted(table)}) or a function, got {name!r}"
        )
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {sorted(table)}") from None


def keywords(kind: str, name: str, fn: Callable, given: dict, skip: tuple = ()) -> None:
    """Raises TypeError naming what ``fn`` takes when ``given`` has unknown or misses
    required keyword arguments (``skip``: arguments the caller supplies itself)."""
    params = {p: v for p, v in inspect.signature(fn).parameters.items() if p not in skip}
    unknown = sorted(set(given) - set(params))
    missing = sorted(
        p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in given
    )
    if unknown or missing:
        problem = f"got unknown {unknown}" if unknown else f"is missing {missing}"
        raise TypeError(f"{kind} {name!r} takes {list(params)}; the call {problem}")


def shape(name: str, value: Any) -> tuple[int, ...]:
    """Checks that ``value`` is a shape: an int or a tuple of non-negative ints (a tuple back)."""
    shape = value
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(cast(Iterable[Any], shape))
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"{name} must be a tuple of non-negative ints, got {shape!r}")
    return shape


def renamed(**old_to_new: str) -> Callable:
    """Lets a function still take keywords by the names they had before a rename.

    ``@renamed(eta0="lr0")`` makes ``f(eta0=0.1)`` call ``f(lr0=0.1)``; giving both names
    is a TypeError. The renames are listed in CHANGELOG.md.
    """

    def wrap(fn: Callable) -> Callable:
        names = inspect.signature(fn).parameters
        table = {old: new for old, new in old_to_new.items() if new in names}

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for old, new in table.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {old}= and {new}=")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return call

    return wrap
