"""Event streams to chip spike tensors: denoise, downsample, one frame per chip tick.

An event stream is a NumPy structured array in tonic's convention: fields ``x`` (and ``y`` for a
camera), ``p`` (polarity) and ``t`` (microseconds), sensor size ``(W, H, P)``. A sample becomes a
``(T, C, H, W)`` array of 0/1 spikes, ``C = P`` (the polarity channels), one frame per chip tick:

1. ``denoise_us`` (optional): tonic's ``Denoise(filter_time=denoise_us)``: an event is kept when one
   of its 4 neighbour pixels had an event less than ``denoise_us`` before it.
2. ``spatial_factor``: as tonic's ``Downsample(spatial_factor=...)``: ``x -> int(x * f)`` (truncated),
   so the sensor becomes ``floor((W - 1) f) + 1`` pixels wide.
3. as tonic's ``ToFrame``: ``tick_us=None`` cuts each recording into ``ticks`` equal time bins
   (``n_time_bins``: bins of ``(t_last - t_first) // ticks`` from the first event, so a few events
   at the end fall outside); ``tick_us`` gives windows of that length from the sample's first event
   (``time_window``), cropped or zero-padded to ``ticks``.
4. A pixel spikes in a tick when it received at least ``min_count`` events (the chip's inputs are
   spikes, 0 or 1 per neuron and tick, not counts).

Steps 2 to 4 are computed here with NumPy (the tests check them against tonic's transforms, frame
for frame), so synthetic data needs no tonic. Only ``denoise_us`` calls tonic, imported inside
:func:`frame_events`; without it that raises an ImportError that says how to install it
(``pip install -e ".[data]"``). Events outside the sensor, or two polarities on a one-polarity
sensor, are a ValueError naming the field, the value and the limit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["FrameConfig", "require_tonic", "frame_events", "frame_shape", "downsampled_size"]

INSTALL_HINT = 'pip install -e ".[data]"  (in the s2jax repository; or: pip install "tonic>=1.7")'


def require_tonic():
    """Import tonic, or raise an ImportError naming the extra that installs it."""
    try:
        import tonic  # noqa: PLC0415 (lazy on purpose: `import s2jax` must not need tonic)
        import tonic.transforms  # noqa: F401, PLC0415
    except ImportError as e:
        raise ImportError(f"s2jax.data needs tonic to read recorded datasets and to denoise events: "
                          f"{INSTALL_HINT}") from e
    return tonic


@dataclass(frozen=True)
class FrameConfig:
    """How an event stream becomes a ``(ticks, C, H, W)`` spike tensor (module docstring).

    ``ticks``: frames per sample, one per chip tick. ``tick_us``: window length in microseconds, or
    None to split each recording into ``ticks`` equal bins. ``spatial_factor``: downsampling factor
    in (0, 1]. ``denoise_us``: tonic Denoise filter time in microseconds, or None. ``min_count``:
    events a pixel needs in one tick to spike.
    """

    ticks: int = 20
    tick_us: float | None = None
    spatial_factor: float = 1.0
    denoise_us: float | None = None
    min_count: int = 1

    def __post_init__(self):
        if isinstance(self.ticks, bool) or not isinstance(self.ticks, (int, np.integer)) or self.ticks < 1:
            raise ValueError(f"FrameConfig.ticks must be a positive integer, got {self.ticks!r}")
        if self.tick_us is not None and not (np.isfinite(self.tick_us) and self.tick_us > 0):
            raise ValueError(f"FrameConfig.tick_us must be a positive number of microseconds or None, "
                             f"got {self.tick_us!r}")
        if not (0.0 < self.spatial_factor <= 1.0):
            raise ValueError(f"FrameConfig.spatial_factor must be in (0, 1], got {self.spatial_factor!r}")
        if self.denoise_us is not None and not (np.isfinite(self.denoise_us) and self.denoise_us > 0):
            raise ValueError(f"FrameConfig.denoise_us must be a positive number of microseconds or None, "
                             f"got {self.denoise_us!r}")
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, (int, np.integer)) or self.min_count < 1:
            raise ValueError(f"FrameConfig.min_count must be a positive integer, got {self.min_count!r}")

    def params(self) -> dict:
        """The settings as plain JSON values (part of every cache key)."""
        return {k: (None if v is None else float(v) if isinstance(v, float) else int(v))
                for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes) -> "FrameConfig":
        return dataclasses.replace(self, **changes)


def downsampled_size(sensor_size, factor: float) -> tuple[int, int, int]:
    """Sensor size ``(W, H, P)`` after tonic's ``Downsample(spatial_factor=factor)`` (truncation)."""
    w, h, p = (int(s) for s in sensor_size)
    if factor == 1.0:
        return w, h, p
    return int(np.floor((w - 1) * factor)) + 1, int(np.floor((h - 1) * factor)) + 1, p


