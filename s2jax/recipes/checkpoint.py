"""Model checkpoints without pickle: every NNX variable in one ``.npz``, plus a JSON sidecar.

Format: ``NAME.npz`` holds one array per variable, keyed by its path in the module joined with
``/`` (e.g. ``synapses/0/kernel``), loaded with ``allow_pickle=False``; ``NAME.json`` holds the
stage name, the recipe settings and the array keys. Loading fills a freshly built model of the
same structure (:func:`load_model`) and refuses a checkpoint whose keys or shapes differ.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["save_model", "load_model", "read_meta", "atomic_write"]


def _flat(model) -> dict:
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        out["/".join(map(str, path))] = var
    return out


def atomic_write(path: Path, write):
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``; on any
    error the temporary file is removed and ``path`` is untouched."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_model(path, model, meta: dict) -> Path:
    """Write ``path`` (``.npz``) and its ``.json`` sidecar atomically; returns the ``.npz`` path."""
    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v[...]) for k, v in _flat(model).items()}

    def write_npz(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write_npz)
    side = {**meta, "keys": sorted(arrays)}
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(side, indent=1)))
    return path


def read_meta(path) -> dict | None:
    """The sidecar of a checkpoint, or None when there is none."""
    side = Path(path).with_suffix(".json")
    if not side.exists() or not Path(path).with_suffix(".npz").exists():
        return None
    return json.loads(side.read_text())


def load_model(path, model):
    """Fill ``model`` (built with the same structure) from the checkpoint at ``path``; returns it."""
    path = Path(path).with_suffix(".npz")
    flat = _flat(model)
    with np.load(path, allow_pickle=False) as f:
        missing, extra = sorted(set(flat) - set(f.files)), sorted(set(f.files) - set(flat))
        if missing or extra:
            raise ValueError(f"{path}: checkpoint does not match the model (missing {missing}, unexpected {extra})")
        for key, var in flat.items():
            value = f[key]
            if value.shape != np.shape(var[...]):
                raise ValueError(f"{path}: {key} has shape {value.shape}, the model expects {np.shape(var[...])}")
            var[...] = jnp.asarray(value, dtype=np.asarray(var[...]).dtype)
    return model
