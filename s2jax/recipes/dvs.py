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

Stages (:func:`run_pipeline`, each timed; ``float`` and ``qat`` weights are checkpointed and reused
with ``resume=True`` when the settings match):

1. ``data``: the synthetic gesture camera (:mod:`s2jax.data.synthetic`) or a DVSGesture folder
   (``data=PATH``, cached framing); a validation split is cut from the training data;
2. ``float``: training with surrogate gradients and Adam; the model is first checked against the
   chip's design rules (accumulator, memory, cores), so a model that cannot deploy fails at once;
3. ``ptq``: for each percentile p, weights scaled by ``127 / percentile_p(|W|)`` per layer with the
   thresholds scaled alike (outliers saturate), evaluated on the chip model (validation and test);
   the best percentile on the validation data is the PTQ result;
4. ``qat``: ``quant.qat`` from the best PTQ scales with a trainable threshold scale per layer
   (adaptive threshold scaling); fine-tuned against the chip arithmetic, the epoch with the best
   validation accuracy is kept (epoch 0 is the PTQ network); evaluated on the chip model;
5. ``export``: design-rule check, the QAT forward compared with the chip model bit for bit on test
   samples, a NIR file re-imported and run again (must be identical), a py-spinnaker2 bundle,
   the core mapping and a cost estimate per inference.

Writes ``summary.json`` and four plots into ``out``; :func:`format_table` prints the results.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from s2jax import SPINNAKER2, export, hwmodel, quant
from s2jax import data as D
from s2jax import layers as L
from s2jax.qnet import Conv2DProjection
from s2jax.recipes import checkpoint

__all__ = ["DVSConfig", "PRESETS", "load_data", "build_model", "train", "float_accuracy", "chip_scores",
           "chip_accuracy", "quant_config", "ptq_sweep", "best_percentile", "parity", "nir_roundtrip", "preflight",
           "run_pipeline", "format_table"]


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
_chip_run = jax.jit(hwmodel.run)


def _eval_batches(data, batch, layers):
    """Full batches of ``batch`` samples (the last one zero-filled: one shape, one compilation),
    each followed by ``layers`` empty ticks; yields ``(x, number of real samples)``."""
    for x, _ in D.batches(data, batch):
        n = len(x)
        x = np.concatenate([x, np.zeros((batch - n, *x.shape[1:]), x.dtype)]) if n < batch else x
        yield np.concatenate([x, np.zeros((batch, layers, *x.shape[2:]), x.dtype)], axis=1), n


def _forward_scores(model, data, batch):
    return np.concatenate([np.asarray(_forward(model, x).output.mean(axis=1))[:n]
                           for x, n in _eval_batches(data, batch, len(model.neurons))])


def float_accuracy(model, data, batch: int = 128) -> float:
    """Accuracy of the model's own forward pass (float, or the QAT forward = the chip arithmetic)."""
    return float(np.mean(np.argmax(_forward_scores(model, data, batch), axis=1) == data.labels))


