"""Chip-model throughput of two revisions of s2jax, interleaved, as a ratio (for refactors).

Each revision is checked out into its own git worktree; then, for each repeat, each suite is timed
in a fresh process of each revision, alternating the order, so both see the same machine load.
Reported per measurement: the medians of each side and the median and [min, max] of the per-repeat
ratios after / before (of the measurement itself: > 1 is faster for rates, slower for times).

Suites (``--suite``):

- ``spiking``: the chip model of networks (a) small and (b) one chip of ``bench_chip_model.py``,
  batch 1 and 32, ``--ticks`` ticks, in sample-ticks per second;
- ``egru``: (a) the EGRU chip model (``jax.jit(run_egru, static_argnames="profile")``, 2 layers of
  H units, 90% pruned, T = 100, 128 inputs, profiles "fixed" and "float32", batch 1 and 32) in
  tokens per second, H from ``--egru-sizes``; (b) the integer-QAT EGRU cell forward + backward
  (``nnx.RNN``, batch 16, T = 100, H = 128, loss ``sum(outputs)``) in ms. It uses only
  ``run_egru``, ``qat_egru`` and ``quantize_egru`` (deprecated aliases from 8c5e13c on) with the
  profile name "fixed", so it runs on revisions from 0a40be6 on.

Every measurement is the median of 3 timed calls after compilation. Usage, from the repository root::

    python benchmarks/ab_chip_model.py --before f4afa16 --after HEAD --repeats 5
    python benchmarks/ab_chip_model.py --before f25b2a0 --after HEAD --repeats 3 --suite egru
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

# Both timers run inside one revision's worktree (checked: s2jax is imported from there) and print
# {measurement: value} as JSON on their last line.
HEADER = r"""
import json, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore", DeprecationWarning)
sys.path.insert(0, ".")
import jax, jax.numpy as jnp, numpy as np
import s2jax
assert Path(s2jax.__file__).resolve().is_relative_to(Path.cwd().resolve()), s2jax.__file__

def median3(fn):
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
"""

# Networks of bench_chip_model.py; sample-ticks per second.
SPIKING = HEADER + r"""
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

# EGRU chip model in tokens per second; integer-QAT cell forward + backward in ms.
EGRU = HEADER + r"""
from flax import nnx
from s2jax.hwmodel.egru import run_egru
from s2jax.layers.egru import EGRU, EGRUStack, prune
from s2jax.quant.egru import qat_egru, quantize_egru, quantize_inputs
T, I = 100, 128
out = {}
for h in (int(s) for s in sys.argv[1].split(",")):
    stack = EGRUStack(I, [h, h], rngs=nnx.Rngs(0))
    prune(stack, 0.9)
    for profile in ("fixed", "float32"):
        layers = quantize_egru(qat_egru(stack, profile))
        run = jax.jit(run_egru, static_argnames="profile")
        for batch in (1, 32):
            x = jax.random.normal(jax.random.key(1), (batch, T, I)) * 0.5
            x = quantize_inputs(x) if profile == "fixed" else x
            jax.block_until_ready(run(layers, x, profile=profile))
            out[f"chip model H={h} {profile}/batch{batch} (tokens/s)"] = batch * T / median3(
                lambda: run(layers, x, profile=profile))
rnn = nnx.RNN(qat_egru(EGRU(I, 128, rngs=nnx.Rngs(0)), "fixed"))
x = jax.random.normal(jax.random.key(0), (16, T, I))
grad = nnx.jit(lambda m, x: nnx.grad(lambda m: jnp.sum(m(x)))(m))
jax.block_until_ready(grad(rnn, x))
out["integer-QAT cell H=128 B=16 fwd+bwd (ms)"] = 1e3 * median3(lambda: grad(rnn, x))
print(json.dumps(out))
"""


def worktree(rev: str, where: Path) -> Path:
    path = where / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)
    return path


def measure(tree: Path, code: str, arg: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, arg], cwd=tree, capture_output=True, text=True,
                          env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
    if proc.returncode:
        raise RuntimeError(f"timer failed in {tree} (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: dict, repeats: int, unit: str) -> str:
    lines = [f"| measurement | before ({unit}, median) | after ({unit}, median) | after / before: median "
             f"[min, max] of {repeats} interleaved repeats |", "| --- | --- | --- | --- |"]
    for key in rows["before"][0]:
        b = np.array([row[key] for row in rows["before"]])
        a = np.array([row[key] for row in rows["after"]])
        ratio = a / b
        fmt = "{:,.1f}" if np.median(b) < 100 else "{:,.0f}"
        lines.append(f"| {key} | {fmt.format(np.median(b))} | {fmt.format(np.median(a))} | {np.median(ratio):.2f} "
                     f"[{ratio.min():.2f}, {ratio.max():.2f}] |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--suite", choices=("spiking", "egru", "all"), default="spiking")
    parser.add_argument("--ticks", type=int, default=200, help="ticks per run of the spiking suite")
    parser.add_argument("--egru-sizes", type=int, nargs="+", default=[128, 256], help="H of the EGRU chip model")
    args = parser.parse_args()
    suites = {"spiking": (SPIKING, str(args.ticks), "sample-ticks/s"),
              "egru": (EGRU, ",".join(map(str, args.egru_sizes)), "unit of the row")}
    names = list(suites) if args.suite == "all" else [args.suite]
    rows = {name: {"before": [], "after": []} for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": worktree(args.before, Path(tmp)), "after": worktree(args.after, Path(tmp))}
        try:
            for r in range(args.repeats):
                for name in names:
                    code, arg, _ = suites[name]
                    for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
                        rows[name][side].append(measure(trees[side], code, arg))
                        print(f"repeat {r + 1} {name} {side}: " + ", ".join(
                            f"{k} {v:,.1f}" for k, v in rows[name][side][-1].items()), flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    for name in names:
        print(f"\n{name}:\n{table(rows[name], args.repeats, suites[name][2])}")


if __name__ == "__main__":
    main()
