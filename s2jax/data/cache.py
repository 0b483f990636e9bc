"""The framed-dataset cache: one ``.npz`` per (dataset, split, settings), written atomically.

The file name carries a key: the first 20 hex digits of the SHA-256 of a JSON document holding
the dataset name, the split, every transform parameter (:meth:`FrameConfig.params`), the source
fingerprint (relative file names and sizes) and the cache format version. Changing any of them
gives another file; the document itself is stored in the file and compared on load.

Format (no pickle; read with ``allow_pickle=False``): ``spikes`` (``np.packbits`` of each sample's
0/1 frames, uint8, ``(N, ceil(T*C*H*W / 8))``), ``shape`` (int64 ``(N, T, C, H, W)``), ``labels``
(int32 ``(N,)``), ``key`` (the JSON document, a unicode scalar). A file that cannot be read or
does not match is rebuilt. Writes go to a temporary file in the same folder that is renamed into
place, so an interrupted build never leaves a partial cache file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["FORMAT_VERSION", "cache_key", "cache_path", "load_cached", "save_cached"]

FORMAT_VERSION = 1


def cache_key(dataset: str, split: str, params: dict, fingerprint=()) -> tuple[str, str]:
    """``(key, document)``: the hex key of the cache file and the JSON document it hashes."""
    doc = json.dumps({"dataset": dataset, "split": split, "params": params, "source": fingerprint,
                      "format": FORMAT_VERSION}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()[:20], doc


def cache_path(cache_dir, dataset: str, split: str, key: str) -> Path:
    return Path(cache_dir) / f"{dataset}-{split}-{key}.npz"


def load_cached(path, document: str):
    """``(spikes uint8 (N, T, C, H, W), labels int32)`` from ``path``, or None when there is no
    usable file (missing, unreadable or made with other settings; the last two warn)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if sorted(f.files) != ["key", "labels", "shape", "spikes"] or str(f["key"][()]) != document:
                raise ValueError("its settings differ")
            shape = tuple(int(s) for s in f["shape"])
            labels = np.asarray(f["labels"], np.int32)
            bits = f["spikes"]
            per_sample = int(np.prod(shape[1:]))
            if len(shape) != 5 or labels.shape != (shape[0],) or bits.shape != (shape[0], -(-per_sample // 8)):
                raise ValueError(f"its arrays disagree: shape {shape}, labels {labels.shape}, bits {bits.shape}")
            spikes = np.unpackbits(bits, axis=1, count=per_sample).reshape(shape)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        warnings.warn(f"ignoring the cache file {path} ({e}); rebuilding it", stacklevel=3)
        return None
    return spikes, labels


def save_cached(path, spikes: np.ndarray, labels: np.ndarray, document: str) -> Path:
    """Write the cache file atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spikes = np.asarray(spikes, np.uint8)
    arrays = {"spikes": np.packbits(spikes.reshape(len(spikes), -1), axis=1),
              "shape": np.asarray(spikes.shape, np.int64), "labels": np.asarray(labels, np.int32),
              "key": np.asarray(document)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
