"""Issue 11, newcomer snags: the examples, the demo's table, bars and plots, output folders, README timings."""

import inspect
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

from s2jax import data as D
from s2jax.recipes import dqn, dqn_pipeline, dvs, dvs_pipeline

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def block_tonic(monkeypatch):
    """Make every ``import tonic`` fail, as after the README's install (no data extra)."""
    for name in [m for m in sys.modules if m == "tonic" or m.startswith("tonic.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tonic", None)


def run_example(monkeypatch, name, *argv):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *argv])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")


# --- 1. the DVS example without tonic ---------------------------------------------------------------------


def test_dvs_example_synthetic_path_runs_without_tonic(monkeypatch, tmp_path):
    block_tonic(monkeypatch)
    seen = {}

    def tiny_pipeline(config, out, **kwargs):  # the example's data path at a tiny size
        train, val, test = dvs.load_data(config.replace(n_train=12, n_test=6), progress=False)
        seen.update(config=config, out=out, shapes=(train.spikes.shape, test.spikes.shape))
        return {}

    monkeypatch.setattr(dvs_pipeline, "run_pipeline", tiny_pipeline)
    monkeypatch.setattr(dvs_pipeline, "format_table", lambda s: "table")
    run_example(monkeypatch, "dvs_gesture.py", "--out", str(tmp_path / "dvs"), "--quiet")
    assert seen["config"].dataset == "synthetic" and seen["out"] == str(tmp_path / "dvs")
    assert seen["shapes"][1] == (6, 12, 2, 16, 16)
    assert sys.modules["tonic"] is None  # nothing imported it behind our back


