"""Event streams to chip spike tensors: denoise, downsample, one frame per chip tick.

An event stream is a NumPy structured array in tonic's convention: fields ``x`` (and ``y`` for a
camera), ``p`` (polarity) and ``t`` (microseconds), sensor size ``(W, H, P)``. A sample becomes a
``(T, C, H, W)`` array of 0/1 spikes, ``C = P`` (the polarity channels), one frame per chip tick:

1. ``denoise_us`` (optional): tonic's ``Denoise(filter_time=denoise_us)``: an event is kept when one
   of its 4 neighbour pixels had an event less than ``denoise_us`` before it.
2. ``spatial_factor``: tonic's ``Downsample(spatial_factor=...)``: ``x -> int(x * f)`` (truncated),
   so the sensor becomes ``floor((W - 1) f) + 1`` pixels wide.
3. tonic's ``ToFrame``: ``tick_us=None`` cuts each recording into ``ticks`` equal time bins
   (``n_time_bins``; tonic drops a few events at bin edges); ``tick_us`` gives windows of that length
   from the sample's first event (``time_window``), cropped or zero-padded to ``ticks``.
4. A pixel spikes in a tick when it received at least ``min_count`` events (the chip's inputs are
   spikes, 0 or 1 per neuron and tick, not counts).

tonic is imported only inside the functions that need it; without it they raise an ImportError
that says how to install it (``pip install "s2jax[data]"``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["FrameConfig", "require_tonic", "frame_events", "frame_shape", "downsampled_size"]

INSTALL_HINT = 'pip install "s2jax[data]"  (or: pip install "tonic>=1.7")'


def require_tonic():
    """Import tonic, or raise an ImportError naming the extra that installs it."""
    try:
        import tonic  # noqa: PLC0415 (lazy on purpose: `import s2jax` must not need tonic)
        import tonic.transforms  # noqa: F401, PLC0415
    except ImportError as e:
        raise ImportError(f"s2jax.data needs tonic to read and frame event data: {INSTALL_HINT}") from e
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


def frame_events(events: np.ndarray, sensor_size, config: FrameConfig) -> np.ndarray:
    """One recording as a ``(config.ticks, C, H, W)`` uint8 array of 0/1 spikes (module docstring).

    ``sensor_size`` is ``(W, H, P)``; events without a ``y`` field (audio, e.g. SHD) give ``H = 1``.
    """
    require_tonic()
    from tonic import transforms as T  # noqa: PLC0415

    c, h, w = frame_shape(sensor_size, config)
    out = np.zeros((config.ticks, c, h, w), np.uint8)
    ev = np.array(events, copy=True)  # tonic's ToFrame writes into the polarity field of its input
    if config.denoise_us is not None and len(ev):
        ev = T.Denoise(filter_time=float(config.denoise_us))(ev)
    if config.spatial_factor != 1.0 and len(ev):
        ev = T.Downsample(spatial_factor=config.spatial_factor)(ev)
    if len(ev) == 0:  # tonic's ToFrame returns a wrongly shaped array for an empty stream
        return out
    size = downsampled_size(sensor_size, config.spatial_factor)
    if config.tick_us is None:
        to_frame = T.ToFrame(sensor_size=size, n_time_bins=config.ticks)
    else:
        to_frame = T.ToFrame(sensor_size=size, time_window=float(config.tick_us), include_incomplete=True)
    frames = np.asarray(to_frame(ev)).reshape(-1, c, h, w)[: config.ticks]
    out[: len(frames)] = frames >= config.min_count
    return out
