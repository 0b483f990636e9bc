"""Event data for spiking networks: tonic's dataset layouts read offline, framed into chip ticks.

::

    from s2jax import data
    frames = data.FrameConfig(ticks=20, spatial_factor=0.25, denoise_us=10_000)
    train = data.load("dvsgesture", "~/datasets", "train", frames, cache_dir="~/.cache/s2jax")
    for x, y in data.batches(train, 32, seed=0):   # x: (32, 20, 2, 32, 32) float32 spikes
        ...
    toy = data.synthetic_gestures(256, frames)      # no files needed

Nothing here downloads: :func:`load` reads a folder in tonic's layout (``s2jax.data.folders``).
tonic (the ``data`` extra: ``pip install -e ".[data]"``) is imported only to read SHD and N-MNIST
files and to denoise events, so ``import s2jax.data`` and the synthetic data work without it.
"""

from s2jax.data.cache import cache_key, cache_path
from s2jax.data.dataset import SpikeData, batches, chip_input, frame_samples, load
from s2jax.data.folders import DVS_DTYPE, LAYOUTS, DatasetLayoutError, EventFolder, open_folder
from s2jax.data.synthetic import CLASSES as SYNTHETIC_CLASSES
from s2jax.data.synthetic import gesture_events, synthetic_events, synthetic_gestures, write_dvsgesture
from s2jax.data.transforms import FrameConfig, frame_events, frame_shape, require_tonic

__all__ = ["DVS_DTYPE", "LAYOUTS", "SYNTHETIC_CLASSES", "DatasetLayoutError", "EventFolder", "FrameConfig",
           "SpikeData", "batches", "cache_key", "cache_path", "chip_input", "frame_events", "frame_samples",
           "frame_shape", "gesture_events", "load", "open_folder", "require_tonic", "synthetic_events",
           "synthetic_gestures", "write_dvsgesture"]