def test_dvs_example_real_data_path_names_the_install(monkeypatch, capsys, tmp_path):
    block_tonic(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        run_example(monkeypatch, "dvs_gesture.py", "--data", str(tmp_path), "--out", str(tmp_path / "o"))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert 'pip install -e ".[data]"' in err and f"--data {tmp_path}" in err
    assert not (tmp_path / "o").exists()
    monkeypatch.setattr(sys, "argv", ["dvs_gesture.py", "--help"])
    with pytest.raises(SystemExit):
        run_example(monkeypatch, "dvs_gesture.py", "--help")
    assert 'pip install -e ".[data]"' in capsys.readouterr().out  # said on the command line itself


@pytest.mark.parametrize("frames", [
    D.FrameConfig(ticks=12, spatial_factor=0.5), D.FrameConfig(ticks=7, spatial_factor=0.25, min_count=2),
    D.FrameConfig(ticks=5), D.FrameConfig(ticks=9, tick_us=40_000, spatial_factor=0.5),
    D.FrameConfig(ticks=30, tick_us=25_000)])
def test_numpy_framing_equals_tonics_transforms(frames):
    tonic = pytest.importorskip("tonic")
    from tonic import transforms as T

    events, _ = D.synthetic_events(6, seed=4, noise=2.0)
    events.append(events[0][:1])  # one event: a zero-length recording
    size = D.transforms.downsampled_size((32, 32, 2), frames.spatial_factor)
    for ev in events:
        ref = ev.copy()
        if frames.spatial_factor != 1.0:
            ref = T.Downsample(spatial_factor=frames.spatial_factor)(ref)
        to_frame = (T.ToFrame(sensor_size=size, n_time_bins=frames.ticks) if frames.tick_us is None else
                    T.ToFrame(sensor_size=size, time_window=float(frames.tick_us), include_incomplete=True))
        want = np.zeros((frames.ticks, 2, size[1], size[0]), np.uint8)
        got_ref = np.asarray(to_frame(ref))[: frames.ticks]
        want[: len(got_ref)] = got_ref >= frames.min_count
        np.testing.assert_array_equal(D.frame_events(ev, (32, 32, 2), frames), want)
    assert tonic is not None


def test_framing_refuses_events_outside_the_sensor():
    ev, _ = D.synthetic_events(1)
    with pytest.raises(ValueError, match=r"event x=\d+ outside the sensor: x must be in 0\.\.15 \(sensor \(W, H, P\) "
                                         r"\(16, 16, 2\)"):
        D.frame_events(ev[0], (16, 16, 2), D.FrameConfig(ticks=4))
    one = np.zeros(2, [("t", int), ("x", int), ("p", int)])
    one["p"] = [0, 1]
    with pytest.raises(ValueError, match="polarities \\[0, 1\\] but the sensor"):
        D.frame_events(one, (4, 1, 1), D.FrameConfig(ticks=2))


# --- 2. demo --resume, progress bars, plots -----------------------------------------------------------------


def dqn_summary(resumed):
    width = {"bits": 8, "model": "lif_no_delay", "label": "8-bit (lif_no_delay)", "ptq_return": 499.0,
             "qat_return": 500.0, "selection": {"kept_chunk": 4, "estimate": 499.5, "start_estimate": 498.0,
                                                 "episodes": 200, "z": 2.0, "candidates": []},
             "cores": 4, "chips": 1, "latency_s": 0.011, "ticks_per_inference": 11, "compute_latency_s": 5.9e-4,
             "energy_j": 6.6e-5}
    four = {**width, "bits": 4, "model": "lif", "label": "4-bit (lif)", "ptq_return": 314.6, "qat_return": 314.6,
            "selection": {**width["selection"], "kept_chunk": -1, "estimate": 310.0, "start_estimate": 310.0}}
    return {"env": "CartPole-v1", "episodes": 100, "float_return": 500.0, "widths": {"8": width, "4": four},
            "train_env_steps_per_s": 6891.0,
            "seconds_per_stage": {"float": 0.4, "ptq_8bit": 3.4, "qat_8bit": 5.0, "export_8bit": 1.9},
            "resumed": resumed, "files": ["s2jax-demo/8bit/qnet.nir", "s2jax-demo/summary.json"]}


def test_demo_table_names_resumed_stages():
    fresh = dqn_pipeline.format_table(dqn_summary({"float": False, "qat_8bit": False}))
    assert "6,891" in fresh and "resumed" not in fresh
    table = dqn_pipeline.format_table(dqn_summary({"float": True, "qat_8bit": True}))
    assert "6,891" not in table, table  # an earlier run's throughput is not shown as measured now
    assert "not measured (float training resumed" in table
    assert "float 0.4 (training resumed)" in table and "qat_8bit 5.0 (training resumed)" in table
    assert re.search(r"skipped \(resumed\)\s+float and qat_8bit training: weights from s2jax-demo/checkpoints/", table)
    partial = dqn_pipeline.format_table(dqn_summary({"float": False, "qat_8bit": True}))
    assert "6,891" in partial and "qat_8bit 5.0 (training resumed)" in partial and "float 0.4 (" not in partial


def test_demo_table_has_a_row_per_weight_width():
    lines = dqn_pipeline.format_table(dqn_summary({})).splitlines()
    assert re.fullmatch(r"\s+weights\s+float\s+PTQ\s+QAT\s+QAT selection estimate", lines[1]), lines[1]
    assert re.fullmatch(r"\s+8-bit \(lif_no_delay\)\s+500\.0\s+499\.0\s+500\.0\s+499\.5 on 200 held-out episodes, "
                        r"chunk 5 kept", lines[2]), lines[2]
    assert re.fullmatch(r"\s+4-bit \(lif\)\s+500\.0\s+314\.6\s+314\.6\s+310\.0 on 200 held-out episodes, "
                        r"PTQ weights kept \(no chunk surely better\)", lines[3]), lines[3]


def test_demo_table_without_a_measured_rate_or_selection():
    s = dqn_summary({})
    s["train_env_steps_per_s"] = None  # one training chunk: summary.json holds null, not NaN
    s["widths"]["8"]["selection"] = None
    table = dqn_pipeline.format_table(s)
    assert "not measured (a single training chunk" in table
    assert re.search(r"8-bit \(lif_no_delay\)\s+500\.0\s+499\.0\s+500\.0\s+-$", table, re.M), table


def test_demo_weights_option_reaches_the_pipeline(monkeypatch, capsys, tmp_path):
    from s2jax import cli
    from s2jax.recipes import dqn_pipeline as pipeline

    real, seen = pipeline.run_pipeline, []
    monkeypatch.setattr(pipeline, "run_pipeline", lambda config, out, **kw: seen.append(kw["weights"]) or dqn_summary({}))
    for argv, expected in ((["--weights", "4"], (4,)), (["--weights", "8", "8", "4"], (8, 4)), ([], (8, 4))):
        assert cli.main(["demo", "--out", str(tmp_path / "d"), *argv]) == 0
        assert seen[-1] == expected
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["demo", "--weights", "2"])
    assert "invalid choice: 2" in capsys.readouterr().err
    for bad in ((), (8, 8), (2,), (True,)):
        with pytest.raises(ValueError, match="weights must name distinct widths among \\[4, 8\\]"):
            real(dqn.DQNConfig(), tmp_path / "x", weights=bad)


