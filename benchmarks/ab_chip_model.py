"""Chip-model throughput of two revisions of s2jax, interleaved, as a ratio (for refactors).

Each revision is checked out into its own git worktree; then, for each repeat, each network is
timed in a fresh process of each revision, alternating the order, so both see the same machine
load. Reported per network and batch: the median of the per-repeat ratios (after / before, ticks
per second) and their spread. Usage, from the repository root::

    python benchmarks/ab_chip_model.py --before f4afa16 --after HEAD --repeats 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Run inside one revision's worktree: build the benchmark networks of bench_chip_model.py, time the
# chip model (jitted, after compilation, median of 3) and print {network/batch: sample-ticks per second}.
TIMER = r"""
import json, sys
import numpy as np
sys.path.insert(0, ".")
from benchmarks.bench_chip_model import chip_network, small_network, time_chip_model
ticks = int(sys.argv[1])
out = {}
for name, build in (("small", small_network), ("chip", chip_network)):
    net, shapes = build(np.random.default_rng(0))
    for batch in (1, 32):
        out[f"{name}/batch{batch}"] = time_chip_model(net, shapes, batch, ticks, 3, np.random.default_rng(1))[
            "sample_ticks_per_s"]
print(json.dumps(out))
"""

def worktree(rev: str, where: Path) -> Path:
    path = where / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)
    return path


def measure(tree: Path, ticks: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", TIMER, str(ticks)], cwd=tree, capture_output=True, text=True,
                          check=True, env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": worktree(args.before, Path(tmp)), "after": worktree(args.after, Path(tmp))}
        try:
            rows = {"before": [], "after": []}
            for r in range(args.repeats):
                for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    rows[side].append(measure(trees[side], args.ticks))
                    print(f"repeat {r + 1} {side}: " + ", ".join(f"{k} {v:,.0f}" for k, v in rows[side][-1].items()),
                          flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"\n| network / batch | before: ticks/s (median) | after: ticks/s (median) | after / before: median "
          f"[min, max] of {args.repeats} interleaved repeats |")
    print("| --- | --- | --- | --- |")
    for key in rows["before"][0]:
        b = np.array([row[key] for row in rows["before"]])
        a = np.array([row[key] for row in rows["after"]])
        ratio = a / b
        print(f"| {key} | {np.median(b):,.0f} | {np.median(a):,.0f} | {np.median(ratio):.2f} "
              f"[{ratio.min():.2f}, {ratio.max():.2f}] |")


if __name__ == "__main__":
    main()
