"""Event datasets read from a folder the user already has: DVSGesture, SHD and N-MNIST.

Nothing is ever downloaded. The folders are tonic's on-disk layouts (what ``tonic.datasets``
leaves after its download and extraction), read directly, so the archives need not be present:

DVSGesture (tonic's preprocessed release, 11 classes, sensor 128 x 128 x 2)::

    ROOT/DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy ... 10.npy
    ROOT/DVSGesture/ibmGestureTest/user24_led/0.npy ...

  one folder ``userNN_<lighting>`` per recording session, one file ``<label>.npy`` per gesture:
  an integer array of rows ``(x, y, p, t_ms)`` (times become microseconds, as in tonic).

SHD (Spiking Heidelberg Digits, 20 classes, 700 channels)::

    ROOT/SHD/shd_train.h5, ROOT/SHD/shd_test.h5

  HDF5 with ``spikes/times`` (seconds, one variable-length row per sample), ``spikes/units`` and
  ``labels`` (unzipped from ``shd_*.h5.zip``).

N-MNIST (10 classes, sensor 34 x 34 x 2)::

    ROOT/NMNIST/Train/0/*.bin ... ROOT/NMNIST/Train/9/*.bin, ROOT/NMNIST/Test/<digit>/*.bin

  the original 40-bit-per-event ``.bin`` files, one folder per digit.

``ROOT`` may also be the dataset folder itself (``.../DVSGesture``). A missing or incomplete
folder raises :class:`DatasetLayoutError` naming the folder and the expected layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from numpy.lib import recfunctions

from s2jax.data.transforms import require_tonic

__all__ = ["DatasetLayoutError", "EventFolder", "LAYOUTS", "open_folder", "DVS_DTYPE"]

DVS_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
"""tonic's DVSGesture event dtype (times in microseconds); the synthetic generator uses it too."""


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder is missing, incomplete or holds a file that is not in the expected format."""


@dataclass(frozen=True)
class Layout:
    name: str
    folder: str
    sensor_size: tuple[int, int, int]  # (W, H, P), tonic's order
    classes: tuple[str, ...]
    splits: tuple[tuple[str, str], ...]  # split -> sub-folder or file name
    text: str  # the layout, as shown in errors


DVS_CLASSES = ("hand clapping", "right hand wave", "left hand wave", "right arm clockwise",
               "right arm counter-clockwise", "left arm clockwise", "left arm counter-clockwise", "arm roll",
               "air drums", "air guitar", "other gestures")

LAYOUTS = {
    "dvsgesture": Layout(
        "dvsgesture", "DVSGesture", (128, 128, 2), DVS_CLASSES,
        (("train", "ibmGestureTrain"), ("test", "ibmGestureTest")),
        "ROOT/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy and ROOT/DVSGesture/ibmGestureTest/...: "
        "one integer array of rows (x, y, p, t_ms) per gesture, label 0-10 as the file name (tonic's "
        "DVSGesture layout after extracting ibmGestureTrain.tar.gz / ibmGestureTest.tar.gz)"),
    "shd": Layout(
        "shd", "SHD", (700, 1, 1), tuple(str(k) for k in range(20)),
        (("train", "shd_train.h5"), ("test", "shd_test.h5")),
        "ROOT/SHD/shd_train.h5 and ROOT/SHD/shd_test.h5 (unzipped from shd_*.h5.zip) with datasets "
        "spikes/times (seconds), spikes/units and labels"),
    "nmnist": Layout(
        "nmnist", "NMNIST", (34, 34, 2), tuple(str(k) for k in range(10)),
        (("train", "Train"), ("test", "Test")),
        "ROOT/NMNIST/Train/<digit 0-9>/*.bin and ROOT/NMNIST/Test/<digit>/*.bin (the N-MNIST .bin files "
        "extracted from train.zip / test.zip)"),
}


@dataclass(frozen=True)
class EventFolder:
    """The samples of one split of a dataset folder: ``read(i)`` gives sample i's events
    (tonic's structured dtype of the dataset, times in microseconds); ``labels`` are int32.
    ``fingerprint`` (relative file names and sizes) goes into cache keys."""

    name: str
    split: str
    path: Path
    sensor_size: tuple[int, int, int]
    classes: tuple[str, ...]
    labels: np.ndarray
    fingerprint: tuple
    read: Callable[[int], np.ndarray] = field(repr=False)

    def __len__(self):
        return len(self.labels)


def _error(layout: Layout, where: Path, problem: str) -> DatasetLayoutError:
    return DatasetLayoutError(f"{layout.name}: {problem} (looked in {where}). Expected layout: {layout.text}. "
                              f"s2jax never downloads datasets: fetch and extract them yourself, then pass the "
                              f"folder that contains {layout.folder}/")


def _dataset_dir(layout: Layout, root: Path, split_name: str) -> Path:
    """ROOT/<folder> when it exists, else ROOT itself when it already holds the split."""
    if (root / layout.folder).is_dir():
        return root / layout.folder
    if (root / split_name).exists():
        return root
    if not root.exists():
        raise _error(layout, root, f"folder {root} does not exist")
    raise _error(layout, root, f"folder {root / layout.folder} does not exist")


def open_folder(name: str, root, split: str = "train") -> EventFolder:
    """The samples of ``split`` ("train" or "test") of dataset ``name`` under ``root``.

    Listing checks the layout (file names, labels, HDF5 keys); each file's content is checked
    when it is read. Raises :class:`DatasetLayoutError` naming the folder and the expected layout.
    """
    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(LAYOUTS)}")
    layout = LAYOUTS[name]
    splits = dict(layout.splits)
    if split not in splits:
        raise ValueError(f"{name}: unknown split {split!r}; choose from {sorted(splits)}")
    root = Path(root).expanduser()
    base = _dataset_dir(layout, root, splits[split])
    opener = {"dvsgesture": _open_dvsgesture, "shd": _open_shd, "nmnist": _open_nmnist}[name]
    return opener(layout, base, split, base / splits[split])


# --- DVSGesture ------------------------------------------------------------------------------------

_SESSION = re.compile(r"^user(\d+)_(.+)$")


def _open_dvsgesture(layout, base, split, path) -> EventFolder:
    if not path.is_dir():
        raise _error(layout, base, f"split folder {path} does not exist")
    files, labels = [], []
    for session in sorted(p for p in path.iterdir() if p.is_dir() and _SESSION.match(p.name)):
        for f in sorted(session.glob("*.npy"), key=lambda p: (len(p.stem), p.stem)):
            if not f.stem.isdigit() or not 0 <= int(f.stem) < len(layout.classes):
                raise _error(layout, path, f"file {f} is not named <label>.npy with a label "
                                           f"0-{len(layout.classes) - 1}")
            files.append(f)
            labels.append(int(f.stem))
    if not files:
        raise _error(layout, path, f"split folder {path} holds no userNN_<lighting>/<label>.npy files")

    def read(i: int) -> np.ndarray:
        f = files[i]
        try:
            raw = np.load(f, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise _error(layout, f.parent, f"cannot read {f}: {e}") from None
        if raw.ndim != 2 or raw.shape[1] != 4 or raw.dtype.kind not in "iuf":
            raise _error(layout, f.parent, f"{f} holds a {raw.dtype} array of shape {raw.shape}, "
                                           f"not rows (x, y, p, t_ms)")
        raw = raw.copy()
        raw[:, 3] *= 1000  # milliseconds -> microseconds, as tonic.datasets.DVSGesture
        events = recfunctions.unstructured_to_structured(raw, DVS_DTYPE)
        _check_range(layout, f, events)
        return events

    return EventFolder(layout.name, split, path, layout.sensor_size, layout.classes, np.asarray(labels, np.int32),
                       _fingerprint(path, files), read)


def _check_range(layout, where, events):
    w, h, _ = layout.sensor_size
    for axis, size in (("x", w), ("y", h)):
        if axis in events.dtype.names and len(events):
            lo, hi = int(events[axis].min()), int(events[axis].max())
            if lo < 0 or hi >= size:
                raise _error(layout, Path(where).parent, f"{where}: {axis} ranges over [{lo}, {hi}], outside the "
                                                         f"sensor's [0, {size - 1}]")


def _fingerprint(path: Path, files) -> tuple:
    return tuple((str(f.relative_to(path)), f.stat().st_size) for f in files)


# --- SHD -------------------------------------------------------------------------------------------

SHD_DTYPE = np.dtype([("t", int), ("x", int), ("p", int)])


def _open_shd(layout, base, split, path) -> EventFolder:
    import h5py  # noqa: PLC0415

    if not path.is_file():
        zipped = path.with_name(path.name + ".zip")
        hint = f" ({zipped.name} is there: unzip it)" if zipped.exists() else ""
        raise _error(layout, base, f"file {path} does not exist{hint}")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("spikes/times", "spikes/units", "labels") if k not in f]
            if missing:
                raise _error(layout, base, f"{path} lacks the datasets {missing}")
            labels = np.asarray(f["labels"][()], np.int64)
            n_times, n_units = len(f["spikes/times"]), len(f["spikes/units"])
    except OSError as e:
        raise _error(layout, base, f"cannot read {path}: {e}") from None
    if not (len(labels) == n_times == n_units) or len(labels) == 0:
        raise _error(layout, base, f"{path}: labels, spikes/times and spikes/units have {len(labels)}, {n_times} and "
                                   f"{n_units} rows (they must be equal and non-zero)")
    if labels.min() < 0 or labels.max() >= len(layout.classes):
        raise _error(layout, base, f"{path}: labels range over [{labels.min()}, {labels.max()}], not 0-19")

    def read(i: int) -> np.ndarray:
        tonic = require_tonic()
        with h5py.File(path, "r") as f:
            times = np.asarray(f["spikes/times"][i], np.float64) * 1e6  # seconds -> microseconds, as tonic
            units = np.asarray(f["spikes/units"][i])
        if len(times) != len(units):
            raise _error(layout, base, f"{path}: sample {i} has {len(times)} times and {len(units)} units")
        events = tonic.io.make_structured_array(times, units, 1, dtype=SHD_DTYPE)
        _check_range(layout, path, events)
        return events

    return EventFolder(layout.name, split, path, layout.sensor_size, layout.classes, labels.astype(np.int32),
                       ((path.name, path.stat().st_size, len(labels)),), read)


# --- N-MNIST ---------------------------------------------------------------------------------------

NMNIST_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


def _open_nmnist(layout, base, split, path) -> EventFolder:
    if not path.is_dir():
        raise _error(layout, base, f"split folder {path} does not exist")
    files, labels = [], []
    for digit in range(10):
        folder = path / str(digit)
        if folder.is_dir():
            found = sorted(folder.glob("*.bin"))
            files += found
            labels += [digit] * len(found)
    if not files:
        raise _error(layout, path, f"split folder {path} holds no <digit>/*.bin files")

    def read(i: int) -> np.ndarray:
        tonic = require_tonic()
        f = files[i]
        if f.stat().st_size % 5:
            raise _error(layout, f.parent, f"{f} has {f.stat().st_size} bytes, not a whole number of 5-byte events")
        events = tonic.io.read_mnist_file(str(f), dtype=NMNIST_DTYPE)
        _check_range(layout, f, events)
        return events

    return EventFolder(layout.name, split, path, layout.sensor_size, layout.classes, np.asarray(labels, np.int32),
                       _fingerprint(path, files), read)
