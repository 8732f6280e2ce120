"""Which grid axes a run reads: traced once, unused inputs found by dead-code elimination."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

from jaxnn import train

__all__ = ["TRACER_ERRORS", "check_run", "trace_run", "traced_error"]


def traced_error(err: Exception) -> TypeError:
    return TypeError(
        "run(hparams, key) must use hparams as traced JAX scalars (no float(), int(), if or "
        "Python loops on them: each is a batch of values under vmap); tracing failed with: "
        + str(err).strip().splitlines()[0]
    )


TRACER_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.TracerArrayConversionError,
)


def _dead_inputs(closed_jaxpr: Any) -> list[bool]:
    """Which inputs the program's outputs do not depend on (dead-code elimination)."""
    from jax._src.interpreters import partial_eval as pe  # jax has no public DCE

    jaxpr = closed_jaxpr.jaxpr
    _, used = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))
    return [not u for u in used]


@functools.lru_cache(maxsize=16)
def trace_run(run: Callable, signature: tuple, key_dtype: Any) -> tuple[Any, Any]:
    """``run`` traced once at one point: (its closed jaxpr, its output shapes). The checks
    read the jaxpr, and the compiled sweep vmaps it rather than tracing ``run`` again (the
    jaxpr already holds the derivatives: only batching is left to do)."""
    hparams = {n: jax.ShapeDtypeStruct((), d) for n, d in signature}
    key = jax.ShapeDtypeStruct((), key_dtype)
    try:
        closed, out = jax.make_jaxpr(run, return_shape=True)(hparams, key)
    except TRACER_ERRORS as e:
        raise traced_error(e) from None
    except KeyError as e:
        if len(e.args) == 1 and isinstance(e.args[0], str) and e.args[0] not in hparams:
            raise KeyError(
                f"run(hparams, key) raised KeyError({e.args[0]!r}); the grid's axes "
                f"are {list(hparams)}"
            ) from None
        raise
    if not isinstance(out, train.FitResult):
        raise TypeError(
            f"run(hparams, key) must return a jaxnn FitResult (from fit), got {type(out).__name__}"
        )
    return closed, out


@functools.lru_cache(maxsize=16)
def check_run(run: Callable, signature: tuple, key_dtype: Any, seeded: bool) -> Any:
    """Returns the output shapes of ``run`` at one point after checking that it returns a
    FitResult and reads every axis of the grid (cached with the compiled programs)."""
    closed, out = trace_run(run, signature, key_dtype)
    hparams = dict(signature)
    try:
        dead = _dead_inputs(closed)
    except Exception:  # pragma: no cover - a JAX without this internal: skip the check
        return out
    names = sorted(hparams)  # the order jax flattens a dict in
    unread = [n for n, d in zip(names, dead) if d]
    if seeded and "seed" in unread and not dead[len(names)]:
        unread.remove("seed")  # the seed reaches run through its key
    if unread:
        raise ValueError(
            f"grid axis {unread[0]!r} changes nothing: run(hparams, key) never reads "
            f"hparams[{unread[0]!r}]"
            + (" or its key" if unread[0] == "seed" else "")
            + f" (the axes it reads: {[n for n in names if n not in unread]}); drop the axis or "
            f"use it in run"
        )
    return out
