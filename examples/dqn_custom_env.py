"""The spiking-DQN recipe on your own gymnax environment: give the observation range the
population code should cover, then train, quantize, fine-tune on the chip model and export.
Results go to ``--out`` (default s2jax-examples/mountaincar/)."""

import argparse

from s2jax.recipes import dqn
from s2jax.recipes.dqn_pipeline import format_table, run_pipeline

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="s2jax-examples/mountaincar", help="output folder")
    args = parser.parse_args()
    config = dqn.DQNConfig(
        env="MountainCar-v0",  # any discrete-action gymnax environment name
        obs_low=(-1.2, -0.07), obs_high=(0.6, 0.07),  # the range of each observation
        total_steps=300_000, hidden=(64, 64), eps_fraction=0.3,
    )
    print(format_table(run_pipeline(config, args.out, qat_steps=50_000)))
