"""The spiking-DQN recipe: it learns, its QAT Q-values equal the chip model's, and the exported
artefacts reproduce the chip-model actions exactly."""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2jax import export, quant
from s2jax.recipes import checkpoint, dqn, dqn_eval
from s2jax.recipes.dqn_pipeline import WIDTHS, format_table, run_pipeline

SMALL = dqn.DQNConfig(hidden=(32, 32), neurons_per_dim=6, ticks=6, total_steps=16_000, num_envs=16,
                      learning_starts=2_000, buffer_size=10_000, batch_size=64, lr=1e-3, eps_fraction=0.3,
                      eval_episodes=20, select_episodes=8, confirm_episodes=32)
RANDOM_CARTPOLE = 22.0  # mean return of the uniform random policy on CartPole-v1 (about 22)


def observations(n=32, seed=0):
    return jax.random.uniform(jax.random.key(seed), (n, 4), minval=-1.0, maxval=1.0) * jnp.array([2.0, 2.0, 0.2, 2.0])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = run_pipeline(SMALL, out, qat_steps=2_000, quiet=True)
    return out, summary


def coin(obs):
    """A pseudo-random action from low mantissa bits of the observation (a policy sees only obs)."""
    return (jax.lax.bitcast_convert_type(obs[:, 1], jnp.int32) >> 5) & 1


def test_random_policy_baseline():
    ret, _ = dqn.evaluate(SMALL, coin, episodes=100)
    assert 12 < ret.mean() < 35, ret.mean()  # the baseline the learning assertions compare with


def test_the_pipeline_learns_and_reports(demo):
    out, s = demo
    print(format_table(s))
    # a short run (16k steps): well above the random policy (22) on the float net and the chip model
    assert s["float_return"] >= 4 * RANDOM_CARTPOLE, s
    assert list(s["widths"]) == ["8", "4"]
    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("float_return", "float_returns", "widths", "seconds_per_stage", "files"):
        assert key in on_disk
    for w, width in on_disk["widths"].items():
        assert width["qat_return"] >= 4 * RANDOM_CARTPOLE, width
        assert width["model"] == WIDTHS[int(w)] and width["weight_limit"] == {"8": 127, "4": 15}[w]
        assert width["cores"] >= 4 and width["energy_j"] > 0
        assert len(width["ptq_returns"]) == len(width["qat_returns"]) == SMALL.eval_episodes
        assert np.mean(width["qat_returns"]) == pytest.approx(width["qat_return"], rel=1e-6)  # float32 mean
        sel = width["selection"]
        assert sel["episodes"] == SMALL.confirm_episodes and len(sel["candidates"]) == SMALL.confirm_candidates
        if sel["kept_chunk"] < 0:  # the PTQ weights were kept: QAT is PTQ, exactly
            assert width["qat_returns"] == width["ptq_returns"] and sel["estimate"] == sel["start_estimate"]
        else:
            assert sel["estimate"] > sel["start_estimate"]
    for f in on_disk["files"]:
        assert Path(f).exists(), f
    for name in ("return_distribution.png", "returns.png", "learning_curve.png", "8bit/spike_raster.png"):
        assert (out / name).stat().st_size > 10_000, name


@pytest.mark.parametrize("bits", [8, 4])
def test_exported_artefacts_reproduce_the_chip_model_actions(demo, bits):
    out, s = demo
    qmodel = quant.qat(dqn.make_qnet(SMALL, 4, 2), quant.QuantConfig(target=WIDTHS[bits]))
    checkpoint.load_model(out / "checkpoints" / f"qat_{bits}bit", qmodel)
    obs = observations()
    q_ref, net = dqn.chip_q(SMALL, qmodel)
    assert {p.neuron_model for p in net.populations} >= {WIDTHS[bits]}
    expected = np.asarray(q_ref(obs))
    assert len(set(np.argmax(expected, axis=1).tolist())) == 2  # both actions occur: a real comparison
    folder = out / f"{bits}bit"
    loaded = {"nir": export.from_nir(folder / "qnet.nir"), "bundle": export.load_pyspinnaker2(folder / "pyspinnaker2"),
              "image": export.load_image(folder / "qnet.s2img")}
    for kind, net in loaded.items():
        q, _ = dqn.chip_q(SMALL, qmodel, net=net)
        np.testing.assert_array_equal(np.asarray(q(obs)), expected, err_msg=kind)


@pytest.mark.parametrize("profile", ["float32", "fixed"])
def test_qat_q_values_equal_the_chip_model(profile):
    model = dqn.make_qnet(SMALL, 4, 2)
    qmodel = quant.qat(model, quant.QuantConfig(profile=profile))
    obs = observations(seed=3)
    chip, _ = dqn.chip_q(SMALL, qmodel, profile)
    qat_q = np.asarray(dqn.snn_q(SMALL)(qmodel, obs))
    np.testing.assert_array_equal(np.asarray(jax.jit(chip)(obs)), qat_q)
    np.testing.assert_array_equal(np.asarray(chip(obs)), qat_q)


