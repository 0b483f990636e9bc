"""The spiking-DQN pipeline behind ``s2jax demo``: train, quantize at each weight width, fine-tune,
evaluate, export.

Stages (each timed; the trained weights of ``float`` and of each ``qat_<w>bit`` are checkpointed in
``OUT/checkpoints`` (:mod:`s2jax.recipes.checkpoint`) and reused by a rerun with ``resume=True``
when the settings match):

1. ``float``: double DQN with float numerics (:func:`s2jax.recipes.dqn.train`), then the float
   network's greedy return over ``eval_episodes`` episodes;
2. per weight width ``w`` in ``weights`` (:data:`WIDTHS`: 8 bits are ``lif_no_delay`` weights in
   [-127, 127], 4 bits the ``lif`` delay models' weights in [-15, 15]):

   - ``ptq_<w>bit``: post-training quantization (thresholds scaled with the weights) evaluated on the
     chip model;
   - ``qat_<w>bit``: hardware-aware fine-tuning of ``quant.qat(model)`` (forward = the chip's
     arithmetic) starting from the PTQ weights; :func:`dqn.train <s2jax.recipes.dqn.train>` keeps a
     fine-tuned chunk only when its gain over the PTQ weights is sure on held-out episodes, else the
     PTQ weights (:mod:`s2jax.recipes.dqn_eval`); then the greedy return of ``quantize(qat model)``
     on the chip model;
   - ``export_<w>bit``: the design-rule check, a NIR file, a py-spinnaker2 bundle and a board image
     of the fine-tuned network in ``OUT/<w>bit/`` (its input population carries one encoded
     observation as an example), the core mapping and the cost per inference from a chip-model trace
     of evaluation observations.

Every stage shows a progress bar unless ``quiet``. Writes ``summary.json`` (``float_return``,
``float_returns`` (per episode), ``widths`` (per width: ``ptq_return``, ``qat_return``, their
per-episode lists, ``selection`` (the selection's own estimate on its held-out episodes and what it
kept), ``cores``, ``latency_s``, ``energy_j``, ...), ``seconds_per_stage``, ``resumed`` (the stages
whose training a checkpoint replaced), ``files`` (relative to the current folder when under it, else
absolute), and more) and the plots of :mod:`s2jax.recipes.dqn_plots`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from s2jax import export, hwmodel, quant
from s2jax import io as fileio
from s2jax.recipes import checkpoint, dqn, dqn_eval
from s2jax.recipes.dqn_plots import raster_figure, write_plots
from s2jax.recipes.reporting import checkpoint_folder, display_path

__all__ = ["PRESETS", "WIDTHS", "run_pipeline", "format_table", "raster_figure", "display_path"]

PRESETS = {
    "CartPole-v1": dqn.DQNConfig(),
    # rewards of -1 per step: Q-values near -100 are hard for a membrane readout; scaled by 0.1
    "Acrobot-v1": dqn.DQNConfig(env="Acrobot-v1", total_steps=200_000, eps_fraction=0.2, reward_scale=0.1),
}

#: Weight width (bits) -> the neuron model (``quant.QuantConfig.target``) whose weights have that width.
WIDTHS = {8: "lif_no_delay", 4: "lif"}

TRAINING_ONLY = ("eval_episodes",)  # settings that do not change the trained weights


def _config_dict(config, extra) -> dict:
    d = {k: v for k, v in dataclasses.asdict(config).items() if k not in TRAINING_ONLY}
    return json.loads(json.dumps({**d, **extra}, default=str))


def _bar(desc, total, quiet, unit="step"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, leave=True, dynamic_ncols=True)


def _evaluate(config, policy, desc, quiet, **kwargs):
    """``dqn_eval.evaluate`` with a progress bar over the episodes' steps."""
    max_steps = kwargs.get("max_steps") or int(dqn.make_env(config.env)[1].max_steps_in_episode)
    bar = _bar(f"{desc} ({kwargs.get('episodes') or config.eval_episodes} episodes)", max_steps, quiet)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        return dqn_eval.evaluate(config, policy, progress=progress, **kwargs)
    finally:
        bar.close()


class Stage(NamedTuple):
    """What a training stage gives the pipeline (trained now or read back from its checkpoint)."""

    model: object
    curve: np.ndarray
    steps_per_s: float
    resumed: bool
    selection: dict | None


