"""DQN training throughput: the spiking Q-network against an equivalent non-spiking DQN, one run.

Both train with the same recipe (:func:`s2jax.recipes.dqn.train`: double DQN, replay buffer as
arrays, vmapped gymnax environments, the loop inside ``lax.scan``), the same widths and the same
settings; only the Q-network differs: the ``SNN`` (population-coded input, ``ticks`` + one tick
per layer, LIF hidden layers, LI readout) or a ReLU MLP. Greedy evaluations between chunks are
switched off so only training is timed (compilation excluded). Usage::

    python benchmarks/bench_dqn.py                 # CartPole-v1, 100k env steps each
    python benchmarks/bench_dqn.py --env Acrobot-v1 --steps 50000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2jax.recipes import dqn  # noqa: E402
from s2jax.recipes.dqn_pipeline import PRESETS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dqn.json"))
    args = ap.parse_args()
    config = PRESETS.get(args.env, dqn.DQNConfig(env=args.env)).replace(total_steps=args.steps, select_episodes=0)
    env, params = dqn.make_env(config.env)
    obs_dim, n_actions = env.observation_space(params).shape[0], env.action_space(params).n
    rows = []
    for name, model, q in (("spiking (SNN)", dqn.make_qnet(config, obs_dim, n_actions), dqn.snn_q(config)),
                           ("non-spiking (MLP)", dqn.make_mlp(config, obs_dim, n_actions), dqn.mlp_q(config))):
        r = dqn.train(config, model, q)
        rows.append({"q_network": name, "env_steps_per_s": r.steps_per_s, "seconds_incl_compile": r.seconds})
        print(f"{name}: {r.steps_per_s:,.0f} env steps/s ({r.seconds:.1f} s with compilation)", file=sys.stderr)
    ratio = rows[1]["env_steps_per_s"] / rows[0]["env_steps_per_s"]
    ticks = config.ticks + len(config.hidden) + 1
    print("| Q-network | env steps/s (training) | wall time incl. compile (s) |\n| --- | --- | --- |")
    for r in rows:
        print(f"| {r['q_network']} | {r['env_steps_per_s']:,.0f} | {r['seconds_incl_compile']:.1f} |")
    print(f"\nthe MLP trains {ratio:.1f}x faster per env step; the SNN runs {ticks} ticks per Q evaluation")
    meta = {"env": config.env, "steps": args.steps, "machine": platform.machine(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "hidden": config.hidden,
            "num_envs": config.num_envs, "updates_per_iteration": config.updates_per_iteration}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
