"""The DVS-gesture pipeline: train, quantize, fine-tune, evaluate on the chip model, export.

The pieces (config, presets, model, training, evaluation, PTQ sweep, parity and NIR checks) are in
:mod:`s2jax.recipes.dvs`; this module chains them.

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
from pathlib import Path

import numpy as np

from s2jax import SPINNAKER2, export, hwmodel, quant
from s2jax import io as fileio
from s2jax import data as D
from s2jax.kinds.mla import conv_accumulator_bound
from s2jax.qnet import Conv2DProjection
from s2jax.recipes import checkpoint, dvs
from s2jax.recipes.reporting import checkpoint_folder, display_path

__all__ = ["run_pipeline", "format_table", "spikes_figure"]


NOT_FLOAT = ("percentiles", "qat_epochs", "qat_lr", "profile", "eval_batch", "cache_dir")  # no effect on float weights


def _settings(config: dvs.DVSConfig, drop=("eval_batch", "cache_dir"), **extra) -> dict:
    """The settings a stage's checkpoint depends on, as JSON values."""
    d = {k: v for k, v in dataclasses.asdict(config).items() if k not in drop}
    return json.loads(json.dumps({**d, **extra}, default=str))


def _stage(name, meta_config, model, out, resume, fit, quiet=False):
    """Run ``fit(model) -> curve`` or, with ``resume`` and equal settings, load the checkpoint (a
    corrupt or altered one is named on stderr unless ``quiet``, and ``fit`` runs and replaces it)."""
    ckpt = out / "checkpoints" / name
    if resume:
        try:
            saved = checkpoint.read_meta(ckpt)
            if saved is not None and saved.get("config") == meta_config:
                curve = saved["curve"]
                return checkpoint.load_model(ckpt, model), curve, True
        except (ValueError, KeyError, TypeError) as err:
            checkpoint.report_ignored(name, ckpt, err, quiet)
    curve = fit(model)
    checkpoint.save_model(ckpt, model, {"stage": name, "config": meta_config, "curve": curve})
    return model, curve, False