def _train_stage(name, config, model, out, resume, quiet, extra, **kwargs) -> Stage:
    ckpt = out / "checkpoints" / name
    meta = {"stage": name, "config": _config_dict(config, extra)}
    if resume:  # a corrupt or altered checkpoint is named and ignored: the stage trains again and replaces it
        try:
            saved = checkpoint.read_meta(ckpt)
            if saved is not None and saved.get("config") != meta["config"] and not quiet:
                print(f"{name} stage: its checkpoint {display_path(ckpt.with_suffix('.npz'))} was trained with other "
                      f"settings ({_differences(saved.get('config'), meta['config'])}); training the stage again",
                      file=sys.stderr)
            if saved is not None and saved.get("config") == meta["config"]:
                curve, rate = np.asarray(saved["curve"], np.float64), float(saved["steps_per_s"])
                selection = saved.get("selection")
                if selection is not None and not isinstance(selection, dict):
                    raise TypeError(f"its selection is a {type(selection).__name__}, not an object")
                return Stage(checkpoint.load_model(ckpt, model), curve, rate, True, selection)
        except (ValueError, KeyError, TypeError) as err:
            checkpoint.report_ignored(name, ckpt, err, quiet)
    bar = _bar(f"{name} training", dqn.planned_steps(config, kwargs.get("steps")), quiet)  # the steps train runs

    def progress(done, total, mean_ret, greedy_ret):
        bar.total = total
        bar.update(done - bar.n)
        bar.set_postfix(greedy_return=f"{greedy_ret:.1f}")

    result = dqn.train(config, model, dqn.snn_q(config), progress=progress, **kwargs)
    bar.close()
    selection = result.selection.as_dict() if result.selection is not None else None
    checkpoint.save_model(ckpt, result.model, {**meta, "curve": result.returns.tolist(),
                                               "steps_per_s": result.steps_per_s, "selection": selection})
    return Stage(result.model, result.returns, result.steps_per_s, False, selection)


