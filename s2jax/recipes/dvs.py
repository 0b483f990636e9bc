"""DVS gesture recognition with a convolutional SNN on the chip's conv path: float, PTQ, QAT.

The workload of Arfa et al. (NICE 2025, "Efficient Deployment of Spiking Neural Networks on
SpiNNaker2 for DVS Gesture Recognition Using Neuromorphic Intermediate Representation"): an 8-bit
conv SNN, post-training quantization (PTQ) with percentile-based threshold scaling against
quantization-aware training (QAT) with adaptive threshold scaling, deployed through NIR.

Model (:func:`build_model`): ``len(channels)`` blocks of ``Conv`` (sum-pooling by ``pools[k]``
fused *before* the conv, as ``lif_conv2d`` / ``Conv2DProjection`` do it; 3x3 "same" padding) + LIF,
a dense LIF layer and an ``LI`` readout; inputs ``(B, T, C, H, W)`` spikes, one frame per tick,
then one empty tick per layer so the last frame reaches the readout. The class score is the
readout membrane averaged over the ticks.

This module holds the pieces: the config and presets, data loading, the model, training, float and
chip-model evaluation, the PTQ percentile sweep, the parity and NIR round-trip checks and the
design-rule preflight. :mod:`s2jax.recipes.dvs_pipeline` chains them into the timed, checkpointed
stages (``run_pipeline``) and writes the results (``format_table``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx

from s2jax import export, hwmodel, quant
from s2jax import data as D
from s2jax import layers as L
from s2jax import io as fileio

__all__ = ["DVSConfig", "PRESETS", "load_data", "build_model", "train", "float_accuracy", "chip_scores",
           "chip_accuracy", "quant_config", "ptq_sweep", "best_percentile", "parity", "nir_roundtrip", "preflight",
           "chip_run", "eval_batches"]


@dataclass(frozen=True)
class DVSConfig:
    """Every setting of the recipe; the defaults are the synthetic run (a few minutes on a CPU)."""

    dataset: str = "synthetic"  # "synthetic" or "dvsgesture" (then ``data`` is the folder: load_data needs it)
    data: str | None = None
    cache_dir: str | None = None  # framed-data cache (None: OUT/cache)
    # framing (s2jax.data.FrameConfig)
    ticks: int = 12
    tick_us: float | None = None
    spatial_factor: float = 0.5
    denoise_us: float | None = None
    # synthetic data
    n_train: int = 1920
    n_test: int = 960
    synthetic_classes: int = 6
    synthetic_noise: float = 1.0  # noise events per pixel per recording
    synthetic_edge_rate: float = 0.5  # probability that an edge crossing emits its event
    val_fraction: float = 0.2
    # model
    channels: tuple = (8, 16)
    pools: tuple = (1, 2)
    kernel: int = 3
    hidden: int = 64
    alpha: float = 0.9
    threshold: float = 1.0
    readout_alpha: float = 0.9
    # float training
    epochs: int = 15
    batch_size: int = 32
    lr: float = 2e-3
    # quantization
    percentiles: tuple = (99.0, 99.5, 99.9, 99.99, 100.0)
    qat_epochs: int = 4
    qat_lr: float = 5e-4
    profile: str = "float32"
    seed: int = 0
    eval_batch: int = 128

    def __post_init__(self):
        if self.dataset not in ("synthetic", "dvsgesture"):
            raise ValueError(f"dataset must be 'synthetic' or 'dvsgesture', got {self.dataset!r}")
        if len(self.channels) != len(self.pools) or not self.channels:
            raise ValueError(f"channels {self.channels} and pools {self.pools} must be non-empty and of equal length")
        if self.profile not in ("float32", "fixed"):
            raise ValueError(f"profile must be 'float32' or 'fixed', got {self.profile!r}")

    @property
    def frames(self) -> D.FrameConfig:
        return D.FrameConfig(ticks=self.ticks, tick_us=self.tick_us, spatial_factor=self.spatial_factor,
                             denoise_us=self.denoise_us)

    def replace(self, **changes) -> "DVSConfig":
        return dataclasses.replace(self, **changes)


PRESETS = {
    "synthetic": DVSConfig(),
    # DVSGesture: 128x128 -> 32x32, 10 ms denoising, 20 ticks per gesture (tonic's 1077 / 264 split)
    "dvsgesture": DVSConfig(dataset="dvsgesture", ticks=20, spatial_factor=0.25, denoise_us=10_000,
                            channels=(16, 32), pools=(2, 2), hidden=128, epochs=40, batch_size=16, lr=1e-3,
                            qat_epochs=8, qat_lr=2e-4, eval_batch=32),
}


# --- data and model ----------------------------------------------------------------------------------


def load_data(config: DVSConfig, cache_dir=None, progress: bool = True):
    """``(train, val, test)`` :class:`s2jax.data.SpikeData` of ``config``."""
    if config.dataset == "synthetic":
        kw = dict(classes=config.synthetic_classes, noise=config.synthetic_noise,
                  edge_rate=config.synthetic_edge_rate, progress=progress)
        train = D.synthetic_gestures(config.n_train, config.frames, seed=config.seed, **kw)
        test = D.synthetic_gestures(config.n_test, config.frames, seed=config.seed + 10_000, **kw)
    else:
        if not config.data:
            raise ValueError("dataset='dvsgesture' needs data=PATH: the folder holding DVSGesture/ibmGestureTrain "
                             "and DVSGesture/ibmGestureTest (docs/dvs-gesture.md)")
        cache = config.cache_dir or cache_dir
        train = D.load("dvsgesture", config.data, "train", config.frames, cache_dir=cache, progress=progress)
        test = D.load("dvsgesture", config.data, "test", config.frames, cache_dir=cache, progress=progress)
    train, val = train.split(config.val_fraction, seed=config.seed)
    return train, val, test


def build_model(config: DVSConfig, input_shape, n_classes: int, *, seed: int | None = None) -> L.SNN:
    """Conv + sum-pool + LIF blocks, a dense LIF layer and an LI readout (module docstring)."""
    rngs = nnx.Rngs(config.seed if seed is None else seed)
    c, h, w = input_shape
    layers = []
    for ch, pool in zip(config.channels, config.pools):
        conv = L.Conv(c, ch, config.kernel, padding=config.kernel // 2, pool=pool, rngs=rngs)
        shape = conv.output_shape(h, w)
        layers.append((conv, L.LIF(shape, alpha=config.alpha, threshold=config.threshold)))
        c, h, w = shape
    layers.append((L.Linear(c * h * w, config.hidden, rngs=rngs), L.LIF(config.hidden, alpha=config.alpha,
                                                                         threshold=config.threshold)))
    layers.append((L.Linear(config.hidden, n_classes, rngs=rngs), L.LI(n_classes, alpha=config.readout_alpha)))
    return L.SNN(layers)


def _pad(model, x):
    return np.concatenate([x, np.zeros((x.shape[0], len(model.neurons), *x.shape[2:]), x.dtype)], axis=1)


def _bar(desc, total, quiet, unit="step", leave=True):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, leave=leave, dynamic_ncols=True)


# --- training and evaluation ---------------------------------------------------------------------------


def train(model, train_data, *, epochs: int, batch_size: int, lr: float, seed: int = 0, val_data=None,
          eval_fn=None, eval_batch: int = 128, quiet: bool = True, desc: str = "training"):
    """Adam on the mean-membrane cross-entropy, ``epochs`` passes of shuffled full batches.

    ``eval_fn(model) -> accuracy`` (default :func:`float_accuracy` on ``val_data``) runs after each
    epoch; with ``val_data`` the parameters of the best epoch (epoch 0: the model as given) are
    restored at the end. Returns ``{"loss": per step, "val": per epoch from 0}``.
    """
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def step(m, opt, x, y):
        loss, grads = nnx.value_and_grad(lambda m: L.losses.mean_membrane_cross_entropy(m(x).output, y))(m)
        opt.update(m, grads)
        return loss

    if val_data is not None and eval_fn is None:
        eval_fn = lambda m: float_accuracy(m, val_data, eval_batch)  # noqa: E731
    curve = {"loss": [], "val": []}
    best = None
    if eval_fn is not None:
        curve["val"].append(eval_fn(model))
        best = (curve["val"][0], nnx.state(model))
    per_epoch = max(1, len(train_data) // batch_size)
    bar = _bar(desc, epochs * per_epoch, quiet)
    for epoch in range(epochs):
        # optax's Adam mixes its int32 step count with floats, which strict dtype promotion rejects
        with jax.numpy_dtype_promotion("standard"):
            full = len(train_data) >= batch_size  # drop the ragged last batch: one shape, one compilation
            for x, y in D.batches(train_data, batch_size, seed=seed * 1000 + epoch, drop_last=full):
                curve["loss"].append(float(step(model, opt, _pad(model, x), y)))
                bar.update(1)
                bar.set_postfix(loss=f"{curve['loss'][-1]:.3f}", epoch=epoch + 1)
        if eval_fn is not None:
            curve["val"].append(eval_fn(model))
            bar.set_postfix(loss=f"{curve['loss'][-1]:.3f}", val=f"{curve['val'][-1]:.3f}")
            if curve["val"][-1] > best[0]:
                best = (curve["val"][-1], nnx.state(model))
    bar.close()
    if best is not None:
        nnx.update(model, best[1])
    return curve


# jitted once: every evaluation of one model shape (and every network of one shape) reuses the compilation
_forward = nnx.jit(lambda m, x: m(x))
#: ``hwmodel.run``, jitted once for the recipe and its pipeline (one compilation per network shape).
chip_run = jax.jit(hwmodel.run)


def eval_batches(data, batch, layers):
    """Full batches of ``batch`` samples (the last one zero-filled: one shape, one compilation),
    each followed by ``layers`` empty ticks; yields ``(x, number of real samples)``."""
    for x, _ in D.batches(data, batch):
        n = len(x)
        x = np.concatenate([x, np.zeros((batch - n, *x.shape[1:]), x.dtype)]) if n < batch else x
        yield np.concatenate([x, np.zeros((batch, layers, *x.shape[2:]), x.dtype)], axis=1), n


def _forward_scores(model, data, batch):
    return np.concatenate([np.asarray(_forward(model, x).output.mean(axis=1))[:n]
                           for x, n in eval_batches(data, batch, len(model.neurons))])


def float_accuracy(model, data, batch: int = 128) -> float:
    """Accuracy of the model's own forward pass (float, or the QAT forward = the chip arithmetic)."""
    return float(np.mean(np.argmax(_forward_scores(model, data, batch), axis=1) == data.labels))


