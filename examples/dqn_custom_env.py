"""The spiking-DQN recipe on your own gymnax environment: give the observation range the
population code should cover, then train, quantize, fine-tune on the chip model and export.
Results go to ``--out`` (default s2jax-examples/mountaincar/). ``--tiny`` with a few ``--steps``
checks the whole pipeline in seconds (the returns then mean nothing)."""

import argparse

from s2jax.recipes import dqn
from s2jax.recipes.dqn_pipeline import format_table, run_pipeline

# --tiny: a small network, buffer and evaluation, no held-out weight selection
TINY = dict(hidden=(8,), neurons_per_dim=2, ticks=2, num_envs=4, learning_starts=16, buffer_size=64, batch_size=8,
            select_episodes=0, confirm_episodes=0)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="s2jax-examples/mountaincar", help="output folder")
    parser.add_argument("--steps", type=int, default=300_000, help="float training env steps")
    parser.add_argument("--qat-steps", type=int, default=50_000, help="fine-tuning env steps per weight width")
    parser.add_argument("--episodes", type=int, default=dqn.DQNConfig.eval_episodes, help="greedy evaluation episodes")
    parser.add_argument("--weights", type=int, nargs="+", choices=[8, 4], default=[8, 4], help="weight widths (bits)")
    parser.add_argument("--tiny", action="store_true", help="tiny network and buffer: a seconds-long smoke test")
    args = parser.parse_args()
    config = dqn.DQNConfig(
        env="MountainCar-v0",  # any discrete-action gymnax environment name
        obs_low=(-1.2, -0.07), obs_high=(0.6, 0.07),  # the range of each observation
        total_steps=args.steps, hidden=(64, 64), eps_fraction=0.3, eval_episodes=args.episodes,
    )
    if args.tiny:
        config = config.replace(**TINY)
    print(format_table(run_pipeline(config, args.out, weights=args.weights, qat_steps=args.qat_steps)))
