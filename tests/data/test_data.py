"""s2jax.data: offline folders in tonic's real on-disk layouts (written here, byte by byte), framing,
the cache, batching and the synthetic gesture camera. Nothing is downloaded: every test that builds
a tonic dataset class first makes its ``download`` raise."""

import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
import tonic  # the "data" extra, part of the "test" extra
from tonic import transforms as T

from s2jax import data as D


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    def refuse(self):
        raise AssertionError(f"{type(self).__name__} tried to download: the fake layout is wrong")

    monkeypatch.setattr(tonic.dataset.Dataset, "download", refuse)


# --- fake folders in the real layouts ---------------------------------------------------------------


def raw_gesture(rng, n=60, size=128):
    """rows (x, y, p, t_ms), as the files of tonic's DVSGesture release (int64)."""
    t = np.sort(rng.integers(0, 400, n))
    return np.stack([rng.integers(0, size, n), rng.integers(0, size, n), rng.integers(0, 2, n), t], 1).astype(np.int64)


def make_dvsgesture(root, split="ibmGestureTrain", sessions=10, labels=range(10), seed=0, archive=True):
    rng = np.random.default_rng(seed)
    base = root / "DVSGesture"
    files = {}
    for s in range(sessions):
        folder = base / split / f"user{s + 1:02d}_{['fluorescent', 'led', 'natural'][s % 3]}"
        folder.mkdir(parents=True)
        for label in labels:
            files[folder / f"{label}.npy"] = label
            np.save(folder / f"{label}.npy", raw_gesture(rng))
    if archive:  # tonic only checks that the archive exists
        (base / f"{split}.tar.gz").write_bytes(b"")
    return files


def make_shd(root, n=6, seed=0, name="shd_train"):
    rng = np.random.default_rng(seed)
    base = root / "SHD"
    base.mkdir(parents=True, exist_ok=True)
    with h5py.File(base / f"{name}.h5", "w") as f:
        vf, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
        times = f.create_dataset("spikes/times", (n,), dtype=vf)
        units = f.create_dataset("spikes/units", (n,), dtype=vu)
        for i in range(n):
            k = int(rng.integers(5, 40))
            times[i] = np.sort(rng.random(k)).astype(np.float32)  # seconds
            units[i] = rng.integers(0, 700, k).astype(np.uint16)
        f["labels"] = rng.integers(0, 20, n).astype(np.uint16)
        f["extra/speaker"] = np.zeros(n, np.uint16)
        f["extra/keys"] = np.array([f"key{k}".encode() for k in range(20)])
    (base / f"{name}.h5.zip").write_bytes(b"")
    return base / f"{name}.h5"


