"""One update function per optimiser structure, so that ``fit`` reuses its compiled program.

Plumbing for :mod:`jaxnn.optimizers`: ``fit`` keys its compiled programs on the
optimiser's update function, and two optimisers that differ only in numbers (read from
the state by ``optax.inject_hyperparams``) get the same function object here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["shared"]


#: Update functions shared by optimisers of the same structure (at most this many kept).
_MAX = 64
_updates: dict = {}


def shared(factory: Any, static: Any, kwargs: dict, update: Any) -> Any:
    """The update function of the first optimiser built with this structure: ``factory``
    and its static options (structure flags, clipping bounds, the mask, which
    hyperparameters are schedules, and those schedules), whatever the numeric values.

    ``inject_hyperparams`` reads every numeric hyperparameter from the optimiser state, so
    two optimisers that differ only in numbers have interchangeable updates. Sharing the
    function object lets :func:`jaxnn.train.fit`, whose compiled programs are keyed by the
    update function, run momentum(0.1, 0.5) and momentum(0.3, 0.9) through one program.
    """
    parts = []
    for name, value in sorted(kwargs.items()):
        if name in static or isinstance(value, bool) or value is None:
            parts.append((name, "static", value))
        elif callable(value):
            parts.append((name, "schedule", value))
        elif isinstance(value, (int, float)) or hasattr(value, "dtype"):
            parts.append((name, "numeric"))
        else:
            parts.append((name, "static", value))
    key = (factory, tuple(parts))
    try:
        hash(key)
    except TypeError:  # an unhashable static option (a mask given as a pytree): no sharing
        return update
    if key not in _updates:
        if len(_updates) >= _MAX:
            _updates.pop(next(iter(_updates)))
        _updates[key] = update
    return _updates[key]
