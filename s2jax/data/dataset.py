"""Framed datasets in memory: :class:`SpikeData`, :func:`load` (folder -> cache -> spikes) and batching.

A :class:`SpikeData` holds every sample of one split as 0/1 spikes ``(N, T, C, H, W)`` (uint8) with
int32 labels. :func:`batches` yields ``(B, T, C, H, W)`` float32 spike batches for ``layers.SNN``;
:func:`chip_input` turns such a batch into the ``(B, T, C*H*W)`` boolean input of the chip model
(neurons in C, H, W order, as ``quant.quantize`` numbers them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2jax.data.cache import cache_key, cache_path, load_cached, save_cached
from s2jax.data.folders import open_folder
from s2jax.data.transforms import FrameConfig, frame_events, frame_shape

__all__ = ["SpikeData", "load", "frame_samples", "batches", "chip_input"]


@dataclass(frozen=True)
class SpikeData:
    """``spikes`` uint8 ``(N, T, C, H, W)`` of 0/1, ``labels`` int32 ``(N,)``, class names, a name."""

    spikes: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str = ""

    def __post_init__(self):
        if self.spikes.ndim != 5:
            raise ValueError(f"SpikeData.spikes must be (N, T, C, H, W), got shape {self.spikes.shape}")
        if self.labels.shape != (self.spikes.shape[0],):
            raise ValueError(f"SpikeData: {self.spikes.shape[0]} samples but labels of shape {self.labels.shape}")

    def __len__(self):
        return int(self.spikes.shape[0])

    @property
    def sample_shape(self) -> tuple[int, int, int, int]:
        """``(T, C, H, W)``."""
        return tuple(int(s) for s in self.spikes.shape[1:])

    def subset(self, index) -> "SpikeData":
        index = np.asarray(index)
        return SpikeData(self.spikes[index], self.labels[index], self.classes, self.name)

    def split(self, fraction: float, seed: int = 0) -> tuple["SpikeData", "SpikeData"]:
        """A random ``(1 - fraction, fraction)`` split, e.g. training and validation data."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"split fraction must be in (0, 1), got {fraction}")
        order = np.random.default_rng(seed).permutation(len(self))
        k = max(1, int(round(fraction * len(self))))
        return self.subset(np.sort(order[k:])), self.subset(np.sort(order[:k]))


def frame_samples(read, n: int, sensor_size, frames: FrameConfig, *, desc: str = "framing", progress: bool = True):
    """Frame ``n`` recordings (``read(i)`` gives one event array) into ``(n, T, C, H, W)`` uint8."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    out = np.zeros((n, frames.ticks, *frame_shape(sensor_size, frames)), np.uint8)
    for i in tqdm(range(n), desc=desc, unit="sample", disable=not progress, dynamic_ncols=True):
        out[i] = frame_events(read(i), sensor_size, frames)
    return out


def load(name: str, root, split: str = "train", frames: FrameConfig = FrameConfig(), *, cache_dir=None,
         progress: bool = True) -> SpikeData:
    """Split ``split`` of dataset ``name`` ("dvsgesture", "shd", "nmnist") from the folder ``root``.

    Reads tonic's on-disk layout (:mod:`s2jax.data.folders`, never downloads), frames every sample
    with ``frames`` (:mod:`s2jax.data.transforms`) and, with ``cache_dir``, keeps the result in a
    cache file keyed by the dataset, split, frame settings and source files
    (:mod:`s2jax.data.cache`): a second call with the same settings reads only that file.
    A missing or malformed folder raises ``DatasetLayoutError`` before anything is written.
    """
    folder = open_folder(name, root, split)
    path = document = None
    if cache_dir is not None:
        key, document = cache_key(name, split, frames.params(), folder.fingerprint)
        path = cache_path(cache_dir, name, split, key)
        hit = load_cached(path, document)
        if hit is not None:
            return SpikeData(hit[0], hit[1], folder.classes, f"{name}-{split}")
    spikes = frame_samples(folder.read, len(folder), folder.sensor_size, frames, desc=f"{name} {split}",
                           progress=progress)
    if path is not None:
        save_cached(path, spikes, folder.labels, document)
    return SpikeData(spikes, folder.labels, folder.classes, f"{name}-{split}")


def batches(data: SpikeData, batch_size: int, *, seed: int | None = None, drop_last: bool = False):
    """Yield ``(spikes float32 (B, T, C, H, W), labels int32 (B,))`` over ``data`` once.

    ``seed``: shuffle with ``numpy.random.default_rng(seed)`` (None keeps the order).
    ``drop_last``: skip the last, smaller batch (so every batch has one shape: one compilation).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = np.arange(len(data)) if seed is None else np.random.default_rng(seed).permutation(len(data))
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for lo in range(0, stop, batch_size):
        idx = order[lo: lo + batch_size]
        yield data.spikes[idx].astype(np.float32), data.labels[idx]


def chip_input(spikes) -> np.ndarray:
    """``(B, T, C, H, W)`` spikes as the chip model's ``(B, T, C*H*W)`` boolean input (C, H, W order)."""
    x = np.asarray(spikes)
    return x.reshape(*x.shape[:2], -1) > 0
