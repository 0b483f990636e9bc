"""The framed-dataset cache: one ``.npz`` per (dataset, split, settings), written atomically.

The file name carries a key: the first 20 hex digits of the SHA-256 of a JSON document holding
the dataset name, the split, every transform parameter (:meth:`FrameConfig.params`), the source
fingerprint (relative file names and sizes) and the cache format version. Changing any of them
gives another file; the document itself is stored in the file and compared on load.

Format (no pickle; read with ``allow_pickle=False``): ``spikes`` (``np.packbits`` of each sample's
0/1 frames, uint8, ``(N, ceil(T*C*H*W / 8))``), ``shape`` (int64 ``(N, T, C, H, W)``), ``labels``
(int32 ``(N,)``), ``key`` (the JSON document, a unicode scalar). A file that cannot be read
(:func:`s2jax.io.load_npz`: truncated, corrupt, unexpected arrays or dtypes) or does not match
is rebuilt. Writes go through :func:`s2jax.io.save_npz` (a temporary file in the same folder,
synced to disk, then renamed), so an interrupted build never leaves a partial cache file.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np

from s2jax import io as fileio

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
        f = fileio.load_npz(path, what="dataset cache file", keys={"key", "labels", "shape", "spikes"})
        if sorted(f) != ["key", "labels", "shape", "spikes"] or f["key"].dtype.kind != "U" \
                or str(f["key"][()]) != document:
            raise ValueError("its settings differ")
        if f["shape"].dtype.kind not in "iu" or f["shape"].shape != (5,) or np.any(f["shape"] < 0):
            raise ValueError(f"its shape array is not 5 non-negative integers: {f['shape']!r}")
        shape = tuple(int(s) for s in f["shape"])
        labels, bits = f["labels"], f["spikes"]
        per_sample = math.prod(shape[1:])
        if labels.dtype.kind not in "iu" or bits.dtype != np.uint8 or labels.shape != (shape[0],) \
                or bits.shape != (shape[0], -(-per_sample // 8)):
            raise ValueError(f"its arrays disagree: shape {shape}, labels {labels.shape} {labels.dtype}, "
                             f"bits {bits.shape} {bits.dtype}")
        labels = labels.astype(np.int32)
        spikes = np.unpackbits(bits, axis=1, count=per_sample).reshape(shape)
    except (OSError, ValueError) as e:
        warnings.warn(f"ignoring the cache file {path} ({e}); rebuilding it", stacklevel=3)
        return None
    return spikes, labels


def save_cached(path, spikes: np.ndarray, labels: np.ndarray, document: str) -> Path:
    """Write the cache file atomically (:func:`s2jax.io.save_npz`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spikes = np.asarray(spikes, np.uint8)
    arrays = {"spikes": np.packbits(spikes.reshape(len(spikes), -1), axis=1),
              "shape": np.asarray(spikes.shape, np.int64), "labels": np.asarray(labels, np.int32),
              "key": np.asarray(document)}
    return fileio.save_npz(path, arrays)
