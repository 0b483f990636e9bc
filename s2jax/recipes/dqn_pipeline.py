"""The spiking-DQN pipeline behind ``s2jax demo``: train, quantize, fine-tune, evaluate, export.

Stages (each timed; the trained weights of ``float`` and ``qat`` are checkpointed in
``OUT/checkpoints`` (:mod:`s2jax.recipes.checkpoint`) and reused by a rerun with ``resume=True``
when the settings match):

1. ``float``: double DQN with float numerics (:func:`s2jax.recipes.dqn.train`);
2. ``ptq``: the float network's greedy return over ``eval_episodes`` episodes, then its
   post-training quantization (8-bit ``lif_no_delay`` weights, thresholds scaled with the weights)
   evaluated on the chip model;
3. ``qat``: hardware-aware fine-tuning of ``quant.qat(model)`` (forward = the chip's arithmetic),
   then the greedy return of ``quantize(qat model)`` on the chip model;
4. ``export``: the design-rule check, a NIR file, a py-spinnaker2 bundle and a board image of the
   fine-tuned network (its input population carries one encoded observation as an example), the
   core mapping and the cost per inference from a chip-model trace of evaluation observations.

Every stage shows a progress bar unless ``quiet`` (training: the env steps :func:`dqn.train` will
run, known up front; evaluations: the episodes' steps; export: its parts). Writes ``summary.json``
(keys ``float_return``, ``ptq_return``, ``qat_return``, ``cores``, ``latency_s``, ``energy_j``,
``seconds_per_stage``, ``resumed`` (the stages whose training a checkpoint replaced), ``files``
(relative to the current folder when under it, else absolute), and more) and three plots.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from s2jax import export, fileio, hwmodel, quant
from s2jax.recipes import checkpoint, dqn

__all__ = ["PRESETS", "run_pipeline", "format_table", "raster_figure", "display_path"]

PRESETS = {
    "CartPole-v1": dqn.DQNConfig(),
    # rewards of -1 per step: Q-values near -100 are hard for a membrane readout; scaled by 0.1
    "Acrobot-v1": dqn.DQNConfig(env="Acrobot-v1", total_steps=200_000, eps_fraction=0.2, reward_scale=0.1),
}


TRAINING_ONLY = ("eval_episodes",)  # settings that do not change the trained weights


def _config_dict(config, extra) -> dict:
    d = {k: v for k, v in dataclasses.asdict(config).items() if k not in TRAINING_ONLY}
    return json.loads(json.dumps({**d, **extra}, default=str))


def _bar(desc, total, quiet, unit="step"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, leave=True, dynamic_ncols=True)


def _evaluate(config, policy, desc, quiet, **kwargs):
    """``dqn.evaluate`` with a progress bar over the episodes' steps."""
    max_steps = kwargs.get("max_steps") or int(dqn.make_env(config.env)[1].max_steps_in_episode)
    bar = _bar(f"{desc} ({kwargs.get('episodes') or config.eval_episodes} episodes)", max_steps, quiet)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        return dqn.evaluate(config, policy, progress=progress, **kwargs)
    finally:
        bar.close()


def display_path(path) -> str:
    """``path`` relative to the current folder when it lies under it, else absolute (one style for lists)."""
    p = Path(os.path.abspath(path))  # abspath also folds "..", so "../x" counts as outside
    try:
        return str(p.relative_to(os.path.abspath(os.getcwd())))
    except ValueError:
        return str(p)


def _train_stage(name, config, model, out, resume, quiet, extra, **kwargs):
    ckpt = out / "checkpoints" / name
    meta = {"stage": name, "config": _config_dict(config, extra)}
    if resume:  # a corrupt or altered checkpoint is named and ignored: the stage trains again and replaces it
        try:
            saved = checkpoint.read_meta(ckpt)
            if saved is not None and saved.get("config") == meta["config"]:
                curve, rate = np.asarray(saved["curve"], np.float64), float(saved["steps_per_s"])
                return checkpoint.load_model(ckpt, model), curve, rate, True
        except (ValueError, KeyError, TypeError) as err:
            checkpoint.report_ignored(name, ckpt, err, quiet)
    bar = _bar(f"{name} training", dqn.planned_steps(config, kwargs.get("steps")), quiet)  # the steps train runs

    def progress(done, total, mean_ret, greedy_ret):
        bar.total = total
        bar.update(done - bar.n)
        bar.set_postfix(greedy_return=f"{greedy_ret:.1f}")

    result = dqn.train(config, model, dqn.snn_q(config), progress=progress, **kwargs)
    bar.close()
    checkpoint.save_model(ckpt, result.model, {**meta, "curve": result.returns.tolist(),
                                               "steps_per_s": result.steps_per_s})
    return result.model, result.returns, result.steps_per_s, False


