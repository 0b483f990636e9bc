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

Writes ``summary.json`` (keys ``float_return``, ``ptq_return``, ``qat_return``, ``cores``,
``latency_s``, ``energy_j``, ``seconds_per_stage``, ``files``, and more) and three plots.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from s2jax import export, hwmodel, quant
from s2jax.recipes import checkpoint, dqn

__all__ = ["PRESETS", "run_pipeline", "format_table"]

PRESETS = {
    "CartPole-v1": dqn.DQNConfig(),
    # rewards of -1 per step: Q-values near -100 are hard for a membrane readout; scaled by 0.1
    "Acrobot-v1": dqn.DQNConfig(env="Acrobot-v1", total_steps=200_000, eps_fraction=0.2, reward_scale=0.1),
}


TRAINING_ONLY = ("eval_episodes",)  # settings that do not change the trained weights


def _config_dict(config, extra) -> dict:
    d = {k: v for k, v in dataclasses.asdict(config).items() if k not in TRAINING_ONLY}
    return json.loads(json.dumps({**d, **extra}, default=str))


def _bar(desc, total, quiet):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=quiet, leave=True, dynamic_ncols=True)


def _train_stage(name, config, model, out, resume, quiet, extra, **kwargs):
    ckpt = out / "checkpoints" / name
    meta = {"stage": name, "config": _config_dict(config, extra)}
    saved = checkpoint.read_meta(ckpt)
    if resume and saved is not None and saved.get("config") == meta["config"]:
        return checkpoint.load_model(ckpt, model), np.asarray(saved["curve"], np.float64), saved["steps_per_s"], True
    steps = kwargs.get("steps") or config.total_steps
    bar = _bar(f"{name} training", steps, quiet)

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
    float_ret, _ = dqn.evaluate(config, lambda o: jnp.argmax(q_fn(model, o), axis=1))
    ptq_model = quant.qat(model, qconfig)
    ptq_policy, _ = dqn.chip_policy(config, ptq_model, profile)
    ptq_ret, _ = dqn.evaluate(config, ptq_policy)
    seconds["ptq"] = time.perf_counter() - t

    t = time.perf_counter()
    qat_extra = {**extra, "float_weights": checkpoint.weights_digest(model)}  # resume only from these
    qmodel, qat_curve, qat_rate, resumed["qat"] = _train_stage(
        "qat", config, quant.qat(model, qconfig), out, resume, quiet, qat_extra,
        steps=qat_steps, eps_schedule=False, lr=qat_lr)
    qat_policy, net = dqn.chip_policy(config, qmodel, profile)
    qat_ret, seen = dqn.evaluate(config, qat_policy, record=20)
    seconds["qat"] = time.perf_counter() - t

    t = time.perf_counter()
    files, summary_extra, trace = _export(config, qmodel, net, seen, out, profile)
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
    checkpoint.atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=1)))
    return summary


def _export(config, qmodel, net, seen, out, profile):
    """Check, write NIR / bundle / image, map onto cores and estimate the cost per inference."""
    import nir

    violations = export.check(net)
    if violations:
        raise export.DesignRuleError(violations)
    ticks = config.ticks + len(qmodel.neurons)
    _example_input(net, config, seen[0])
    nir_path = out / "qnet.nir"
    checkpoint.atomic_write(nir_path, lambda tmp: nir.write(tmp, export.to_nir(net)))
    bundle = export.to_pyspinnaker2(net, out / "pyspinnaker2", timesteps=ticks, overwrite=True)
    image_path = out / "qnet.s2img"
    export.save_image(net, image_path)
    mapping = hwmodel.map_to_cores(net)
    x = np.asarray(dqn.encode(config, jnp.asarray(seen))) > 0.5
    _, trace = jax.jit(hwmodel.run)(hwmodel.compile_network(net, profile), {"input": x})
    cost = hwmodel.estimate_cost(net, trace, mapping=mapping)
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

    ticks = summary["ticks_per_inference"]
    fig, axes = plt.subplots(len(qmodel.neurons), 1, figsize=(8, 5), sharex=True)
    for k, ax in enumerate(np.atleast_1d(axes)):
        name = f"layer{k}"
        s = np.asarray(trace.spikes[name] if k < len(qmodel.neurons) - 1 else trace.voltages[name])
        flat = s.reshape(-1, s.shape[-1])  # (steps * ticks, neurons)
        if k < len(qmodel.neurons) - 1:
            t_idx, n_idx = np.nonzero(flat)
            ax.scatter(t_idx, n_idx, s=1, c="k")
            ax.set_ylabel(f"{name}\nneuron")
        else:
            ax.plot(flat)
            ax.set_ylabel("readout\nvoltage")
    np.atleast_1d(axes)[-1].set_xlabel(f"chip tick ({ticks} ticks per environment step, {len(seen)} steps)")
    fig.suptitle("chip model, one episode: hidden spikes and Q-value membranes")
    fig.tight_layout()
    files.append(str(out / "spike_raster.png"))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    return files


def format_table(summary: dict) -> str:
    """The demo's one table."""
    s = summary
    rows = [
        ("float return (float network)", f"{s['float_return']:.1f}"),
        ("PTQ return (8-bit, chip model)", f"{s['ptq_return']:.1f}"),
        ("QAT return (8-bit, chip model)", f"{s['qat_return']:.1f}"),
        ("cores (PEs) used", f"{s['cores']} on {s['chips']} chip(s)"),
        ("latency per inference", f"{1e3 * s['latency_s']:.1f} ms ({s['ticks_per_inference']} ticks of 1 ms; "
                                  f"compute {1e6 * s['compute_latency_s']:.1f} us, estimate)"),
        ("energy per inference", f"{1e6 * s['energy_j']:.3f} uJ (estimate)"),
        ("training env steps/s", f"{s['train_env_steps_per_s']:,.0f}"),
        ("seconds per stage", ", ".join(f"{k} {v:.1f}" for k, v in s["seconds_per_stage"].items())),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"s2jax demo: spiking DQN on {s['env']} ({s['episodes']} greedy episodes each)"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    lines.append("  files:")
    lines += [f"    {f}" for f in s["files"]]
    return "\n".join(lines)