def frame_shape(sensor_size, config: FrameConfig) -> tuple[int, int, int]:
    """``(C, H, W)`` of one frame for a sensor ``(W, H, P)``."""
    w, h, p = downsampled_size(sensor_size, config.spatial_factor)
    return p, h, w


def _downsample(ev: np.ndarray, factor: float) -> np.ndarray:
    """``x -> int(x * factor)`` and ``y`` alike (truncated, as tonic's ``Downsample``), on a copy."""
    ev = ev.copy()
    for field in ("x", "y"):
        if field in ev.dtype.names:
            ev[field] = ev[field] * factor  # float64 product, truncated by the integer field
    return ev


def _slices(t: np.ndarray, config: FrameConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(first, stop)`` event index of each tick's window (events sorted by time, as recorded)."""
    if config.tick_us is None:  # n_time_bins: ``ticks`` windows of (t_last - t_first) // ticks
        n, window = config.ticks, (t[-1] - t[0]) // config.ticks
    else:  # time_window with the last, incomplete window included; later ticks are cropped anyway
        window = float(config.tick_us)
        n = max(int(np.ceil((t[-1] - t[0] - window) / window) + 1), 1)
        n = min(n, config.ticks)
    starts = np.arange(n) * window + t[0]
    return np.searchsorted(t, starts), np.searchsorted(t, starts + window)


def frame_events(events: np.ndarray, sensor_size, config: FrameConfig) -> np.ndarray:
    """One recording as a ``(config.ticks, C, H, W)`` uint8 array of 0/1 spikes (module docstring).

    ``sensor_size`` is ``(W, H, P)``; events without a ``y`` field (audio, e.g. SHD) give ``H = 1``.
    """
    c, h, w = frame_shape(sensor_size, config)
    out = np.zeros((config.ticks, c, h, w), np.uint8)
    ev = np.array(events, copy=True)
    if config.denoise_us is not None and len(ev):
        require_tonic()
        from tonic import transforms as T  # noqa: PLC0415

        ev = T.Denoise(filter_time=float(config.denoise_us))(ev)
    if config.spatial_factor != 1.0 and len(ev):
        ev = _downsample(ev, config.spatial_factor)
    if len(ev) == 0:
        return out
    x = np.asarray(ev["x"], np.int64)
    y = np.asarray(ev["y"], np.int64) if "y" in ev.dtype.names else np.zeros(len(ev), np.int64)
    p = np.asarray(ev["p"]).astype(np.int64)
    if c == 1:  # a one-polarity sensor (e.g. SHD): every event goes to channel 0
        if len(np.unique(p)) > 1:
            raise ValueError(f"events hold polarities {np.unique(p).tolist()} but the sensor {tuple(sensor_size)} "
                             f"has one polarity")
        p = np.zeros_like(p)
    for name, v, size in (("x", x, w), ("y", y, h), ("p", p, c)):
        bad = (v < 0) | (v >= size)
        if bad.any():
            raise ValueError(f"event {name}={int(v[bad][0])} outside the sensor: {name} must be in 0..{size - 1} "
                             f"(sensor (W, H, P) {tuple(int(s) for s in sensor_size)}, spatial_factor "
                             f"{config.spatial_factor})")
    counts = np.zeros((config.ticks, c, h, w), np.int64)
    for tick, (lo, hi) in enumerate(zip(*_slices(np.asarray(ev["t"]), config))):
        np.add.at(counts, (tick, p[lo:hi], y[lo:hi], x[lo:hi]), 1)
    out[:] = counts >= config.min_count
    return out