def test_dvs_table_names_resumed_stages():
    s = {"dataset": "synthetic", "classes": ["a", "b"], "input_shape": [2, 16, 16], "ticks": 12, "profile": "float32",
         "samples": {"train": 8, "val": 2, "test": 4}, "float_accuracy": 0.5, "ptq": {"100.0": {"test": 0.5}},
         "ptq_best_percentile": 100.0, "qat_accuracy": 0.5, "parity_exact": True, "nir_roundtrip_exact": True,
         "design_rule_violations": [], "cores": 3, "chips": 1, "latency_s": 0.015, "ticks_per_inference": 15,
         "energy_j": 1e-6, "seconds_per_stage": {"data": 1.0, "float": 0.2, "ptq": 2.0, "qat": 0.3, "export": 1.0},
         "resumed": {"float": True, "qat": False}, "files": []}
    table = dvs_pipeline.format_table(s)
    assert "float 0.2 (training resumed)" in table and "qat 0.3 (" not in table
    assert re.search(r"skipped \(resumed\)\s+float training", table)


def test_qat_bar_total_is_the_number_of_steps_train_runs():
    config = dqn.DQNConfig()
    assert dqn.chunk_plan(50_000, 16) == (20, 157)
    assert dqn.planned_steps(config, 50_000) == 50_240  # known before training starts
    cfg = dqn.DQNConfig(total_steps=84, num_envs=4, select_episodes=0, learning_starts=8, batch_size=8,
                        hidden=(8,), neurons_per_dim=2, ticks=2)
    calls = []
    r = dqn.train(cfg, dqn.make_mlp(cfg, 4, 2), dqn.mlp_q(cfg), progress=lambda *a: calls.append(a[:2]))
    assert {total for _, total in calls} == {dqn.planned_steps(cfg)} and calls[-1][0] == dqn.planned_steps(cfg)
    assert r.returns[-1, 0] == dqn.planned_steps(cfg)
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        dqn.planned_steps(cfg, 0)


class RecordingBar:
    """Stands in for tqdm: records every total it is given."""

    made = []

    def __init__(self, desc, total, quiet, unit="step"):
        self.desc, self.totals, self.n, self.closed = desc, [total], 0, False
        RecordingBar.made.append(self)

    def __setattr__(self, name, value):
        if name == "total":
            self.totals.append(value)
        object.__setattr__(self, name, value)

    def update(self, k):
        self.n += k

    def set_postfix(self, *a, **k):
        pass

    set_postfix_str = set_postfix

    def close(self):
        self.closed = True


def coin(obs):
    return (jax.lax.bitcast_convert_type(obs[:, 1], jnp.int32) >> 5) & 1