def _example_input(net, config, obs):
    """Put one encoded observation into the input population, so the bundle and image run an inference."""
    spikes = np.asarray(dqn.encode(config, obs[None]))[0] > 0.5
    pop = net.population("input")
    pop.set_spike_times({int(i): np.nonzero(spikes[:, i])[0].tolist()
                                        for i in range(spikes.shape[1]) if spikes[:, i].any()})


def run_pipeline(config: dqn.DQNConfig, out="s2jax-demo", *, qat_steps: int = 50_000, qat_lr: float = 1e-4,
                 profile: str = "float32", resume: bool = False, quiet: bool = False, plots: bool = True) -> dict:
    """Run every stage for ``config`` and write the results into ``out``; returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env, env_params = dqn.make_env(config.env)
    obs_dim = int(np.prod(env.observation_space(env_params).shape))
    n_actions = int(env.action_space(env_params).n)
    qconfig = quant.QuantConfig(target="lif_no_delay", profile=profile)
    extra = {"qat_steps": qat_steps, "qat_lr": qat_lr, "profile": profile}
    seconds, resumed = {}, {}
    q_fn = dqn.snn_q(config)

    t = time.perf_counter()
    model, float_curve, float_rate, resumed["float"] = _train_stage(
        "float", config, dqn.make_qnet(config, obs_dim, n_actions), out, resume, quiet, {})
    seconds["float"] = time.perf_counter() - t

    t = time.perf_counter()
    float_ret, _ = _evaluate(config, lambda o: jnp.argmax(q_fn(model, o), axis=1), "float evaluation", quiet)
    ptq_model = quant.qat(model, qconfig)
    ptq_policy, _ = dqn.chip_policy(config, ptq_model, profile)
    ptq_ret, _ = _evaluate(config, ptq_policy, "PTQ evaluation, chip model", quiet)
    seconds["ptq"] = time.perf_counter() - t

    t = time.perf_counter()
    qat_extra = {**extra, "float_weights": checkpoint.weights_digest(model)}  # resume only from these
    qmodel, qat_curve, qat_rate, resumed["qat"] = _train_stage(
        "qat", config, quant.qat(model, qconfig), out, resume, quiet, qat_extra,
        steps=qat_steps, eps_schedule=False, lr=qat_lr)
    qat_policy, net = dqn.chip_policy(config, qmodel, profile)
    qat_ret, seen = _evaluate(config, qat_policy, "QAT evaluation, chip model", quiet, record=20)
    seconds["qat"] = time.perf_counter() - t

    t = time.perf_counter()
    files, summary_extra, trace = _export(config, qmodel, net, seen, out, profile, quiet)
    seconds["export"] = time.perf_counter() - t

    summary = {
        "env": config.env,
        "float_return": float(np.mean(float_ret)),
        "ptq_return": float(np.mean(ptq_ret)),
        "qat_return": float(np.mean(qat_ret)),
        "episodes": int(len(qat_ret)),
        **summary_extra,
        "train_env_steps_per_s": float(float_rate),
        "qat_env_steps_per_s": float(qat_rate),
        "seconds_per_stage": {k: round(v, 2) for k, v in seconds.items()},
        "resumed": resumed,
        "settings": _config_dict(config, extra),
        "files": files,
    }
    if plots:
        summary["files"] += _plots(out, float_curve, qat_curve, summary, seen, qmodel, trace)
    summary["files"].append(str(out / "summary.json"))
    summary["files"] = [display_path(f) for f in summary["files"]]
    fileio.atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


EXPORT_STEPS = ("design rules", "NIR file", "py-spinnaker2 bundle", "board image", "core mapping",
                "cost trace")


def _export(config, qmodel, net, seen, out, profile, quiet=True):
    """Check, write NIR / bundle / image, map onto cores and estimate the cost per inference."""
    import nir

    bar = _bar("export", len(EXPORT_STEPS), quiet, unit="part")

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
    extra = {"cores": mapping.pes, "chips": mapping.chips, "ticks_per_inference": ticks,
             "latency_s": ticks * cost.tick_s, "compute_latency_s": ticks * cost.latency_per_tick_s,
             "energy_j": ticks * cost.energy_per_tick_j,
             "synaptic_events_per_inference": ticks * cost.synaptic_events_per_tick}
    return [str(nir_path), str(bundle), str(image_path)], extra, trace


def _plots(out, float_curve, qat_curve, summary, seen, qmodel, trace):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(float_curve[:, 0], float_curve[:, 2], "o-", label="float, greedy")
    ax.plot(float_curve[:, 0], float_curve[:, 1], ".:", alpha=0.6, label="float, exploring")
    if len(qat_curve):
        x0 = float_curve[-1, 0]
        ax.plot(x0 + qat_curve[:, 0], qat_curve[:, 2], "s-", label="QAT (chip arithmetic), greedy")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(f"{summary['env']}: learning curve")
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(str(out / "learning_curve.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    names = ["float", "PTQ (chip model)", "QAT (chip model)"]
    vals = [summary["float_return"], summary["ptq_return"], summary["qat_return"]]
    ax.bar(names, vals, color=["#777", "#c85", "#38a"])
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom")
    ax.set_ylabel(f"mean greedy return, {summary['episodes']} episodes")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    files.append(str(out / "returns.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)

    fig = raster_figure(trace, len(qmodel.neurons), summary["ticks_per_inference"], len(seen))
    files.append(str(out / "spike_raster.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    return files


ACTION_STYLES = (("#1f77b4", "-"), ("#d62728", "--"), ("#2ca02c", ":"), ("#9467bd", "-."))


def raster_figure(trace, n_layers: int, ticks: int, steps: int):
    """The chip model's hidden spikes (one raster per hidden layer) and the readout membrane of each
    action (its Q-value), each action in its own colour and line style, with a legend."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_layers, 1, figsize=(8, 5), sharex=True)
    axes = np.atleast_1d(axes)
    for k, ax in enumerate(axes):
        name = f"layer{k}"
        s = np.asarray(trace.spikes[name] if k < n_layers - 1 else trace.voltages[name])
        flat = s.reshape(-1, s.shape[-1])  # (steps * ticks, neurons)
        if k < n_layers - 1:
            t_idx, n_idx = np.nonzero(flat)
            ax.scatter(t_idx, n_idx, s=1, c="k")
            ax.set_ylabel(f"{name}\nneuron")
        else:
            for a in range(flat.shape[1]):
                color, style = ACTION_STYLES[a % len(ACTION_STYLES)]
                ax.plot(flat[:, a], color=color, ls=style, lw=1.0, label=f"action {a}")
            ax.set_ylabel("readout\nvoltage")
            ax.legend(title="Q-value membrane", fontsize=7, title_fontsize=7, loc="upper right")
    axes[-1].set_xlabel(f"chip tick ({ticks} ticks per environment step, {steps} steps)")
    fig.suptitle("chip model, one episode: hidden spikes and Q-value membranes")
    fig.tight_layout()
    return fig