def run_pipeline(config: dvs.DVSConfig = dvs.PRESETS["synthetic"], out="s2jax-dvs", *, resume: bool = False,
                 quiet: bool = False, plots: bool = True) -> dict:
    """Run every stage (module docstring) and write the results into ``out``; returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds, resumed = {}, {}
    t = time.perf_counter()
    train_d, val, test = dvs.load_data(config, cache_dir=out / "cache", progress=not quiet)
    shape, n_classes = train_d.sample_shape[1:], len(train_d.classes)
    seconds["data"] = time.perf_counter() - t

    t = time.perf_counter()
    model = dvs.build_model(config, shape, n_classes)
    dvs.preflight(model, config, shape)
    model, float_curve, resumed["float"] = _stage(
        "float", _settings(config, NOT_FLOAT), model, out, resume,
        lambda m: dvs.train(m, train_d, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                        seed=config.seed, val_data=val, eval_batch=config.eval_batch, quiet=quiet,
                        desc="float training"), quiet=quiet)
    float_acc = dvs.float_accuracy(model, test, config.eval_batch)
    seconds["float"] = time.perf_counter() - t

    t = time.perf_counter()
    sweep = dvs.ptq_sweep(model, config, val, test, shape, quiet=quiet)
    p_best = dvs.best_percentile(sweep)
    seconds["ptq"] = time.perf_counter() - t

    t = time.perf_counter()
    qmodel = quant.qat(model, dvs.quant_config(config, p_best, adaptive=True))
    qmodel, qat_curve, resumed["qat"] = _stage(
        "qat", _settings(config, percentile=p_best), qmodel, out, resume,
        lambda q: dvs.train(q, train_d, epochs=config.qat_epochs, batch_size=config.batch_size, lr=config.qat_lr,
                        seed=config.seed + 1, val_data=val, eval_batch=config.eval_batch, quiet=quiet,
                        desc="QAT fine-tuning"), quiet=quiet)
    net = quant.quantize(qmodel, input_shape=shape, name="dvs_gesture")
    qat_scores = dvs.chip_scores(net, test, config.profile, config.eval_batch, quiet)
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
    summary["files"] = [display_path(f) for f in summary["files"]]
    fileio.atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _export(config, qmodel, net, test, out):
    """Design rules, parity with the QAT forward, NIR round trip, py-spinnaker2 bundle, mapping and cost,
    on the first evaluation batch of test gestures (the shapes the evaluation already compiled)."""
    x, n = next(dvs.eval_batches(test, config.eval_batch, len(qmodel.neurons)))
    x = x[:n]
    pop = net.population("input")  # one test gesture as the bundle's example input
    first = D.chip_input(x[:1])[0]
    pop.set_spike_times({int(i): np.nonzero(first[:, i])[0].tolist()
                                        for i in range(first.shape[1]) if first[:, i].any()})
    violations = export.check(net)
    if violations:
        raise export.DesignRuleError(violations)
    report = dvs.parity(qmodel, net, x, config.profile, padded=True)
    exact = all(r["spikes"] and r["voltages"] for r in report.values())
    nir_path = out / "dvs_gesture.nir"
    nir_exact = dvs.nir_roundtrip(net, nir_path, D.chip_input(x), config.profile)
    ticks = config.ticks + len(qmodel.neurons)
    bundle = export.to_pyspinnaker2(net, out / "pyspinnaker2", timesteps=ticks, overwrite=True)
    mapping = hwmodel.map_to_cores(net)
    _, trace = dvs.chip_run(hwmodel.compile_network(net, config.profile), {"input": D.chip_input(x)})
    cost = hwmodel.estimate_cost(net, trace, mapping=mapping)
    conv_bounds = {p.post.name: conv_accumulator_bound(p) for p in net.projections if isinstance(p, Conv2DProjection)}
    deploy = {"design_rule_violations": [str(v) for v in violations], "parity_exact": bool(exact),
              "parity": report, "nir_roundtrip_exact": bool(nir_exact),
              "conv_accumulator_bound": conv_bounds,
              "accumulator_limit": 2 ** (SPINNAKER2.mla_accumulator_bits - 1) - 1,
              "cores": mapping.pes, "chips": mapping.chips,
              "latency_s": ticks * cost.tick_s, "compute_latency_s": ticks * cost.latency_per_tick_s,
              "energy_j": ticks * cost.energy_per_tick_j,
              "synaptic_events_per_inference": ticks * cost.synaptic_events_per_tick}
    return [str(nir_path), str(bundle)], deploy, trace


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

    save(spikes_figure(test, trace, [p.name for p in net.populations[1:-1]]), "spikes.png")
    return files


def spikes_figure(test, trace, pops):
    """The first test gesture as a heatmap of ON minus OFF spikes per pixel (symmetric colour scale,
    with a colorbar) and the chip model's spikes of the populations ``pops`` for it."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(pops), figsize=(3 * (1 + len(pops)) + 0.6, 3))
    axes = np.atleast_1d(axes)
    x = test.spikes[0].astype(np.float64)  # (T, C, H, W)
    diff = x[:, 1].sum(0) - x[:, 0].sum(0) if x.shape[1] > 1 else x[:, 0].sum(0)  # channel 1 = ON (p=1)
    m = max(float(np.abs(diff).max()), 1.0)
    image = axes[0].imshow(diff, cmap="coolwarm", vmin=-m, vmax=m)
    bar = fig.colorbar(image, ax=axes[0], fraction=0.046, pad=0.04)
    bar.set_label("ON - OFF spikes per pixel" if x.shape[1] > 1 else "spikes per pixel", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    axes[0].set_title(f"input, class {test.classes[test.labels[0]]!r}", fontsize=8)
    for ax, name in zip(axes[1:], pops):
        t_idx, n_idx = np.nonzero(np.asarray(trace.spikes[name][0]))
        ax.scatter(t_idx, n_idx, s=0.5, c="k")
        ax.set_title(f"{name} spikes (chip model)", fontsize=8)
        ax.set_xlabel("tick")
    return fig


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
        ("seconds per stage", ", ".join(f"{k} {v:.1f}" + (" (training resumed)" if s.get("resumed", {}).get(k) else "")
                                        for k, v in s["seconds_per_stage"].items())),
    ]
    resumed = [k for k, v in s.get("resumed", {}).items() if v]
    if resumed:
        rows.append(("skipped (resumed)", f"{' and '.join(resumed)} training: weights from {checkpoint_folder(s)}"))
    width = max(len(r[0]) for r in rows)
    n = s["samples"]
    lines = [f"s2jax DVS gesture: {s['dataset']}, {len(s['classes'])} classes, input {tuple(s['input_shape'])} x "
             f"{s['ticks']} ticks, {s['profile']} profile ({n['train']} train / {n['val']} val / {n['test']} test)"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    lines.append("  files:")
    lines += [f"    {f}" for f in s["files"]]
    return "\n".join(lines)
