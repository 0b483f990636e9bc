"""Spiking DQN on CartPole-v1: float training, PTQ and QAT at 8-bit and 4-bit weights on the chip model,
export.

The same pipeline as ``s2jax demo``; change the settings below (any ``DQNConfig`` field) to
experiment. Results, plots and the exported network go to ``--out``.
"""

import argparse

from s2jax.recipes.dqn_pipeline import PRESETS, format_table, run_pipeline

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="s2jax-examples/cartpole", help="output folder")
    parser.add_argument("--steps", type=int, default=PRESETS["CartPole-v1"].total_steps)
    parser.add_argument("--weights", type=int, nargs="+", choices=[8, 4], default=[8, 4], help="weight widths (bits)")
    args = parser.parse_args()
    config = PRESETS["CartPole-v1"].replace(total_steps=args.steps)  # e.g. .replace(hidden=(128, 128))
    print(format_table(run_pipeline(config, args.out, weights=args.weights, qat_steps=50_000)))
