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
from s2jax.recipes import checkpoint, dqn
from s2jax.recipes.dqn_pipeline import format_table, run_pipeline

SMALL = dqn.DQNConfig(hidden=(32, 32), neurons_per_dim=6, ticks=6, total_steps=16_000, num_envs=16,
                      learning_starts=2_000, buffer_size=10_000, batch_size=64, lr=1e-3, eps_fraction=0.3,
                      eval_episodes=20, select_episodes=8)
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
    assert s["qat_return"] >= 4 * RANDOM_CARTPOLE, s
    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("float_return", "ptq_return", "qat_return", "cores", "latency_s", "energy_j", "seconds_per_stage",
                "files"):
        assert key in on_disk
    assert on_disk["cores"] >= 4 and on_disk["energy_j"] > 0
    for f in on_disk["files"]:
        assert Path(f).exists(), f


def test_exported_artefacts_reproduce_the_chip_model_actions(demo):
    out, s = demo
    qmodel = quant.qat(dqn.make_qnet(SMALL, 4, 2), quant.QuantConfig())
    checkpoint.load_model(out / "checkpoints" / "qat", qmodel)
    obs = observations()
    q_ref, _ = dqn.chip_q(SMALL, qmodel)
    expected = np.asarray(q_ref(obs))
    assert len(set(np.argmax(expected, axis=1).tolist())) == 2  # both actions occur: a real comparison
    loaded = {"nir": export.from_nir(out / "qnet.nir"), "bundle": export.load_pyspinnaker2(out / "pyspinnaker2"),
              "image": export.load_image(out / "qnet.s2img")}
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
    assert again["resumed"] == {"float": True, "qat": True}
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