def chip_scores(net, data, profile: str = "float32", batch: int = 128, quiet: bool = True):
    """Class scores (mean readout voltage over the ticks) of the chip model running ``net``."""
    prog = hwmodel.compile_network(net, profile)
    readout = net.populations[-1].name
    out = []
    bar = _bar("chip model", -(-len(data) // batch), quiet, unit="batch", leave=False)
    for x, n in _eval_batches(data, batch, len(net.populations) - 1):
        _, trace = _chip_run(prog, {"input": D.chip_input(x)})
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


def parity(qmodel, net, x, profile: str = "float32", *, padded: bool = False) -> dict:
    """Compare the QAT forward with the chip model on spikes ``x`` ``(B, T, C, H, W)`` (one empty tick
    per layer is appended unless ``padded``): ``{layer: {"spikes": equal, "voltages": equal, "fired": n}}``,
    exact comparisons of every layer (voltages bit for bit)."""
    x = np.asarray(x, np.float32) if padded else _pad(qmodel, np.asarray(x, np.float32))
    out = _forward(qmodel, x)
    _, trace = _chip_run(hwmodel.compile_network(net, profile, record="all"), {"input": D.chip_input(x)})
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


# --- the pipeline ----------------------------------------------------------------------------------------


def preflight(model, config: DVSConfig, input_shape):
    """The model's chip network (absmax scales: every layer reaches |w| = 127) against the design
    rules, before any training: accumulator, exact input sums, atoms and SRAM per PE, cores."""
    violations = export.check(quant.quantize(model, quant_config(config, 100.0), input_shape=input_shape))
    if violations:
        raise export.DesignRuleError(violations)


NOT_FLOAT = ("percentiles", "qat_epochs", "qat_lr", "profile", "eval_batch", "cache_dir")  # no effect on float weights


def _settings(config: DVSConfig, drop=("eval_batch", "cache_dir"), **extra) -> dict:
    """The settings a stage's checkpoint depends on, as JSON values."""
    d = {k: v for k, v in dataclasses.asdict(config).items() if k not in drop}
    return json.loads(json.dumps({**d, **extra}, default=str))


def _stage(name, meta_config, model, out, resume, fit):
    """Run ``fit(model) -> curve`` or, with ``resume`` and equal settings, load the checkpoint."""
    ckpt = out / "checkpoints" / name
    saved = checkpoint.read_meta(ckpt)
    if resume and saved is not None and saved.get("config") == meta_config:
        return checkpoint.load_model(ckpt, model), saved["curve"], True
    curve = fit(model)
    checkpoint.save_model(ckpt, model, {"stage": name, "config": meta_config, "curve": curve})
    return model, curve, False


def run_pipeline(config: DVSConfig = PRESETS["synthetic"], out="s2jax-dvs", *, resume: bool = False,
                 quiet: bool = False, plots: bool = True) -> dict:
    """Run every stage (module docstring) and write the results into ``out``; returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds, resumed = {}, {}
    t = time.perf_counter()
    train_d, val, test = load_data(config, cache_dir=out / "cache", progress=not quiet)
    shape, n_classes = train_d.sample_shape[1:], len(train_d.classes)
    seconds["data"] = time.perf_counter() - t

    t = time.perf_counter()
    model = build_model(config, shape, n_classes)
    preflight(model, config, shape)
    model, float_curve, resumed["float"] = _stage(
        "float", _settings(config, NOT_FLOAT), model, out, resume,
        lambda m: train(m, train_d, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                        seed=config.seed, val_data=val, eval_batch=config.eval_batch, quiet=quiet,
                        desc="float training"))
    float_acc = float_accuracy(model, test, config.eval_batch)
    seconds["float"] = time.perf_counter() - t

    t = time.perf_counter()
    sweep = ptq_sweep(model, config, val, test, shape, quiet=quiet)
    p_best = best_percentile(sweep)
    seconds["ptq"] = time.perf_counter() - t

    t = time.perf_counter()
    qmodel = quant.qat(model, quant_config(config, p_best, adaptive=True))
    qmodel, qat_curve, resumed["qat"] = _stage(
        "qat", _settings(config, percentile=p_best), qmodel, out, resume,
        lambda q: train(q, train_d, epochs=config.qat_epochs, batch_size=config.batch_size, lr=config.qat_lr,
                        seed=config.seed + 1, val_data=val, eval_batch=config.eval_batch, quiet=quiet,
                        desc="QAT fine-tuning"))
    net = quant.quantize(qmodel, input_shape=shape, name="dvs_gesture")
    qat_scores = chip_scores(net, test, config.profile, config.eval_batch, quiet)
    seconds["qat"] = time.perf_counter() - t

    t = time.perf_counter()
    files, deploy, trace = _export(config, qmodel, net, test, out)
    seconds["export"] = time.perf_counter() - t

    summary = {
        "dataset": config.dataset, "classes": list(train_d.classes), "input_shape": [int(s) for s in shape],
        "ticks": config.ticks, "ticks_per_inference": config.ticks + len(model.neurons),
        "samples": {"train": len(train_d), "val": len(val), "test": len(test)},
        "profile": config.profile,
        "float_accuracy": float_acc,
        "ptq": {str(p): v for p, v in sweep.items()},
        "ptq_best_percentile": p_best,
        "ptq_accuracy": sweep[p_best]["test"],
        "qat_accuracy": float(np.mean(np.argmax(qat_scores, axis=1) == test.labels)),
        "qat_threshold_scales": [float(np.asarray(n.threshold_scale[...]).mean()) for n in qmodel.neurons
                                 if n.threshold_scale is not None],
        "curves": {"float": float_curve, "qat": qat_curve},
        **deploy,
        "seconds_per_stage": {k: round(v, 2) for k, v in seconds.items()},
        "resumed": resumed,
        "settings": _settings(config),
        "files": files,
    }
    if plots:
        summary["files"] += _plots(out, summary, test, trace, net)
    summary["files"].append(str(out / "summary.json"))
    checkpoint.atomic_write(out / "summary.json", lambda p: Path(p).write_text(json.dumps(summary, indent=1)))
    return summary


def nir_roundtrip(net, path, x, profile: str = "float32") -> bool:
    """Write ``net`` as NIR at ``path`` (atomically), read it back, and compare every recorded spike
    and voltage of the chip model on spikes ``x`` ``(B, T, n)`` (bool): True when all are identical."""
    import nir

    checkpoint.atomic_write(Path(path), lambda p: nir.write(p, export.to_nir(net)))
    back = export.from_nir(path)
    _, a = _chip_run(hwmodel.compile_network(net, profile, record="all"), {"input": x})
    _, b = _chip_run(hwmodel.compile_network(back, profile, record="all"), {"input": x})
    same = [np.array_equal(np.asarray(a.spikes[k]), np.asarray(b.spikes[k])) for k in a.spikes]
    same += [np.array_equal(np.asarray(a.voltages[k]), np.asarray(b.voltages[k])) for k in a.voltages]
    return a.names == b.names and all(same)


def _export(config, qmodel, net, test, out):
    """Design rules, parity with the QAT forward, NIR round trip, py-spinnaker2 bundle, mapping and cost,
    on the first evaluation batch of test gestures (the shapes the evaluation already compiled)."""
    x, n = next(_eval_batches(test, config.eval_batch, len(qmodel.neurons)))
    x = x[:n]
    pop = net.population("input")  # one test gesture as the bundle's example input
    first = D.chip_input(x[:1])[0]
    pop.set_spike_times({int(i): np.nonzero(first[:, i])[0].tolist()
                                        for i in range(first.shape[1]) if first[:, i].any()})
    violations = export.check(net)
    if violations:
        raise export.DesignRuleError(violations)
    report = parity(qmodel, net, x, config.profile, padded=True)
    exact = all(r["spikes"] and r["voltages"] for r in report.values())
    nir_path = out / "dvs_gesture.nir"
    nir_exact = nir_roundtrip(net, nir_path, D.chip_input(x), config.profile)
    ticks = config.ticks + len(qmodel.neurons)
    bundle = export.to_pyspinnaker2(net, out / "pyspinnaker2", timesteps=ticks, overwrite=True)
    mapping = hwmodel.map_to_cores(net)
    _, trace = _chip_run(hwmodel.compile_network(net, config.profile), {"input": D.chip_input(x)})
    cost = hwmodel.estimate_cost(net, trace, mapping=mapping)
    conv_bounds = {p.post.name: _accumulator_bound(p) for p in net.projections if isinstance(p, Conv2DProjection)}
    deploy = {"design_rule_violations": [str(v) for v in violations], "parity_exact": bool(exact),
              "parity": report, "nir_roundtrip_exact": bool(nir_exact),
              "conv_accumulator_bound": conv_bounds,
              "accumulator_limit": 2 ** (SPINNAKER2.mla_accumulator_bits - 1) - 1,
              "cores": mapping.pes, "chips": mapping.chips,
              "latency_s": ticks * cost.tick_s, "compute_latency_s": ticks * cost.latency_per_tick_s,
              "energy_j": ticks * cost.energy_per_tick_j,
              "synaptic_events_per_inference": ticks * cost.synaptic_events_per_tick}
    return [str(nir_path), str(bundle)], deploy, trace


def _accumulator_bound(proj) -> int:
    """``C_in * kH * kW * pool_y * pool_x * max|w|``: the largest |MAC accumulator| of a conv projection."""
    w = np.abs(np.asarray(proj.weights, np.int64))
    c_in, _, kh, kw = w.shape
    return int(c_in * kh * kw * proj.conv_params["pool_y"] * proj.conv_params["pool_x"] * w.max(initial=0))


def _plots(out, s, test, trace, net):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []

    def save(fig, name):
        fig.tight_layout()
        files.append(str(out / name))
        fig.savefig(files[-1], dpi=120)
        plt.close(fig)

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    fl, ql = np.asarray(s["curves"]["float"]["loss"]), np.asarray(s["curves"]["qat"]["loss"])
    a.plot(np.arange(len(fl)), fl, label="float", lw=0.8)
    a.plot(len(fl) + np.arange(len(ql)), ql, label="QAT (chip arithmetic)", lw=0.8)
    a.set_xlabel("training step")
    a.set_ylabel("loss")
    a.legend(fontsize=8)
    fv, qv = s["curves"]["float"]["val"], s["curves"]["qat"]["val"]
    b.plot(range(len(fv)), fv, "o-", label="float")
    b.plot(len(fv) - 1 + np.arange(len(qv)), qv, "s-", label="QAT (= chip model)")
    b.set_xlabel("epoch")
    b.set_ylabel("validation accuracy")
    b.legend(fontsize=8)
    save(fig, "learning_curve.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ps = sorted(float(p) for p in s["ptq"])
    ax.plot(range(len(ps)), [s["ptq"][str(p)]["test"] for p in ps], "o-", c="#c85", label="PTQ, chip model (test)")
    ax.plot(range(len(ps)), [s["ptq"][str(p)]["val"] for p in ps], "o:", c="#c85", alpha=0.5, label="PTQ (validation)")
    ax.axhline(s["float_accuracy"], c="#777", ls="--", label="float")
    ax.axhline(s["qat_accuracy"], c="#38a", ls="-.", label="QAT, chip model")
    ax.set_xticks(range(len(ps)), [f"{p:g}" for p in ps])
    ax.set_xlabel("weight / threshold scaling percentile")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    save(fig, "ptq_sweep.png")

    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    names = ["float", f"PTQ p={s['ptq_best_percentile']:g}", "QAT"]
    vals = [s["float_accuracy"], s["ptq_accuracy"], s["qat_accuracy"]]
    ax.bar(names, vals, color=["#777", "#c85", "#38a"])
    for i, v in enumerate(vals):
        ax.text(i, v, f"{100 * v:.1f}%", ha="center", va="bottom")
    ax.set_ylabel(f"test accuracy ({s['samples']['test']} samples; PTQ/QAT on the chip model)")
    ax.set_ylim(0, 1.05)
    save(fig, "accuracy.png")

    pops = [p.name for p in net.populations[1:-1]]
    fig, axes = plt.subplots(1, 1 + len(pops), figsize=(3 * (1 + len(pops)), 3))
    x = test.spikes[0].astype(np.float64)  # (T, C, H, W)
    axes[0].imshow(x[:, 0].sum(0) - (x[:, 1].sum(0) if x.shape[1] > 1 else 0), cmap="coolwarm")
    axes[0].set_title(f"input, class {test.classes[test.labels[0]]!r}\n(ON - OFF spikes)", fontsize=8)
    for ax, name in zip(axes[1:], pops):
        t_idx, n_idx = np.nonzero(np.asarray(trace.spikes[name][0]))
        ax.scatter(t_idx, n_idx, s=0.5, c="k")
        ax.set_title(f"{name} spikes (chip model)", fontsize=8)
        ax.set_xlabel("tick")
    save(fig, "spikes.png")
    return files


def format_table(summary: dict) -> str:
    """The results table."""
    s = summary
    rows = [("float (float network)", f"{100 * s['float_accuracy']:.2f}%")]
    for p in sorted(s["ptq"], key=float):
        mark = "  <- best on validation" if float(p) == s["ptq_best_percentile"] else ""
        rows.append((f"PTQ, percentile {float(p):g} (chip model)", f"{100 * s['ptq'][p]['test']:.2f}%{mark}"))
    rows += [
        ("QAT, adaptive thresholds (chip model)", f"{100 * s['qat_accuracy']:.2f}%"),
        ("QAT forward == chip model", "exact" if s["parity_exact"] else "MISMATCH"),
        ("NIR export -> import", "exact" if s["nir_roundtrip_exact"] else "MISMATCH"),
        ("design rules", "ok" if not s["design_rule_violations"] else f"{len(s['design_rule_violations'])} violations"),
        ("cores (PEs) used", f"{s['cores']} on {s['chips']} chip(s)"),
        ("latency per gesture", f"{1e3 * s['latency_s']:.0f} ms ({s['ticks_per_inference']} ticks of 1 ms)"),
        ("energy per gesture", f"{1e6 * s['energy_j']:.2f} uJ (estimate)"),
        ("seconds per stage", ", ".join(f"{k} {v:.1f}" for k, v in s["seconds_per_stage"].items())),
    ]
    width = max(len(r[0]) for r in rows)
    n = s["samples"]
    lines = [f"s2jax DVS gesture: {s['dataset']}, {len(s['classes'])} classes, input {tuple(s['input_shape'])} x "
             f"{s['ticks']} ticks, {s['profile']} profile ({n['train']} train / {n['val']} val / {n['test']} test)"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    lines.append("  files:")
    lines += [f"    {f}" for f in s["files"]]
    return "\n".join(lines)