def test_resume_reuses_matching_checkpoints(demo, tmp_path):
    out, s = demo
    again = run_pipeline(SMALL.replace(eval_episodes=5), out, qat_steps=2_000, quiet=True, resume=True, plots=False)
    assert again["resumed"] == {"float": True, "qat_8bit": True, "qat_4bit": True}
    assert again["widths"]["4"]["selection"] == s["widths"]["4"]["selection"]  # read back from the checkpoint
    other = checkpoint.read_meta(out / "checkpoints" / "float")
    assert other["stage"] == "float" and other["config"]["total_steps"] == SMALL.total_steps
    wrong = dqn.make_qnet(SMALL.replace(hidden=(8, 8)), 4, 2)
    with pytest.raises(ValueError, match="shape"):
        checkpoint.load_model(out / "checkpoints" / "float", wrong)


def test_unknown_environment_bounds_are_a_clear_error():
    with pytest.raises(ValueError, match="obs_low and obs_high"):
        dqn.DQNConfig(env="MountainCar-v0").bounds()


def test_checkpoint_metadata_travels_with_the_weights(tmp_path):
    a, b = dqn.make_qnet(SMALL, 4, 2), dqn.make_qnet(SMALL.replace(seed=5), 4, 2)
    path = tmp_path / "ckpt"
    checkpoint.save_model(path, a, {"seed": 0})
    checkpoint.save_model(path, b, {"seed": 5})
    (tmp_path / "ckpt.json").write_text('{"seed": 0}')  # a stale sidecar (an interrupted write) is not trusted
    assert checkpoint.read_meta(path) == {"seed": 5}
    loaded = checkpoint.load_model(path, dqn.make_qnet(SMALL, 4, 2))
    assert checkpoint.weights_digest(loaded) == checkpoint.weights_digest(b) != checkpoint.weights_digest(a)
    assert oct(os.stat(tmp_path / "ckpt.npz").st_mode & 0o777) != "0o600"


def test_train_runs_the_requested_steps_rounded_to_whole_chunks():
    cfg = SMALL.replace(total_steps=84, num_envs=4, select_episodes=0, learning_starts=8, batch_size=8)
    r = dqn.train(cfg, dqn.make_mlp(cfg, 4, 2), dqn.mlp_q(cfg))
    assert 84 <= r.returns[-1, 0] < 84 + 2 * 4 * 2  # 21 iterations in chunks of 2: 22 iterations


def test_config_validation():
    for bad in (dict(total_steps=0), dict(eval_episodes=-3), dict(buffer_size=4, num_envs=8), dict(hidden=())):
        with pytest.raises(ValueError, match="DQNConfig"):
            dqn.DQNConfig(**bad)


# --- which weights training keeps (dqn_eval.choose) ------------------------------------------------------


def test_choose_keeps_the_start_unless_a_candidate_is_surely_better():
    start = np.full(50, 100.0)
    start[::2] = 90.0  # mean 95
    noisy_gain = start + np.where(np.arange(50) % 2, 30.0, -28.0)  # mean +1, but the spread is large
    clear_gain = start + 5.0
    worse = start - 1.0
    assert dqn_eval.choose(start, [worse], z=2.0)[0] == -1
    assert dqn_eval.choose(start, [noisy_gain], z=2.0)[0] == -1
    assert dqn_eval.choose(start, [start.copy()], z=0.0)[0] == -1  # no gain at all is not a gain
    kept, bounds = dqn_eval.choose(start, [noisy_gain, clear_gain, worse], z=2.0)
    assert kept == 1 and bounds[1] == 5.0 and bounds[2] == -1.0
    assert dqn_eval.choose(None, [worse, clear_gain, noisy_gain], z=2.0)[0] == 1  # from scratch: the best mean


def test_gain_lower_bound_is_the_paired_mean_minus_z_standard_errors():
    start = np.array([10.0, 20.0, 30.0, 40.0])
    cand = start + np.array([1.0, 3.0, 1.0, 3.0])  # gains: mean 2, sample std 2/sqrt(3)
    expected = 2.0 - 1.5 * (2.0 / np.sqrt(3.0)) / 2.0
    assert dqn_eval.gain_lower_bound(start, cand, 1.5) == pytest.approx(expected, rel=1e-12)
    assert dqn_eval.gain_lower_bound(start[:1], cand[:1], 1.0) == -np.inf


