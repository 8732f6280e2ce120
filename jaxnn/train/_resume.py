"""Checkpoints of a run in progress: save, and resume bit for bit."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import checkpoint as ckpt

__all__ = ["blank", "concat", "restore", "save"]


def blank(shape_tree: Any) -> Any:
    """NaN (floats) or zeros (other dtypes) shaped like an eval_shape result."""
    return jax.tree.map(
        lambda s: jnp.full(
            s.shape, jnp.nan if jnp.issubdtype(s.dtype, jnp.inexact) else 0, s.dtype
        ),
        shape_tree,
    )


def concat(chunks: list, length: int) -> Any:
    """The per-step records of the first ``length`` steps, from the chunks' outputs."""
    if not chunks:
        return None
    joined = (
        chunks[0]
        if len(chunks) == 1
        else jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *chunks)
    )
    return jax.tree.map(lambda x: x if x.shape[0] == length else x[:length], joined)


def _padded_history(chunks: list, done: int, ys_shape: Any, total: int) -> Any:
    """The records of steps [0, done) in arrays of length ``total`` (NaN/0 after)."""
    full = jax.tree.map(
        lambda s: np.asarray(blank(jax.ShapeDtypeStruct((total, *s.shape[1:]), s.dtype))),
        ys_shape,
    )
    so_far = concat(chunks, done)
    if so_far is not None:
        full = jax.tree.map(lambda f, s: np.concatenate([np.asarray(s), f[done:]]), full, so_far)
    return full


def save(path, carry, chunks, done, total, key):
    ys_shape = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), chunks[0])
    history = _padded_history(chunks, done, ys_shape, total)
    ckpt.save(
        path,
        {"carry": carry, "history": history},
        metadata={
            "step": int(done),
            "total": int(total),
            "key": np.asarray(jax.random.key_data(key)).tolist(),
        },
    )


def restore(path, carry, ys_shape, total, key):
    like_history = _padded_history([], 0, ys_shape, total)
    tree, meta = ckpt.load(path, {"carry": carry, "history": like_history})
    if meta.get("key") != np.asarray(jax.random.key_data(key)).tolist():
        raise ValueError(
            f"{path} was written by a run with a different key; resuming it "
            f"with this key would not reproduce that run"
        )
    if meta.get("total") != total:
        raise ValueError(
            f"{path} was written by a run of {meta.get('total')} steps, this run has {total}"
        )
    done = int(meta["step"])
    carry = jax.tree.map(jnp.asarray, tree["carry"])
    prefix = jax.tree.map(lambda h: jnp.asarray(h[:done]), tree["history"])
    return carry, prefix, done


# ---------------------------------------------------------------------------------------
# hooks the notes' studies need
# ---------------------------------------------------------------------------------------