def test_evaluations_have_a_steady_progress_bar_and_unchanged_results(monkeypatch):
    config = dqn.DQNConfig(eval_episodes=6)
    plain, seen = dqn.evaluate(config, coin, max_steps=60, record=25)
    RecordingBar.made = []
    monkeypatch.setattr(dqn_pipeline, "_bar", RecordingBar)
    ret, seen_bar = dqn_pipeline._evaluate(config, coin, "PTQ evaluation", False, max_steps=60, record=25)
    np.testing.assert_array_equal(ret, plain)
    np.testing.assert_array_equal(seen_bar, seen)
    (bar,) = RecordingBar.made
    assert "PTQ evaluation (6 episodes)" in bar.desc and set(bar.totals) == {60} and bar.n == 60 and bar.closed
    calls = []
    dqn.evaluate(config, coin, max_steps=60, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (60, 60) and all(a[0] < b[0] for a, b in zip(calls, calls[1:]))


def test_raster_plot_has_a_legend_and_distinct_q_value_traces():
    rng = np.random.default_rng(0)
    trace = SimpleNamespace(spikes={"layer0": rng.random((4, 11, 8)) < 0.2, "layer1": rng.random((4, 11, 8)) < 0.2},
                            voltages={"layer2": rng.normal(size=(4, 11, 2)).astype(np.float32)})
    fig = dqn_pipeline.raster_figure(trace, 3, 11, 4)
    ax = fig.axes[-1]
    legend = ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["action 0", "action 1"]
    lines = ax.get_lines()
    assert len(lines) == 2 and lines[0].get_color() != lines[1].get_color()
    assert lines[0].get_linestyle() != lines[1].get_linestyle()
    plt.close(fig)


def test_dvs_input_heatmap_has_a_colorbar():
    spikes = np.zeros((1, 3, 2, 4, 4), np.uint8)
    spikes[0, :, 1, 0, 0] = 1  # ON events only: positive in "ON - OFF"
    test = D.SpikeData(spikes, np.zeros(1, np.int32), ("swipe",))
    trace = SimpleNamespace(spikes={"layer0": np.ones((1, 5, 3), bool)})
    fig = dvs_pipeline.spikes_figure(test, trace, ["layer0"])
    image = fig.axes[0].get_images()[0]
    assert image.colorbar is not None and image.colorbar.ax.get_ylabel() == "ON - OFF spikes per pixel"
    lo, hi = image.get_clim()
    assert lo == -hi and image.get_array()[0, 0] == 3
    plt.close(fig)


# --- 3. output folders and paths ---------------------------------------------------------------------------


def test_file_lists_use_one_path_style(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    assert dqn_pipeline.display_path("out/a.nir") == os.path.join("out", "a.nir")
    assert dqn_pipeline.display_path(tmp_path / "out" / "pyspinnaker2") == os.path.join("out", "pyspinnaker2")
    assert dqn_pipeline.display_path("../elsewhere/x") == str(tmp_path.parent / "elsewhere" / "x")
    assert Path(dqn_pipeline.display_path("/")).is_absolute()


def default_outputs():
    """The default output paths of the examples, the demo and the recipes."""
    found = {}
    for path in sorted(EXAMPLES.glob("*.py")):
        for m in re.finditer(r'"--out", default="([^"]+)"', path.read_text()):
            found[path.name] = m.group(1)
    found["s2jax demo"] = re.search(r'"--out", default="([^"]+)"', (ROOT / "s2jax" / "cli.py").read_text()).group(1)
    for name, fn in (("dvs run_pipeline", dvs_pipeline.run_pipeline), ("dqn run_pipeline", dqn_pipeline.run_pipeline)):
        found[name] = inspect.signature(fn).parameters["out"].default
    return found


def test_examples_write_under_one_ignored_folder():
    outputs = default_outputs()
    writers = {"dqn_acrobot.py", "dqn_cartpole.py", "dqn_custom_env.py", "dvs_gesture.py", "egru_language_model.py"}
    assert writers <= set(outputs), outputs
    assert all(outputs[name].startswith("s2jax-examples/") for name in writers), outputs
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for name, out in outputs.items():
        probe = out if out.endswith(".json") else f"{out}/summary.json"
        ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT)
        assert ignored.returncode == 0, f"{name}: {probe} is not in .gitignore"


def test_egru_example_writes_its_json_atomically(monkeypatch, tmp_path):
    from s2jax.recipes import egru_lm

    result = {"chars": 10, "vocab": 3, "float_egru_perplexity": 2.0, "egru_params": 5, "qat_int_egru_perplexity": 2.1,
              "lstm_perplexity": 2.2, "lstm_params": 6, "qat_sparsity_per_layer": [0.5],
              "chip_cost_per_char": {"synaptic_events": 10.0, "sparsity_gain": 2.0, "energy_j": 1e-9}}
    monkeypatch.setattr(egru_lm, "run", lambda config, text: result)
    monkeypatch.setattr(egru_lm, "load_corpus", lambda path, n: "abc")
    out = tmp_path / "nested" / "lm.json"
    run_example(monkeypatch, "egru_language_model.py", "--out", str(out))
    assert out.exists() and '"vocab": 3' in out.read_text()
    assert not list(out.parent.glob(".*tmp*"))


# --- 4. README timings -------------------------------------------------------------------------------------


def test_readme_states_the_machine_and_the_test_suite_duration():
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert "idle 2-core" in setup
    assert re.search(r"test suite[^.]*takes (about )?\d[\d.]* ?(s|min)\b", setup, re.S)