def chip_scores(net, data, profile: str = "float32", batch: int = 128, quiet: bool = True):
    """Class scores (mean readout voltage over the ticks) of the chip model running ``net``."""
    prog = hwmodel.compile_network(net, profile)
    readout = net.populations[-1].name
    out = []
    bar = _bar("chip model", -(-len(data) // batch), quiet, unit="batch", leave=False)
    for x, n in eval_batches(data, batch, len(net.populations) - 1):
        _, trace = chip_run(prog, {"input": D.chip_input(x)})
        out.append(np.asarray(trace.voltages[readout], np.float64).mean(axis=1)[:n])
        bar.update(1)
    bar.close()
    return np.concatenate(out)


def chip_accuracy(net, data, profile: str = "float32", batch: int = 128, quiet: bool = True) -> float:
    return float(np.mean(np.argmax(chip_scores(net, data, profile, batch, quiet), axis=1) == data.labels))


def quant_config(config: DVSConfig, percentile: float, adaptive: bool = False) -> quant.QuantConfig:
    """8-bit weights scaled by ``127 / percentile(|W|)`` per layer, thresholds scaled alike; ``adaptive``:
    QAT learns a threshold scale per layer (adaptive threshold scaling)."""
    return quant.QuantConfig(calibration="percentile", percentile=percentile, adaptive_threshold=adaptive,
                             profile=config.profile)


def ptq_sweep(model, config: DVSConfig, val, test, input_shape, quiet: bool = True) -> dict:
    """``{percentile: {"val": acc, "test": acc}}`` of the PTQ network at each percentile (chip model)."""
    out = {}
    bar = _bar("PTQ percentile sweep", len(config.percentiles), quiet, unit="percentile")
    for p in config.percentiles:
        net = quant.quantize(model, quant_config(config, p), input_shape=input_shape)
        out[float(p)] = {split: chip_accuracy(net, d, config.profile, config.eval_batch) for split, d in
                         (("val", val), ("test", test))}
        bar.update(1)
        bar.set_postfix(p=p, val=f"{out[float(p)]['val']:.3f}")
    bar.close()
    return out


def best_percentile(sweep: dict) -> float:
    """The percentile with the best validation accuracy (ties: the larger percentile, less clipping)."""
    return max(sweep, key=lambda p: (sweep[p]["val"], p))


# --- deployment checks ---------------------------------------------------------------------------------


def parity(qmodel, net, x, profile: str = "float32", *, padded: bool = False) -> dict:
    """Compare the QAT forward with the chip model on spikes ``x`` ``(B, T, C, H, W)`` (one empty tick
    per layer is appended unless ``padded``): ``{layer: {"spikes": equal, "voltages": equal, "fired": n}}``,
    exact comparisons of every layer (voltages bit for bit)."""
    x = np.asarray(x, np.float32) if padded else _pad(qmodel, np.asarray(x, np.float32))
    out = _forward(qmodel, x)
    _, trace = chip_run(hwmodel.compile_network(net, profile, record="all"), {"input": D.chip_input(x)})
    report = {}
    for k, neuron in enumerate(qmodel.neurons):
        name = f"layer{k}"
        v = np.asarray(out.voltages[k]).reshape(*x.shape[:2], -1)
        s = np.asarray(out.spikes[k]).reshape(*x.shape[:2], -1) > 0
        chip_v, chip_s = np.asarray(trace.voltages[name]), np.asarray(trace.spikes[name])
        report[name] = {"voltages": bool(np.array_equal(v.view(np.int32), chip_v.view(np.int32))),
                        "spikes": True if neuron.readout else bool(np.array_equal(s, chip_s)),
                        "fired": 0 if neuron.readout else int(chip_s.sum())}
    return report


def preflight(model, config: DVSConfig, input_shape):
    """The model's chip network (absmax scales: every layer reaches ``|w| = 127``) against the design
    rules, before any training: accumulator, exact input sums, atoms and SRAM per PE, cores."""
    violations = export.check(quant.quantize(model, quant_config(config, 100.0), input_shape=input_shape))
    if violations:
        raise export.DesignRuleError(violations)


def nir_roundtrip(net, path, x, profile: str = "float32") -> bool:
    """Write ``net`` as NIR at ``path`` (atomically), read it back, and compare every recorded spike
    and voltage of the chip model on spikes ``x`` ``(B, T, n)`` (bool): True when all are identical."""
    import nir

    fileio.atomic_write(Path(path), lambda p: nir.write(p, export.to_nir(net)))
    back = export.from_nir(path)
    _, a = chip_run(hwmodel.compile_network(net, profile, record="all"), {"input": x})
    _, b = chip_run(hwmodel.compile_network(back, profile, record="all"), {"input": x})
    same = [np.array_equal(np.asarray(a.spikes[k]), np.asarray(b.spikes[k])) for k in a.spikes]
    same += [np.array_equal(np.asarray(a.voltages[k]), np.asarray(b.voltages[k])) for k in a.voltages]
    return a.names == b.names and all(same)
