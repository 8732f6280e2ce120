"""Safe save/load of pytrees: no pickle, atomic writes, checked on the way back in.

A checkpoint is a NumPy ``.npz`` archive holding one array per pytree leaf and a JSON
header (format name, version, the tree's structure, each leaf's shape and dtype, and the
caller's metadata). Loading never unpickles anything (``allow_pickle=False``); it rebuilds
the tree on a template (``like``) and checks that the structure, shapes and dtypes match.

A write goes to a temporary file in the same folder, is flushed to disk, and is then
renamed over the target: a crash mid-write leaves the previous checkpoint intact, never a
half-written file. PRNG key arrays are stored as their raw key data and re-wrapped.
:func:`write_json` and :func:`write_text` write results files (``results.json``, a
report page) the same way; every file written is readable by others as an ordinary new
file is (0644 under the usual umask).

Example:
  >>> save("run.ckpt", {"w": jnp.ones(3)}, metadata={"step": 10})
  >>> tree, meta = load("run.ckpt", like={"w": jnp.zeros(3)})
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FORMAT", "VERSION", "load", "plain", "read_header", "save", "write_json", "write_text"]

FORMAT = "jaxnn-checkpoint"
VERSION = 1
_HEADER = "__header__"


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def save(path: str | os.PathLike, tree: Any, *, metadata: dict | None = None) -> Path:
    """Writes ``tree`` (a pytree of arrays) and JSON-able ``metadata`` to ``path`` atomically.

    Returns:
      The path written.
    """
    path = Path(path)
    leaves, treedef = jax.tree.flatten(tree)
    arrays, specs = {}, []
    for i, leaf in enumerate(leaves):
        if _is_key(leaf):
            data = np.asarray(jax.random.key_data(leaf))
            specs.append({"key": str(jax.random.key_impl(leaf)), "shape": list(leaf.shape)})
        else:
            data = np.asarray(leaf)
            specs.append({"dtype": data.dtype.str, "shape": list(data.shape)})
        arrays[f"leaf_{i}"] = data
    header = {
        "format": FORMAT,
        "version": VERSION,
        "treedef": str(treedef),
        "leaves": specs,
        "metadata": metadata or {},
    }
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return _atomic_write(path, lambda f: np.savez(f, **arrays))


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write: Any) -> Path:
    """Runs ``write(file)`` on a temporary file beside ``path``, flushes it to disk and
    renames it over ``path``: readers see the old file or the new one, never half of it.
    The file gets the permissions of an ordinary new file (0666 less the umask: 0644 for
    the usual 022), not the owner-only 0600 of a temporary one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plain(value: Any) -> Any:
    """``value`` made JSON-safe: NumPy/JAX scalars as Python numbers, dict keys as strings,
    tuples as lists, and every non-finite float as the string "inf", "-inf" or "nan" (JSON
    has no such numbers)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Writes ``plain(data)`` as indented JSON to ``path`` atomically; returns the path."""
    text = json.dumps(plain(data), indent=2) + "\n"
    return _atomic_write(Path(path), lambda f: f.write(text.encode()))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically, e.g. a report page; returns the path."""
    data = text.encode()
    return _atomic_write(Path(path), lambda f: f.write(data))


def read_header(path: str | os.PathLike) -> dict:
    """Returns a checkpoint's JSON header, or raises ValueError for a bad file."""
    path = Path(path)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
            header = json.loads(bytes(archive[_HEADER]).decode())
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise ValueError(
            f"{path} is not a readable jaxnn checkpoint (truncated, corrupt or "
            f"a different kind of file): {type(e).__name__}: {e}"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a jaxnn checkpoint (format "
            f"{header.get('format') if isinstance(header, dict) else None!r})"
        )
    if header.get("version") != VERSION:
        raise ValueError(
            f"{path} has checkpoint version {header.get('version')!r}; this jaxnn "
            f"reads version {VERSION}"
        )
    return header


def load(path: str | os.PathLike, like: Any) -> tuple[Any, dict]:
    """Reads a checkpoint back into the structure of ``like``.

    Args:
      path: a file written by :func:`save`.
      like: a pytree with the expected structure, shapes and dtypes (arrays or
        ``jax.ShapeDtypeStruct``s), e.g. freshly initialised params.

    Returns:
      ``(tree, metadata)``.

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: a truncated, corrupt or foreign file, or one whose structure, shapes or
        dtypes differ from ``like``'s (the message says which leaf).
    """
    path = Path(path)
    header = read_header(path)
    like_leaves, treedef = jax.tree.flatten(like)
    if header["treedef"] != str(treedef):
        raise ValueError(
            f"{path} holds a tree of a different structure:\n  file:     "
            f"{header['treedef']}\n  expected: {treedef}"
        )
    specs = header["leaves"]
    leaves = []
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
            for i, (spec, ref) in enumerate(zip(specs, like_leaves)):
                data = archive[f"leaf_{i}"]
                if "key" in spec:
                    if not _is_key(ref) or tuple(spec["shape"]) != tuple(ref.shape):
                        raise ValueError(
                            f"{path}: leaf {i} is a PRNG key of shape {spec['shape']}, "
                            f"expected {getattr(ref, 'dtype', None)} {np.shape(ref)}"
                        )
                    leaves.append(jax.random.wrap_key_data(data, impl=spec["key"]))
                    continue
                want = (tuple(np.shape(ref)), np.dtype(ref.dtype))
                if (data.shape, data.dtype) != want:
                    raise ValueError(
                        f"{path}: leaf {i} has shape {data.shape} and dtype "
                        f"{data.dtype}, expected shape {want[0]} and dtype {want[1]}"
                    )
                leaves.append(data)
    except (OSError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is truncated or corrupt: {type(e).__name__}: {e}") from None
    return jax.tree.unflatten(treedef, leaves), header["metadata"]