def _checkpoints(summary: dict) -> str:
    """The checkpoint folder of a run, next to its summary.json (the last file listed)."""
    files = summary.get("files") or []
    return os.path.join(os.path.dirname(files[-1]), "checkpoints", "") if files else "checkpoints/"


def _stage_seconds(seconds: dict, resumed: dict) -> str:
    """``float 0.4 (resumed), ptq 3.4, ...``: a stage whose training was skipped says so."""
    return ", ".join(f"{k} {v:.1f}" + (" (training resumed)" if resumed.get(k) else "") for k, v in seconds.items())


def format_table(summary: dict) -> str:
    """The demo's one table. Stages resumed from checkpoints are named, and the training throughput
    of a resumed float stage (measured by an earlier run) is not shown as if measured now."""
    s = summary
    resumed = [k for k, v in s.get("resumed", {}).items() if v]
    rate = (f"{s['train_env_steps_per_s']:,.0f}" if "float" not in resumed
            else "not measured (float training resumed from its checkpoint)")
    rows = [
        ("float return (float network)", f"{s['float_return']:.1f}"),
        ("PTQ return (8-bit, chip model)", f"{s['ptq_return']:.1f}"),
        ("QAT return (8-bit, chip model)", f"{s['qat_return']:.1f}"),
        ("cores (PEs) used", f"{s['cores']} on {s['chips']} chip(s)"),
        ("latency per inference", f"{1e3 * s['latency_s']:.1f} ms ({s['ticks_per_inference']} ticks of 1 ms; "
                                  f"compute {1e6 * s['compute_latency_s']:.1f} us, estimate)"),
        ("energy per inference", f"{1e6 * s['energy_j']:.3f} uJ (estimate)"),
        ("training env steps/s", rate),
        ("seconds per stage", _stage_seconds(s["seconds_per_stage"], s.get("resumed", {}))),
    ]
    if resumed:
        rows.append(("skipped (resumed)", f"{' and '.join(resumed)} training: weights from {_checkpoints(s)}"))
    width = max(len(r[0]) for r in rows)
    lines = [f"s2jax demo: spiking DQN on {s['env']} ({s['episodes']} greedy episodes each)"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    lines.append("  files:")
    lines += [f"    {f}" for f in s["files"]]
    return "\n".join(lines)
