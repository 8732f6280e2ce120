"""jaxnn.checkpoint: pytrees saved without pickle, atomically, and read back checked."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import checkpoint


def test_checkpoint_files(tmp_path):
    tree = {
        "w": jnp.arange(6.0).reshape(2, 3),
        "k": jax.random.key(1),
        "opt": optax.adam(0.1).init({"w": jnp.ones(2)}),
    }
    path = checkpoint.save(tmp_path / "a.ckpt", tree, metadata={"step": 3})
    back, meta = checkpoint.load(path, tree)
    assert meta == {"step": 3}
    np.testing.assert_array_equal(back["w"], tree["w"])
    np.testing.assert_array_equal(jax.random.key_data(back["k"]), jax.random.key_data(tree["k"]))
    assert type(back["opt"][0]).__name__ == "ScaleByAdamState"
    data = path.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.ckpt is not a readable jaxnn checkpoint"):
        checkpoint.load(tmp_path / "cut.ckpt", tree)
    (tmp_path / "foreign.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"not a readable jaxnn checkpoint"):
        checkpoint.load(tmp_path / "foreign.npz", tree)
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(ValueError, match=r"plain.npz is not a readable jaxnn checkpoint"):
        checkpoint.load(tmp_path / "plain.npz", tree)
    with pytest.raises(ValueError, match=r"leaf \d+ has shape \(2, 3\).*expected shape \(3, 2\)"):
        checkpoint.load(path, {**tree, "w": jnp.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"different structure"):
        checkpoint.load(path, {"w": tree["w"]})


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = checkpoint.save(tmp_path / "b.ckpt", {"w": jnp.ones(3)}, metadata={"v": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"w": jnp.zeros(3)}, metadata={"v": 2})
    monkeypatch.undo()
    back, meta = checkpoint.load(path, {"w": jnp.zeros(3)})
    assert meta == {"v": 1} and float(back["w"][0]) == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["b.ckpt"]