def nmnist_bytes(x, y, p, t):
    """N-MNIST's 40-bit events: x, y, then p (bit 23) and a 23-bit microsecond timestamp."""
    raw = np.zeros((len(x), 5), np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


# --- DVSGesture ------------------------------------------------------------------------------------


def test_dvsgesture_folder_frames_like_tonics_own_dataset_class(tmp_path):
    files = make_dvsgesture(tmp_path)
    frames = D.FrameConfig(ticks=5, spatial_factor=0.25, denoise_us=100_000)
    got = D.load("dvsgesture", tmp_path, "train", frames, progress=False)
    assert got.spikes.shape == (100, 5, 2, 32, 32) and got.spikes.dtype == np.uint8
    assert set(np.unique(got.spikes)) <= {0, 1} and got.spikes.sum() > 0
    assert got.classes == D.LAYOUTS["dvsgesture"].classes and len(got.classes) == 11
    folder = D.open_folder("dvsgesture", tmp_path, "train")
    split = tmp_path / "DVSGesture" / "ibmGestureTrain"
    assert [files[split / f] for f, _ in folder.fingerprint] == got.labels.tolist()
    # tonic's class on the same folder, with tonic's own Denoise
    ref = tonic.datasets.DVSGesture(str(tmp_path), train=True, transform=T.Compose(
        [T.Denoise(filter_time=100_000), T.Downsample(spatial_factor=0.25),
         T.ToFrame(sensor_size=(32, 32, 2), n_time_bins=5)]))
    ours = {str(tmp_path / "DVSGesture" / "ibmGestureTrain" / f): i for i, (f, _) in enumerate(folder.fingerprint)}
    for k in range(0, 100, 7):
        frames_ref, label = ref[k]
        i = ours[ref.data[k]]
        assert label == got.labels[i]
        np.testing.assert_array_equal((frames_ref >= 1).astype(np.uint8), got.spikes[i])


def test_dvsgesture_events_by_hand(tmp_path):
    folder = tmp_path / "DVSGesture" / "ibmGestureTest" / "user24_led"
    folder.mkdir(parents=True)
    # x, y, p, t_ms: two events in the first half, one in the second, one ON/OFF pair on one pixel
    np.save(folder / "3.npy", np.array([[5, 9, 1, 0], [5, 9, 0, 10], [127, 0, 1, 20], [64, 64, 1, 40]], np.int64))
    ev = D.open_folder("dvsgesture", tmp_path, "test").read(0)
    assert ev.dtype == D.DVS_DTYPE and ev["t"].tolist() == [0, 10_000, 20_000, 40_000]  # microseconds
    got = D.load("dvsgesture", tmp_path / "DVSGesture", "test",  # ROOT may be the dataset folder itself
                 D.FrameConfig(ticks=3, tick_us=15_000), progress=False)
    assert got.labels.tolist() == [3] and got.spikes.shape == (1, 3, 2, 128, 128)
    on = {tuple(i) for i in np.argwhere(got.spikes[0])}
    assert on == {(0, 1, 9, 5), (0, 0, 9, 5), (1, 1, 0, 127), (2, 1, 64, 64)}  # (tick, p, y, x)


def test_missing_or_incomplete_folders_name_the_folder_and_layout(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(D.DatasetLayoutError, match=r"does not exist.*Expected layout: ROOT/DVSGesture/ibmGestureTrain"):
        D.load("dvsgesture", tmp_path / "nowhere", "train", cache_dir=cache, progress=False)
    with pytest.raises(D.DatasetLayoutError, match=str(tmp_path / "DVSGesture").replace("\\", "\\\\")):
        D.load("dvsgesture", tmp_path, "train", cache_dir=cache, progress=False)
    make_dvsgesture(tmp_path, sessions=1, labels=[0, 1], archive=False)
    with pytest.raises(D.DatasetLayoutError, match=r"ibmGestureTest does not exist"):
        D.load("dvsgesture", tmp_path, "test", cache_dir=cache, progress=False)
    (tmp_path / "DVSGesture" / "ibmGestureTest" / "user01_led").mkdir(parents=True)
    with pytest.raises(D.DatasetLayoutError, match=r"holds no userNN_<lighting>/<label>.npy"):
        D.load("dvsgesture", tmp_path, "test", cache_dir=cache, progress=False)
    bad = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_fluorescent" / "1.npy"
    np.save(bad, np.zeros((3, 5), np.int64))
    with pytest.raises(D.DatasetLayoutError, match=r"1.npy holds a int64 array of shape \(3, 5\)"):
        D.load("dvsgesture", tmp_path, "train", cache_dir=cache, progress=False)
    bad.write_bytes(b"not numpy")
    with pytest.raises(D.DatasetLayoutError, match=r"cannot read .*1.npy"):
        D.load("dvsgesture", tmp_path, "train", cache_dir=cache, progress=False)
    np.save(bad, np.array([[128, 0, 1, 0]], np.int64))
    with pytest.raises(D.DatasetLayoutError, match=r"x ranges over \[128, 128\], outside the sensor's \[0, 127\]"):
        D.load("dvsgesture", tmp_path, "train", cache_dir=cache, progress=False)
    np.save(bad.with_name("11.npy"), raw_gesture(np.random.default_rng(0)))
    with pytest.raises(D.DatasetLayoutError, match=r"11.npy is not named <label>.npy with a label 0-10"):
        D.load("dvsgesture", tmp_path, "train", cache_dir=cache, progress=False)
    assert not cache.exists() or not any(cache.iterdir()), "a failed load left a cache file behind"
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        D.load("cifar", tmp_path)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        D.load("dvsgesture", tmp_path, "val")


# --- SHD and N-MNIST -------------------------------------------------------------------------------------


def test_shd_file_frames_like_tonics_own_dataset_class(tmp_path):
    make_shd(tmp_path)
    frames = D.FrameConfig(ticks=4, spatial_factor=0.1)
    got = D.load("shd", tmp_path, "train", frames, progress=False)
    assert got.spikes.shape == (6, 4, 1, 1, 70) and len(got.classes) == 20
    ref = tonic.datasets.SHD(str(tmp_path), train=True, transform=T.Compose(
        [T.Downsample(spatial_factor=0.1), T.ToFrame(sensor_size=(70, 1, 1), n_time_bins=4)]))
    for i in range(6):
        frames_ref, label = ref[i]
        assert int(label) == got.labels[i]
        np.testing.assert_array_equal((frames_ref >= 1).astype(np.uint8).reshape(4, 1, 1, 70), got.spikes[i])
    (tmp_path / "SHD" / "shd_test.h5.zip").write_bytes(b"")
    with pytest.raises(D.DatasetLayoutError, match=r"shd_test.h5 does not exist \(shd_test.h5.zip is there: unzip"):
        D.load("shd", tmp_path, "test", progress=False)
    with h5py.File(tmp_path / "SHD" / "shd_test.h5", "w") as f:
        f["labels"] = np.zeros(2, np.uint16)
    with pytest.raises(D.DatasetLayoutError, match=r"lacks the datasets \['spikes/times', 'spikes/units'\]"):
        D.load("shd", tmp_path, "test", progress=False)


def test_nmnist_bin_files(tmp_path):
    for split, digit in (("Train", 3), ("Train", 7), ("Test", 0)):
        folder = tmp_path / "NMNIST" / split / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        x, y, p, t = np.array([1, 33, 10]), np.array([2, 0, 10]), np.array([1, 0, 1]), np.array([5, 70_000, 300_000])
        (folder / "00001.bin").write_bytes(nmnist_bytes(x, y, p, t))
    got = D.load("nmnist", tmp_path, "train", D.FrameConfig(ticks=2, tick_us=200_000), progress=False)
    assert got.labels.tolist() == [3, 7] and got.spikes.shape == (2, 2, 2, 34, 34)
    assert {tuple(i) for i in np.argwhere(got.spikes[0])} == {(0, 1, 2, 1), (0, 0, 0, 33), (1, 1, 10, 10)}
    ev = D.open_folder("nmnist", tmp_path, "test").read(0)
    assert ev["t"].tolist() == [5, 70_000, 300_000] and ev["x"].tolist() == [1, 33, 10]
    (tmp_path / "NMNIST" / "Test" / "0" / "00002.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(D.DatasetLayoutError, match=r"00002.bin has 7 bytes"):
        D.load("nmnist", tmp_path, "test", progress=False)


# --- framing ---------------------------------------------------------------------------------------


def test_frame_settings():
    ev = np.zeros(4, D.DVS_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = [0, 0, 3, 3], [0, 1, 3, 3], [1, 1, 0, 0], [0, 10, 20, 30]
    f = D.frame_events(ev, (4, 4, 2), D.FrameConfig(ticks=6, tick_us=20, spatial_factor=0.5))
    assert f.shape == (6, 2, 2, 2) and f.dtype == np.uint8
    assert {tuple(i) for i in np.argwhere(f)} == {(0, 1, 0, 0), (1, 0, 1, 1)}  # padded to 6 ticks
    two = D.frame_events(ev, (4, 4, 2), D.FrameConfig(ticks=1, tick_us=100, spatial_factor=0.5, min_count=2))
    assert {tuple(i) for i in np.argwhere(two)} == {(0, 1, 0, 0), (0, 0, 1, 1)}  # 2 events each after downsampling
    assert not D.frame_events(ev[:0], (4, 4, 2), D.FrameConfig(ticks=3)).any()
    ev["x"], ev["y"], ev["t"] = [0, 1, 3, 3], [0, 0, 3, 3], [50_000, 50_005, 90_000, 95_000]
    kept = D.frame_events(ev, (4, 4, 2), D.FrameConfig(ticks=1, tick_us=1e6, denoise_us=1_000))
    assert {tuple(i) for i in np.argwhere(kept)} == {(0, 1, 0, 1)}  # only the event with a recent neighbour
    assert D.frame_shape((128, 128, 2), D.FrameConfig(spatial_factor=0.25)) == (2, 32, 32)
    assert D.frame_shape((34, 34, 2), D.FrameConfig(spatial_factor=0.5)) == (2, 17, 17)
    for bad in (dict(ticks=0), dict(spatial_factor=0.0), dict(spatial_factor=2.0), dict(tick_us=-1.0),
                dict(denoise_us=0.0), dict(min_count=0)):
        with pytest.raises(ValueError, match="FrameConfig"):
            D.FrameConfig(**bad)


# --- cache --------------------------------------------------------------------------------------------------


def test_cache_hits_keys_on_settings_and_rebuilds_bad_files(tmp_path, monkeypatch):
    make_dvsgesture(tmp_path, sessions=2, labels=range(3))
    cache = tmp_path / "cache"
    frames = D.FrameConfig(ticks=4, spatial_factor=0.25)
    first = D.load("dvsgesture", tmp_path, "train", frames, cache_dir=cache, progress=False)
    (path,) = cache.glob("dvsgesture-train-*.npz")
    with np.load(path, allow_pickle=False) as f:  # plain arrays, no pickle
        assert sorted(f.files) == ["key", "labels", "shape", "spikes"]
    calls = []
    monkeypatch.setattr(D.dataset, "frame_events", lambda *a: calls.append(a) or np.zeros(1))
    again = D.load("dvsgesture", tmp_path, "train", frames, cache_dir=cache, progress=False)
    assert calls == []  # read from the cache only
    np.testing.assert_array_equal(again.spikes, first.spikes)
    np.testing.assert_array_equal(again.labels, first.labels)
    monkeypatch.undo()
    # every transform parameter, the split and the dataset are part of the key
    keys = {D.cache_key("dvsgesture", "train", frames.params())[0]}
    for changed in (frames.replace(ticks=5), frames.replace(spatial_factor=0.5), frames.replace(denoise_us=1e4),
                    frames.replace(tick_us=1e3), frames.replace(min_count=2)):
        keys.add(D.cache_key("dvsgesture", "train", changed.params())[0])
    keys |= {D.cache_key("dvsgesture", "test", frames.params())[0], D.cache_key("nmnist", "train", frames.params())[0]}
    assert len(keys) == 8
    D.load("dvsgesture", tmp_path, "train", frames.replace(ticks=5), cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 2
    path.write_bytes(path.read_bytes()[:100])  # a truncated file is ignored and rewritten
    with pytest.warns(UserWarning, match="ignoring the cache file"):
        rebuilt = D.load("dvsgesture", tmp_path, "train", frames, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(rebuilt.spikes, first.spikes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        D.load("dvsgesture", tmp_path, "train", frames, cache_dir=cache, progress=False)
    assert not [p for p in cache.iterdir() if p.suffix != ".npz"], "temporary files left behind"


def test_interrupted_build_leaves_no_cache_file(tmp_path, monkeypatch):
    make_dvsgesture(tmp_path, sessions=1, labels=range(3))
    cache = tmp_path / "cache"
    monkeypatch.setattr(D.dataset, "frame_samples", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        D.load("dvsgesture", tmp_path, "train", cache_dir=cache, progress=False)
    monkeypatch.undo()

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        D.load("dvsgesture", tmp_path, "train", cache_dir=cache, progress=False)
    assert list(cache.iterdir()) == []


# --- synthetic data, batching, tonic as an optional dependency ------------------------------------------------


def test_synthetic_gestures_are_deterministic_and_go_through_the_folder_layout(tmp_path):
    events, labels = D.synthetic_events(8, seed=3)
    again, _ = D.synthetic_events(12, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(events, again[:8]))  # sample i does not depend on n
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 0, 1]
    for ev in events:
        assert ev.dtype == D.DVS_DTYPE and np.all(np.diff(ev["t"]) >= 0)
        assert ev["x"].max() < 32 and ev["y"].max() < 32 and ev["p"].any() and (~ev["p"]).any()
    frames = D.FrameConfig(ticks=6, spatial_factor=0.5)
    direct = D.synthetic_gestures(8, frames, seed=3)
    assert direct.spikes.shape == (8, 6, 2, 16, 16) and direct.classes == D.SYNTHETIC_CLASSES
    D.write_dvsgesture(tmp_path, events, labels)
    loaded = D.load("dvsgesture", tmp_path, "train", frames.replace(spatial_factor=1.0), progress=False)
    assert sorted(loaded.labels.tolist()) == sorted(labels.tolist()) and loaded.spikes.shape[1:] == (6, 2, 128, 128)
    # a swipe right shows ON events right of OFF events in the middle ticks
    x = direct.spikes[direct.labels == 0][:, 2:4].astype(float)
    cols = np.arange(16)
    centre_on, centre_off = (x[:, :, c].sum(axis=(0, 1, 2)) @ cols / x[:, :, c].sum() for c in (1, 0))
    assert centre_on > centre_off


def test_batches_and_splits():
    d = D.SpikeData(np.zeros((10, 3, 2, 4, 4), np.uint8), np.arange(10, dtype=np.int32), ("a",))
    b = list(D.batches(d, 4))
    assert [x.shape for x, _ in b] == [(4, 3, 2, 4, 4)] * 2 + [(2, 3, 2, 4, 4)] and b[0][0].dtype == np.float32
    assert np.concatenate([y for _, y in b]).tolist() == list(range(10))
    shuffled = np.concatenate([y for _, y in D.batches(d, 4, seed=1, drop_last=True)])
    assert len(shuffled) == 8 and len(set(shuffled.tolist())) == 8 and shuffled.tolist() != list(range(8))
    assert np.array_equal(shuffled, np.concatenate([y for _, y in D.batches(d, 4, seed=1, drop_last=True)]))
    train, val = d.split(0.3, seed=0)
    assert len(train) == 7 and len(val) == 3 and sorted(train.labels.tolist() + val.labels.tolist()) == list(range(10))
    assert D.chip_input(b[0][0]).shape == (4, 3, 32) and D.chip_input(b[0][0]).dtype == bool
    with pytest.raises(ValueError, match="batch_size"):
        next(D.batches(d, 0))
    with pytest.raises(ValueError, match=r"\(N, T, C, H, W\)"):
        D.SpikeData(np.zeros((2, 3)), np.zeros(2), ())


def test_tonic_is_optional(monkeypatch):
    code = ("import sys; import s2jax, s2jax.data, s2jax.recipes.dvs; "
            "assert 'tonic' not in sys.modules, 'importing s2jax.data imported tonic'")
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.setitem(sys.modules, "tonic", None)
    assert D.synthetic_gestures(2).spikes.shape == (2, 12, 2, 16, 16)  # framed without tonic
    ev, _ = D.synthetic_events(1)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[data\]"'):
        D.frame_events(ev[0], (32, 32, 2), D.FrameConfig(denoise_us=1000))
