"""Spiking DQN on Acrobot-v1 (reward -1 per step until the tip swings above the bar; best is
about -60), through float training, PTQ and QAT at 8-bit and 4-bit weights on the chip model, and export."""

import argparse

from s2jax.recipes.dqn_pipeline import PRESETS, format_table, run_pipeline

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="s2jax-examples/acrobot", help="output folder")
    parser.add_argument("--steps", type=int, default=PRESETS["Acrobot-v1"].total_steps)
    parser.add_argument("--weights", type=int, nargs="+", choices=[8, 4], default=[8, 4], help="weight widths (bits)")
    args = parser.parse_args()
    config = PRESETS["Acrobot-v1"].replace(total_steps=args.steps)
    print(format_table(run_pipeline(config, args.out, weights=args.weights, qat_steps=50_000)))
