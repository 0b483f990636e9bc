"""Model checkpoints without pickle: every NNX variable in one ``.npz``, plus a JSON sidecar.

Format: ``NAME.npz`` holds one array per variable, keyed by its path in the module joined with
``/`` (e.g. ``synapses/0/kernel``), loaded with ``allow_pickle=False``, plus ``__meta__``: the
stage name and the recipe settings as a JSON string (a 0-d unicode array), written in the same
atomic step as the weights, so the settings always describe the weights beside them.
``NAME.json`` repeats the metadata (and the array keys) for people to read. Loading fills a freshly built model of the
same structure (:func:`load_model`) and refuses a checkpoint whose keys or shapes differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["save_model", "load_model", "read_meta", "atomic_write", "weights_digest"]

META_KEY = "__meta__"


def weights_digest(model) -> str:
    """SHA-256 over the model's variables (keys, dtypes, shapes and bytes), to tie a later stage's
    checkpoint to the weights it started from."""
    h = hashlib.sha256()
    for key, var in sorted(_flat(model).items()):
        a = np.ascontiguousarray(np.asarray(var[...]))
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


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
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
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
    packed = {**arrays, META_KEY: np.asarray(json.dumps(meta))}

    def write_npz(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **packed)

    atomic_write(path, write_npz)
    side = {**meta, "keys": sorted(arrays)}
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(side, indent=1)))
    return path


def read_meta(path) -> dict | None:
    """The metadata stored with the weights of a checkpoint, or None when there is none."""
    path = Path(path).with_suffix(".npz")
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as f:
        if META_KEY not in f.files:
            return None
        return json.loads(str(f[META_KEY]))


def load_model(path, model):
    """Fill ``model`` (built with the same structure) from the checkpoint at ``path``; returns it."""
    path = Path(path).with_suffix(".npz")
    flat = _flat(model)
    with np.load(path, allow_pickle=False) as f:
        stored = set(f.files) - {META_KEY}
        missing, extra = sorted(set(flat) - stored), sorted(stored - set(flat))
        if missing or extra:
            raise ValueError(f"{path}: checkpoint does not match the model (missing {missing}, unexpected {extra})")
        for key, var in flat.items():
            value = f[key]
            if value.shape != np.shape(var[...]):
                raise ValueError(f"{path}: {key} has shape {value.shape}, the model expects {np.shape(var[...])}")
            var[...] = jnp.asarray(value, dtype=np.asarray(var[...]).dtype)
    return model