def test_selection_seeds_never_meet_the_reported_evaluation():
    for seed in range(dqn_eval.EVAL_SEED - 20, dqn_eval.EVAL_SEED + 5):
        config = SMALL.replace(seed=seed)
        for offset in (dqn_eval.SCREEN, dqn_eval.CONFIRM):
            held = dqn_eval.held_out_seed(config, offset)
            assert not {held, held + 1} & {dqn_eval.EVAL_SEED, dqn_eval.EVAL_SEED + 1}, (seed, offset)
        screen, conf = (dqn_eval.held_out_seed(config, o) for o in (dqn_eval.SCREEN, dqn_eval.CONFIRM))
        assert not {screen, screen + 1} & {conf, conf + 1}


def test_fine_tuning_that_only_hurts_keeps_the_starting_weights():
    """A learning rate that wrecks the network: no chunk is surely better, so train returns the start."""
    cfg = SMALL.replace(total_steps=2_000, num_envs=8, confirm_episodes=24, learning_starts=200)
    start = dqn.train(cfg, dqn.make_mlp(cfg, 4, 2), dqn.mlp_q(cfg)).model
    r = dqn.train(cfg, start, dqn.mlp_q(cfg), steps=640, eps_schedule=False, lr=50.0, chunks=4)
    assert r.selection.kept == -1, r.selection
    assert checkpoint.weights_digest(r.model) == checkpoint.weights_digest(start)
    assert r.selection.estimate == r.selection.start_estimate
    assert len(r.selection.candidates) == cfg.confirm_candidates


def test_config_validates_the_selection_settings():
    for bad in (dict(confirm_episodes=1), dict(confirm_episodes=-1), dict(confirm_candidates=-2),
                dict(confirm_z=float("nan")), dict(confirm_z=-1.0), dict(confirm_episodes=10**6)):
        with pytest.raises(ValueError, match="DQNConfig.confirm"):
            dqn.DQNConfig(**bad)


def test_moved_evaluation_names_stay_reachable_from_dqn():
    assert dqn.evaluate is dqn_eval.evaluate and dqn.chip_policy is dqn_eval.chip_policy
    with pytest.raises(AttributeError, match="no_such_name"):
        dqn.no_such_name  # noqa: B018


def test_fine_tuning_that_surely_helps_replaces_the_start():
    """From a briefly trained start, fine-tuning improves clearly: a chunk is kept, and it is better."""
    cfg = SMALL.replace(total_steps=2_000, num_envs=8, confirm_episodes=24, learning_starts=200)
    start = dqn.train(cfg, dqn.make_mlp(cfg, 4, 2), dqn.mlp_q(cfg)).model
    r = dqn.train(cfg.replace(seed=3), start, dqn.mlp_q(cfg), steps=6_000, eps_schedule=False, lr=1e-3, chunks=6)
    sel = r.selection
    assert sel.kept >= 0 and sel.estimate > sel.start_estimate + 50, sel
    assert checkpoint.weights_digest(r.model) != checkpoint.weights_digest(start)
    kept = [c for c in sel.candidates if c[0] == sel.kept]
    assert len(kept) == 1 and kept[0][2] == sel.estimate and kept[0][3] > 0


def test_one_width_only_and_an_old_layout_is_named(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "checkpoints").mkdir(parents=True)
    (out / "qnet.nir").write_bytes(b"old")
    (out / "checkpoints" / "qat.npz").write_bytes(b"old")
    s = run_pipeline(SMALL.replace(total_steps=4_000, eval_episodes=5), out, weights=(4,), qat_steps=640, plots=False)
    assert list(s["widths"]) == ["4"] and s["widths"]["4"]["model"] == "lif"
    assert not (out / "8bit").exists() and (out / "4bit" / "qnet.nir").exists()
    assert (out / "qnet.nir").read_bytes() == b"old"  # left as it was, and named
    err = capsys.readouterr().err
    assert "qnet.nir, checkpoints/qat.npz in" in err and "are from an older s2jax" in err
    json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))


def test_resume_says_why_a_checkpoint_with_other_settings_is_not_used(tmp_path, monkeypatch, capsys):
    from s2jax.recipes import dqn_pipeline

    calls = []

    def fake_train(config, model, q_fn, **kwargs):
        calls.append(config)
        return dqn.TrainResult(model, np.asarray([[1.0, 2.0, 3.0]]), 10.0, 0.1)

    monkeypatch.setattr(dqn, "train", fake_train)
    model = dqn.make_mlp(SMALL, 4, 2)
    dqn_pipeline._train_stage("float", SMALL, model, tmp_path, False, True, {})
    again = dqn_pipeline._train_stage("float", SMALL.replace(confirm_z=3.0, lr=2e-3), model, tmp_path, True, False, {})
    assert len(calls) == 2 and not again.resumed
    err = capsys.readouterr().err
    assert "float stage: its checkpoint" in err and "trained with other settings (confirm_z, lr)" in err
