"""Model checkpoints without pickle: every NNX variable in one ``.npz``, plus a JSON sidecar.

Format: ``NAME.npz`` holds one array per variable, keyed by its path in the module joined with
``/`` (e.g. ``synapses/0/kernel``), loaded with ``allow_pickle=False``, plus ``__meta__``: the
stage name and the recipe settings as a JSON string (a 0-d unicode array), and
``__weights_sha256__``: the SHA-256 of the weight arrays (:func:`s2jax.io.arrays_digest`), both
written in the same atomic step as the weights, so the settings always describe the weights beside
them. ``NAME.json`` repeats the metadata, the array keys and the digest for people to read.

Reading (:func:`read_meta`, :func:`load_model`) goes through :func:`s2jax.io.load_npz` and
checks, before any weight is used: the file is a complete, uncorrupted ``.npz`` (zip CRCs), the
metadata is a JSON object, the weights match the stored digest bit for bit (a checkpoint without
a digest, or with weights altered, e.g. scaled or set to NaN, is refused) and every float weight is
finite. Each failure raises :class:`CheckpointError` naming the file. Loading fills a freshly built
model of the same structure and refuses a checkpoint whose keys or shapes differ (``ValueError``);
the model is changed only when every check passed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from s2jax import io as fileio

__all__ = ["CheckpointError", "save_model", "load_model", "read_meta", "report_ignored", "weights_digest"]

META_KEY = "__meta__"
DIGEST_KEY = "__weights_sha256__"


class CheckpointError(fileio.FileFormatError):
    """A checkpoint that is truncated, corrupt, altered (weights that do not match the stored
    SHA-256) or holds non-finite weights. The message starts with the file's path."""


def weights_digest(model) -> str:
    """SHA-256 over the model's variables (keys, dtypes, shapes and bytes), to tie a later stage's
    checkpoint to the weights it started from; the digest stored in a checkpoint is this one."""
    return fileio.arrays_digest(_arrays(model))


def _flat(model) -> dict:
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        out["/".join(map(str, path))] = var
    return out


def _arrays(model) -> dict[str, np.ndarray]:
    return {k: np.asarray(v[...]) for k, v in _flat(model).items()}


def save_model(path, model, meta: dict) -> Path:
    """Write ``path`` (``.npz``) and its ``.json`` sidecar atomically (:func:`s2jax.io.atomic_write`:
    synced to disk before the rename); returns the ``.npz`` path."""
    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = _arrays(model)
    digest = fileio.arrays_digest(arrays)
    fileio.save_npz(path, {**arrays, META_KEY: np.asarray(json.dumps(meta)), DIGEST_KEY: np.asarray(digest)})
    side = {**meta, "keys": sorted(arrays), "weights_sha256": digest}
    fileio.atomic_write_text(path.with_suffix(".json"), json.dumps(side, indent=1))
    return path


def _text(path: Path, arr: np.ndarray | None, key: str) -> str | None:
    if arr is None:
        return None
    if arr.dtype.kind != "U" or arr.shape != ():
        raise CheckpointError(f"{path}: {key} must be a text scalar, got dtype {arr.dtype} shape {arr.shape}")
    return str(arr[()])


def _read(path: Path) -> tuple[dict | None, dict[str, np.ndarray]]:
    """``(metadata or None, weight arrays)`` of a checkpoint, every check of the module docstring done."""
    try:
        stored = fileio.load_npz(path, what="checkpoint")
    except fileio.FileFormatError as err:
        raise CheckpointError(str(err)) from None
    meta_text = _text(path, stored.pop(META_KEY, None), META_KEY)
    digest = _text(path, stored.pop(DIGEST_KEY, None), DIGEST_KEY)
    meta = None
    if meta_text is not None:
        try:
            meta = json.loads(meta_text)
        except ValueError as err:
            raise CheckpointError(f"{path}: its metadata is not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"{path}: its metadata must be a JSON object, got {type(meta).__name__}")
    if digest is None or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise CheckpointError(f"{path}: no valid SHA-256 digest of the weights ({DIGEST_KEY}); the checkpoint was "
                              f"written by an older s2jax or altered: train again to replace it")
    if fileio.arrays_digest(stored) != digest:
        raise CheckpointError(f"{path}: the weights do not match their stored SHA-256 digest (altered or "
                              f"corrupt); refused")
    for key, arr in sorted(stored.items()):
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            raise CheckpointError(f"{path}: weight {key!r} holds non-finite values (NaN or inf); refused")
    return meta, stored


def read_meta(path) -> dict | None:
    """The metadata stored with the weights of a checkpoint, or None when there is no file or no
    metadata. The whole checkpoint is checked (module docstring): :class:`CheckpointError` if not sound."""
    path = Path(path).with_suffix(".npz")
    if not path.exists():
        return None
    return _read(path)[0]


def load_model(path, model):
    """Fill ``model`` (built with the same structure) from the checkpoint at ``path``; returns it.
    Raises :class:`CheckpointError` for a checkpoint that is not sound (module docstring) and
    ``ValueError`` for one of another structure; ``model`` is untouched on any error."""
    path = Path(path).with_suffix(".npz")
    _, stored = _read(path)
    flat = _flat(model)
    missing, extra = sorted(set(flat) - set(stored)), sorted(set(stored) - set(flat))
    if missing or extra:
        raise ValueError(f"{path}: checkpoint does not match the model (missing {missing}, unexpected {extra})")
    for key, var in flat.items():
        if stored[key].shape != np.shape(var[...]):
            raise ValueError(f"{path}: {key} has shape {stored[key].shape}, the model expects {np.shape(var[...])}")
    for key, var in flat.items():
        var[...] = jnp.asarray(stored[key], dtype=np.asarray(var[...]).dtype)
    return model


def report_ignored(stage: str, path, err: Exception, quiet: bool = False):
    """Say on stderr (unless ``quiet``) that a resumed ``stage`` ignores its checkpoint at ``path``
    because of ``err``, and trains again (the new weights replace the file)."""
    if quiet:
        return
    detail = err if isinstance(err, fileio.FileFormatError) else \
        f"{Path(path).with_suffix('.npz')}: {type(err).__name__}: {err}"
    print(f"{stage} stage: ignoring its checkpoint ({detail}); training the stage again", file=sys.stderr)
