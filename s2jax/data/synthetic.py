"""A synthetic, gesture-like event camera: moving bright discs, with sensor noise.

Each sample is a disc of random radius moving across a ``W x H`` sensor; a pixel the disc's edge
enters emits an ON event, one it leaves an OFF event (each with probability ``edge_rate``, at a
random time inside the motion step), as a DVS sees a bright object moving over a dark background;
on top come uniformly scattered noise events of random polarity (``noise`` per pixel per sample).
Classes (:data:`CLASSES`): four swipes (right, left, down, up) with a random lateral offset, start
and end, and two circles (clockwise, counter-clockwise on screen, ``y`` pointing down) of random
radius, centre and starting angle. A swipe's direction shows in the polarity layout of each frame
(ON at the leading edge, OFF at the trailing one); the two circles cover the same ring and differ
only in the order and polarity of the events.

Events use tonic's DVSGesture dtype (:data:`s2jax.data.folders.DVS_DTYPE`, times in microseconds),
so they go through the same transforms as recorded data. Every sample is drawn from
``numpy.random.default_rng([seed, index])``: sample ``i`` is the same whatever ``n`` is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2jax.data.dataset import SpikeData, frame_samples
from s2jax.data.folders import DVS_DTYPE
from s2jax.data.transforms import FrameConfig

__all__ = ["CLASSES", "gesture_events", "synthetic_events", "synthetic_gestures", "write_dvsgesture"]

CLASSES = ("swipe right", "swipe left", "swipe down", "swipe up", "circle clockwise", "circle counter-clockwise")


def _trajectory(label: int, rng, w: int, h: int, s: np.ndarray):
    """Disc centres ``(x, y)`` at motion fractions ``s`` in [0, 1]."""
    if label < 4:
        lo, hi = rng.uniform(0.1, 0.25), rng.uniform(0.75, 0.9)
        along = lo + (hi - lo) * s
        if label in (1, 3):
            along = 1.0 - along
        across = np.full_like(s, rng.uniform(0.3, 0.7))
        fx, fy = (along, across) if label < 2 else (across, along)
        return fx * (w - 1), fy * (h - 1)
    turn = rng.uniform(0.7, 1.0) * 2 * np.pi * (1.0 if label == 4 else -1.0)
    phase = rng.uniform(0, 2 * np.pi) + turn * s
    radius = rng.uniform(0.22, 0.32) * min(w, h)
    cx, cy = (w - 1) * rng.uniform(0.45, 0.55), (h - 1) * rng.uniform(0.45, 0.55)
    return cx + radius * np.cos(phase), cy + radius * np.sin(phase)


def gesture_events(label: int, rng, *, sensor=(32, 32), duration_us: int = 500_000, steps: int = 64,
                   edge_rate: float = 0.7, noise: float = 0.5) -> np.ndarray:
    """One synthetic recording of class ``label`` (module docstring), sorted by time."""
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label must be in 0..{len(CLASSES) - 1}, got {label}")
    w, h = sensor
    s = np.linspace(0.0, 1.0, steps + 1)
    cx, cy = _trajectory(label, rng, w, h, s)
    r = rng.uniform(0.1, 0.16) * min(w, h)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2 < r * r  # (steps+1, h, w)
    dt = duration_us / steps
    parts = []
    for polarity, change in ((1, inside[1:] & ~inside[:-1]), (0, ~inside[1:] & inside[:-1])):
        k, y, x = np.nonzero(change & (rng.random(change.shape) < edge_rate))
        parts.append((x, y, np.full(len(k), polarity), (k + rng.random(len(k))) * dt))
    m = rng.poisson(noise * w * h)
    parts.append((rng.integers(0, w, m), rng.integers(0, h, m), rng.integers(0, 2, m), rng.random(m) * duration_us))
    x, y, p, t = (np.concatenate(c) for c in zip(*parts))
    ev = np.zeros(len(t), DVS_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = x, y, p.astype(bool), np.floor(t).astype(np.int64)
    return ev[np.argsort(ev["t"], kind="stable")]


def synthetic_events(n: int, *, seed: int = 0, classes: int = len(CLASSES), **kwargs):
    """``(events list, labels int32)``: ``n`` recordings, labels cycling over the first ``classes``
    classes (balanced), each drawn from ``default_rng([seed, i])``; ``kwargs`` go to :func:`gesture_events`."""
    if not 1 <= classes <= len(CLASSES):
        raise ValueError(f"classes must be in 1..{len(CLASSES)}, got {classes}")
    labels = np.arange(n, dtype=np.int32) % classes
    return [gesture_events(int(labels[i]), np.random.default_rng([seed, i]), **kwargs) for i in range(n)], labels


def synthetic_gestures(n: int, frames: FrameConfig = FrameConfig(ticks=12, spatial_factor=0.5), *, seed: int = 0,
                       classes: int = len(CLASSES), sensor=(32, 32), progress: bool = False, **kwargs) -> SpikeData:
    """``n`` synthetic recordings framed with ``frames``, as recorded data (no tonic needed unless
    ``frames.denoise_us`` is set)."""
    events, labels = synthetic_events(n, seed=seed, classes=classes, sensor=sensor, **kwargs)
    spikes = frame_samples(events.__getitem__, n, (*sensor, 2), frames, desc="synthetic gestures", progress=progress)
    return SpikeData(spikes, labels, CLASSES[:classes], f"synthetic-{seed}")


def write_dvsgesture(root, events, labels, split: str = "train") -> Path:
    """Write recordings in tonic's DVSGesture layout under ``root`` (``root/DVSGesture/...``): files
    ``userNN_synthetic/<label>.npy`` of int64 rows ``(x, y, p, t_ms)`` (times floored to milliseconds).
    A session holds one recording per label, so the k-th recording of a label goes to ``user<k+1>``.
    Returns the split folder."""
    folder = Path(root) / "DVSGesture" / {"train": "ibmGestureTrain", "test": "ibmGestureTest"}[split]
    used: dict = {}
    for ev, label in zip(events, labels):
        k = used.get(int(label), 0)
        used[int(label)] = k + 1
        session = folder / f"user{k + 1:02d}_synthetic"
        session.mkdir(parents=True, exist_ok=True)
        rows = np.stack([ev["x"], ev["y"], ev["p"], ev["t"] // 1000], axis=1).astype(np.int64)
        np.save(session / f"{int(label)}.npy", rows, allow_pickle=False)
    return folder
