"""Spiking DQN on Acrobot-v1 (reward -1 per step until the tip swings above the bar; best is
about -60), through float training, PTQ and QAT at 8-bit and 4-bit weights on the chip model, and export.
``--tiny`` with a few ``--steps`` checks the whole pipeline in seconds (the returns then mean nothing)."""

import argparse

from s2jax.recipes.dqn_pipeline import PRESETS, format_table, run_pipeline

# --tiny: a small network, buffer and evaluation, no held-out weight selection
TINY = dict(hidden=(8,), neurons_per_dim=2, ticks=2, num_envs=4, learning_starts=16, buffer_size=64, batch_size=8,
            select_episodes=0, confirm_episodes=0)

if __name__ == "__main__":
    preset = PRESETS["Acrobot-v1"]
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="s2jax-examples/acrobot", help="output folder")
    parser.add_argument("--steps", type=int, default=preset.total_steps, help="float training env steps")
    parser.add_argument("--qat-steps", type=int, default=50_000, help="fine-tuning env steps per weight width")
    parser.add_argument("--episodes", type=int, default=preset.eval_episodes, help="greedy evaluation episodes")
    parser.add_argument("--weights", type=int, nargs="+", choices=[8, 4], default=[8, 4], help="weight widths (bits)")
    parser.add_argument("--tiny", action="store_true", help="tiny network and buffer: a seconds-long smoke test")
    args = parser.parse_args()
    config = preset.replace(total_steps=args.steps, eval_episodes=args.episodes)
    if args.tiny:
        config = config.replace(**TINY)
    print(format_table(run_pipeline(config, args.out, weights=args.weights, qat_steps=args.qat_steps)))
