"""The figures of ``s2jax demo`` (:mod:`s2jax.recipes.dqn_pipeline`): learning curves, mean returns,
the distribution of the per-episode returns per weight width, and a spike raster of the chip model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_plots", "raster_figure", "distribution_figure"]

COLORS = {"float": "#777777", "PTQ": "#cc8855", "QAT": "#3388aa"}
ACTION_STYLES = (("#1f77b4", "-"), ("#d62728", "--"), ("#2ca02c", ":"), ("#9467bd", "-."))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return str(path)


def write_plots(out: Path, summary: dict, float_curve, qat_curves: dict, traces: dict) -> list[str]:
    """Write ``learning_curve.png``, ``returns.png`` and ``return_distribution.png`` into ``out`` and
    ``spike_raster.png`` into each width's folder; returns the paths.

    ``qat_curves`` and ``traces``: per width (the keys of ``summary["widths"]``), the fine-tuning's
    curve (rows of ``dqn.train``) and the chip-model trace of the recorded episode."""
    plt = _pyplot()
    files = []
    widths = summary["widths"]

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(float_curve[:, 0], float_curve[:, 2], "o-", color="k", label="float, greedy")
    ax.plot(float_curve[:, 0], float_curve[:, 1], ".:", color="k", alpha=0.5, label="float, exploring")
    x0 = float_curve[-1, 0]
    for i, (w, curve) in enumerate(qat_curves.items()):
        if len(curve):
            ax.plot(x0 + curve[:, 0], curve[:, 2], "s-", color=ACTION_STYLES[i % 4][0],
                    label=f"QAT {widths[w]['label']} (chip arithmetic), greedy")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return (screening episodes)")
    ax.set_title(f"{summary['env']}: learning curve")
    ax.legend(fontsize=7)
    fig.tight_layout()
    files.append(_save(fig, out / "learning_curve.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    bar_w = 0.8 / 3
    for k, (name, key) in enumerate((("float", None), ("PTQ", "ptq_return"), ("QAT", "qat_return"))):
        vals = [summary["float_return"] if key is None else widths[w][key] for w in widths]
        xs = np.arange(len(widths)) + (k - 1) * bar_w
        ax.bar(xs, vals, bar_w, color=COLORS[name], label=name if k == 0 else f"{name} (chip model)")
        for x, v in zip(xs, vals):
            ax.text(x, v, f"{v:.1f}", ha="center", va="bottom" if v >= 0 else "top", fontsize=7)
    ax.set_xticks(np.arange(len(widths)), [widths[w]["label"] for w in widths])
    ax.set_ylabel(f"mean greedy return, {summary['episodes']} episodes")
    ax.legend(fontsize=7)
    fig.tight_layout()
    files.append(_save(fig, out / "returns.png"))

    files.append(_save(distribution_figure(summary), out / "return_distribution.png"))

    for w, trace in traces.items():
        folder = out / widths[w]["folder"]
        fig = raster_figure(trace, widths[w]["layers"], widths[w]["ticks_per_inference"], widths[w]["recorded_steps"])
        files.append(_save(fig, folder / "spike_raster.png"))
    return files


def distribution_figure(summary: dict):
    """One panel per weight width: every episode's return (a dot, jittered sideways) and a box
    (quartiles, median) for the float network, PTQ and QAT on the chip model."""
    plt = _pyplot()
    widths = summary["widths"]
    fig, axes = plt.subplots(1, len(widths), figsize=(3.4 * len(widths) + 0.6, 3.8), sharey=True, squeeze=False)
    rng = np.random.default_rng(0)  # the jitter only spreads the dots; it is the same every run
    for ax, w in zip(axes[0], widths):
        groups = [("float", summary["float_returns"]), ("PTQ", widths[w]["ptq_returns"]),
                  ("QAT", widths[w]["qat_returns"])]
        for i, (name, values) in enumerate(groups):
            values = np.asarray(values, np.float64)
            ax.scatter(i + rng.uniform(-0.18, 0.18, values.size), values, s=6, alpha=0.5, color=COLORS[name])
            ax.boxplot([values], positions=[i], widths=0.5, showfliers=False,
                       medianprops={"color": "k"}, boxprops={"color": "k"})
            ax.text(i, 1.0, f"mean {values.mean():.1f}", transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=7)
        ax.set_xticks(range(3), ["float", "PTQ\n(chip model)", "QAT\n(chip model)"], fontsize=8)
        ax.set_title(widths[w]["label"], fontsize=9, pad=14)
    axes[0][0].set_ylabel(f"greedy return per episode ({summary['episodes']} episodes)")
    fig.suptitle(f"{summary['env']}: return distribution per weight width", fontsize=10)
    fig.tight_layout()
    return fig


def raster_figure(trace, n_layers: int, ticks: int, steps: int):
    """The chip model's hidden spikes (one raster per hidden layer) and the readout membrane of each
    action (its Q-value), each action in its own colour and line style, with a legend."""
    plt = _pyplot()
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