def _differences(old, new) -> str:
    """The settings that differ between two stage configs, named (at most five)."""
    if not isinstance(old, dict):
        return "no settings recorded"
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k, "<absent>") != new.get(k, "<absent>"))
    return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _json_safe(value):
    """``value`` with every NaN or infinite float as None: ``summary.json`` is strict JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


#: What s2jax before the per-width layout wrote at the top of the output folder.
OLD_LAYOUT = ("qnet.nir", "qnet.s2img", "pyspinnaker2", "spike_raster.png", "checkpoints/qat.npz")


def _warn_old_layout(out: Path, quiet: bool):
    old = [name for name in OLD_LAYOUT if (out / name).exists()]
    if old and not quiet:
        print(f"note: {', '.join(old)} in {display_path(out)} are from an older s2jax (one weight width) and are "
              f"left as they are; this run writes its artefacts into {display_path(out)}/<bits>bit/", file=sys.stderr)


def _example_input(net, config, obs):
    """Put one encoded observation into the input population, so the bundle and image run an inference."""
    spikes = np.asarray(dqn.encode(config, obs[None]))[0] > 0.5
    pop = net.population("input")
    pop.set_spike_times({int(i): np.nonzero(spikes[:, i])[0].tolist()
                                        for i in range(spikes.shape[1]) if spikes[:, i].any()})


def _check_weights(weights) -> tuple[int, ...]:
    weights = tuple(weights)
    if not weights or any(isinstance(w, bool) or w not in WIDTHS for w in weights) or len(set(weights)) < len(weights):
        raise ValueError(f"weights must name distinct widths among {sorted(WIDTHS)} (bits), got {list(weights)}")
    return weights


def run_pipeline(config: dqn.DQNConfig, out="s2jax-demo", *, weights=(8, 4), qat_steps: int = 50_000,
                 qat_lr: float = 1e-4, profile: str = "float32", resume: bool = False, quiet: bool = False,
                 plots: bool = True) -> dict:
    """Run every stage for ``config`` at each weight width in ``weights`` (bits, :data:`WIDTHS`) and write
    the results into ``out``; returns the summary."""
    weights = _check_weights(weights)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _warn_old_layout(out, quiet)
    env, env_params = dqn.make_env(config.env)
    obs_dim = int(np.prod(env.observation_space(env_params).shape))
    n_actions = int(env.action_space(env_params).n)
    seconds, resumed, files = {}, {}, []
    q_fn = dqn.snn_q(config)

    t = time.perf_counter()
    fl = _train_stage("float", config, dqn.make_qnet(config, obs_dim, n_actions), out, resume, quiet, {})
    resumed["float"] = fl.resumed
    float_ret, _ = _evaluate(config, lambda o: jnp.argmax(q_fn(fl.model, o), axis=1), "float evaluation", quiet)
    seconds["float"] = time.perf_counter() - t

    widths, qat_curves, traces = {}, {}, {}
    for w in weights:
        key, folder = str(w), f"{w}bit"
        qconfig = quant.QuantConfig(target=WIDTHS[w], profile=profile)
        t = time.perf_counter()
        ptq_policy, _ = dqn_eval.chip_policy(config, quant.qat(fl.model, qconfig), profile)
        ptq_ret, _ = _evaluate(config, ptq_policy, f"PTQ {w}-bit evaluation, chip model", quiet)
        seconds[f"ptq_{folder}"] = time.perf_counter() - t

        t = time.perf_counter()
        qat_extra = {"qat_steps": qat_steps, "qat_lr": qat_lr, "profile": profile, "target": WIDTHS[w],
                     "float_weights": checkpoint.weights_digest(fl.model)}  # resume only from these
        qs = _train_stage(f"qat_{folder}", config, quant.qat(fl.model, qconfig), out, resume, quiet, qat_extra,
                          steps=qat_steps, eps_schedule=False, lr=qat_lr)
        resumed[f"qat_{folder}"] = qs.resumed
        qat_policy, net = dqn_eval.chip_policy(config, qs.model, profile)
        qat_ret, seen = _evaluate(config, qat_policy, f"QAT {w}-bit evaluation, chip model", quiet, record=20)
        seconds[f"qat_{folder}"] = time.perf_counter() - t

        t = time.perf_counter()
        width_files, cost, traces[key] = _export(config, qs.model, net, seen, out / folder, profile, quiet,
                                                 desc=f"export {w}-bit")
        seconds[f"export_{folder}"] = time.perf_counter() - t
        files += width_files
        qat_curves[key] = qs.curve
        widths[key] = {
            "bits": w, "model": WIDTHS[w], "weight_limit": qconfig.weight_limit(WIDTHS[w]),
            "label": f"{w}-bit ({WIDTHS[w]})", "folder": folder,
            "ptq_return": float(np.mean(ptq_ret)), "qat_return": float(np.mean(qat_ret)),
            "ptq_returns": ptq_ret.tolist(), "qat_returns": qat_ret.tolist(), "selection": qs.selection,
            "qat_env_steps_per_s": float(qs.steps_per_s), "layers": len(qs.model.neurons),
            "recorded_steps": int(len(seen)), **cost,
        }

    summary = {
        "env": config.env,
        "episodes": int(config.eval_episodes),
        "float_return": float(np.mean(float_ret)),
        "float_returns": float_ret.tolist(),
        "float_selection": fl.selection,
        "widths": widths,
        "train_env_steps_per_s": float(fl.steps_per_s),
        "seconds_per_stage": {k: round(v, 2) for k, v in seconds.items()},
        "resumed": resumed,
        "settings": _config_dict(config, {"weights": list(weights), "qat_steps": qat_steps, "qat_lr": qat_lr,
                                          "profile": profile}),
        "files": files,
    }
    if plots:
        summary["files"] += write_plots(out, summary, fl.curve, qat_curves, traces)
    summary["files"].append(str(out / "summary.json"))
    summary["files"] = [display_path(f) for f in summary["files"]]
    summary = _json_safe(summary)
    fileio.atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, allow_nan=False))
    return summary


EXPORT_STEPS = ("design rules", "NIR file", "py-spinnaker2 bundle", "board image", "core mapping",
                "cost trace")


def _export(config, qmodel, net, seen, out, profile, quiet=True, desc="export"):
    """Check, write NIR / bundle / image into ``out``, map onto cores and estimate the cost per
    inference. Returns ``(files, cost numbers, chip-model trace of the recorded steps)``."""
    import nir

    out.mkdir(parents=True, exist_ok=True)
    bar = _bar(desc, len(EXPORT_STEPS), quiet, unit="part")

    def done(k):  # part k is done: show the next one
        bar.set_postfix_str(EXPORT_STEPS[min(k + 1, len(EXPORT_STEPS) - 1)], refresh=False)
        bar.update(1)

    bar.set_postfix_str(EXPORT_STEPS[0])
    violations = export.check(net)
    if violations:
        bar.close()
        raise export.DesignRuleError(violations)
    done(0)
    ticks = config.ticks + len(qmodel.neurons)
    _example_input(net, config, seen[0])
    nir_path = out / "qnet.nir"
    fileio.atomic_write(nir_path, lambda tmp: nir.write(tmp, export.to_nir(net)))
    done(1)
    bundle = export.to_pyspinnaker2(net, out / "pyspinnaker2", timesteps=ticks, overwrite=True)
    done(2)
    image_path = out / "qnet.s2img"
    export.save_image(net, image_path)
    done(3)
    mapping = hwmodel.map_to_cores(net)
    done(4)
    x = np.asarray(dqn.encode(config, jnp.asarray(seen))) > 0.5
    _, trace = jax.jit(hwmodel.run)(hwmodel.compile_network(net, profile), {"input": x})
    cost = hwmodel.estimate_cost(net, trace, mapping=mapping)
    done(5)
    bar.close()
    numbers = {"cores": mapping.pes, "chips": mapping.chips, "ticks_per_inference": ticks,
               "latency_s": ticks * cost.tick_s, "compute_latency_s": ticks * cost.latency_per_tick_s,
               "energy_j": ticks * cost.energy_per_tick_j,
               "synaptic_events_per_inference": ticks * cost.synaptic_events_per_tick}
    return [str(nir_path), str(bundle), str(image_path)], numbers, trace


def _stage_seconds(seconds: dict, resumed: dict) -> str:
    """``float 0.4 (training resumed), ptq_8bit 3.4, ...``: a stage whose training was skipped says so."""
    return ", ".join(f"{k} {v:.1f}" + (" (training resumed)" if resumed.get(k) else "") for k, v in seconds.items())


def _selection_text(sel: dict | None) -> str:
    """The selection's own estimate of the kept weights and what it kept, in a few words."""
    if not sel or sel.get("estimate") is None:
        return "-"
    kept = ("PTQ weights kept (no chunk surely better)" if sel["kept_chunk"] < 0
            else f"chunk {sel['kept_chunk'] + 1} kept")
    return f"{sel['estimate']:.1f} on {sel['episodes']} held-out episodes, {kept}"


def format_table(summary: dict) -> str:
    """The demo's one table: a row per weight width (float, PTQ and QAT returns side by side, and the
    fine-tuning selection's own estimate), then cost, throughput, times and files. Stages resumed from
    checkpoints are named, and the training throughput of a resumed float stage (measured by an
    earlier run) is not shown as if measured now."""
    s = summary
    widths = s["widths"]
    resumed = [k for k, v in s.get("resumed", {}).items() if v]
    lines = [f"s2jax demo: spiking DQN on {s['env']}, mean greedy return over {s['episodes']} episodes "
             f"(PTQ and QAT on the chip model)"]
    head = ("weights", "float", "PTQ", "QAT", "QAT selection estimate")
    rows = [(v["label"], f"{s['float_return']:.1f}", f"{v['ptq_return']:.1f}", f"{v['qat_return']:.1f}",
             _selection_text(v.get("selection"))) for v in widths.values()]
    cols = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    for r in (head, *rows):
        lines.append("  " + "  ".join(c.ljust(n) if i in (0, 4) else c.rjust(n)
                                      for i, (c, n) in enumerate(zip(r, cols))).rstrip())
    rate = s.get("train_env_steps_per_s")
    rate = ("not measured (float training resumed from its checkpoint)" if "float" in resumed
            else "not measured (a single training chunk: its time includes compilation)" if rate is None
            else f"{rate:,.0f}")
    per_width = "; ".join
    info = [
        ("cores (PEs) used", per_width(f"{v['bits']}-bit {v['cores']} on {v['chips']} chip(s)" for v in widths.values())),
        ("latency per inference", per_width(f"{v['bits']}-bit {1e3 * v['latency_s']:.1f} ms ({v['ticks_per_inference']} "
                                            f"ticks of 1 ms; compute {1e6 * v['compute_latency_s']:.1f} us)"
                                            for v in widths.values()) + " (estimate)"),
        ("energy per inference", per_width(f"{v['bits']}-bit {1e6 * v['energy_j']:.3f} uJ" for v in widths.values())
         + " (estimate)"),
        ("training env steps/s", rate),
        ("seconds per stage", _stage_seconds(s["seconds_per_stage"], s.get("resumed", {}))),
    ]
    if resumed:
        info.append(("skipped (resumed)", f"{' and '.join(resumed)} training: weights from {checkpoint_folder(s)}"))
    width = max(len(r[0]) for r in info)
    lines += [f"  {k:<{width}}  {v}" for k, v in info]
    lines.append("  files:")
    lines += [f"    {f}" for f in s["files"]]
    return "\n".join(lines)
