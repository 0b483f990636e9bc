"""The OpenNeuromorphic framework-benchmark shape: s2jax against Spyx 1.0, in one run, as ratios.

One ``Linear(N, N)`` (no bias) followed by a LIF layer (decay 0.9, threshold 1, reset by
subtraction), batch 16, T = 500 ticks, Bernoulli(0.5) spike input (the same array for every
framework). Timed: the forward pass and the gradient of ``sum(output spikes)`` with respect to
all parameters, jitted, after compilation, ``block_until_ready``, median of ``--repeats`` runs;
the frameworks are interleaved run by run so drift on a shared machine hits them alike.

Rows:
  - ``spyx``: ``spyx.nn.Sequential(nnx.Linear, spyx.nn.LIF)`` stepped by ``spyx.nn.run``;
  - ``s2jax float``: ``SNN([(Linear, LIF)])``, float numerics (the training mode);
  - ``s2jax float remat``: the same with ``remat=True`` (``jax.checkpoint`` per tick);
  - ``s2jax QAT``: ``quant.qat`` of it (float32 chip profile): forward equal to the chip model bit
    for bit, integer weights through straight-through quantizers;
  - ``s2jax QAT fixed``: the fixed-point chip profile (int32 state plus a float32 shadow).

Peak memory: XLA's compile-time memory analysis of the forward+backward executable (arguments +
outputs + temporaries, bytes), the same for every framework.

Spyx is not a dependency of s2jax; run this in a separate environment::

    python3 -m venv /tmp/bench && . /tmp/bench/bin/activate
    pip install -e . -r benchmarks/requirements.txt
    python benchmarks/bench_openneuromorphic.py             # N = 512 1024 2048 4096
    python benchmarks/bench_openneuromorphic.py --quick     # N = 256, T = 100, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2jax import layers as L  # noqa: E402
from s2jax import quant  # noqa: E402

BATCH, ALPHA = 16, 0.9


def s2jax_model(n, remat=False):
    return L.SNN([(L.Linear(n, n, rngs=nnx.Rngs(0)), L.LIF(n, alpha=ALPHA, threshold=1.0))], remat=remat)


def s2jax_fn(model):
    """(forward, forward+backward) as jitted functions of (graphdef, params, rest, x)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def out(p, x):
        return nnx.merge(graphdef, p, rest)(x).output

    return params, out


def spyx_fn(n):
    import spyx

    model = spyx.nn.Sequential(nnx.Linear(n, n, use_bias=False, rngs=nnx.Rngs(0)),
                               spyx.nn.LIF((n,), beta=ALPHA, threshold=1.0, rngs=nnx.Rngs(1)))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def out(p, x):
        y, _ = spyx.nn.run(nnx.merge(graphdef, p, rest), x, batch_major=True)
        return y

    return params, out


def timed(params, out, x, repeats):
    fwd = jax.jit(out)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(out(p, x))))
    compiled = grad.lower(params, x).compile()
    mem = compiled.memory_analysis()
    peak = None
    if mem is not None:
        peak = int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes)
    jax.block_until_ready(fwd(params, x))
    jax.block_until_ready(grad(params, x))

    def run_once():
        t0 = time.perf_counter()
        jax.block_until_ready(fwd(params, x))
        t1 = time.perf_counter()
        jax.block_until_ready(grad(params, x))
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    return run_once, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    ap.add_argument("--ticks", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "openneuromorphic.json"))
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.ticks, args.repeats = [256], 100, 2

    try:
        import spyx  # noqa: F401
        have_spyx = True
    except ImportError:
        have_spyx = False
        print("spyx is not installed: only s2jax rows (see benchmarks/requirements.txt)", file=sys.stderr)

    results = []
    for n in args.sizes:
        x = (jax.random.uniform(jax.random.key(0), (BATCH, args.ticks, n)) < 0.5).astype(jnp.float32)
        base = s2jax_model(n)
        variants = {"s2jax float": s2jax_fn(base), "s2jax float remat": s2jax_fn(s2jax_model(n, remat=True)),
                    "s2jax QAT": s2jax_fn(quant.qat(base, quant.QuantConfig(profile="float32"))),
                    "s2jax QAT fixed": s2jax_fn(quant.qat(base, quant.QuantConfig(profile="fixed")))}
        if have_spyx:
            variants = {"spyx": spyx_fn(n), **variants}
        runners, peaks, times = {}, {}, {}
        for name, (params, out) in variants.items():
            t0 = time.perf_counter()
            runners[name], peaks[name] = timed(params, out, x, args.repeats)
            print(f"N={n} {name}: compiled and warmed in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            times[name] = []
        for _ in range(args.repeats):
            for name, run_once in runners.items():
                times[name].append(run_once())
        for name in variants:
            f, g = (float(np.median([t[i] for t in times[name]])) for i in (0, 1))
            results.append({"N": n, "framework": name, "forward_ms": 1e3 * f, "fwd_bwd_ms": 1e3 * g,
                            "peak_bytes": peaks[name]})
        ref = next((r for r in results if r["N"] == n and r["framework"] == "spyx"), None)
        for r in results:
            if r["N"] == n:
                r["ratio_vs_spyx"] = r["fwd_bwd_ms"] / ref["fwd_bwd_ms"] if ref else None

    header = "| N | framework | forward (ms) | forward + backward (ms) | ratio to Spyx (fwd+bwd) | peak memory (MB) |"
    lines = [header, "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        ratio = f"{r['ratio_vs_spyx']:.2f}" if r["ratio_vs_spyx"] is not None else "-"
        mem = f"{r['peak_bytes'] / 2**20:,.0f}" if r["peak_bytes"] else "-"
        lines.append(f"| {r['N']} | {r['framework']} | {r['forward_ms']:,.0f} | {r['fwd_bwd_ms']:,.0f} | {ratio} | {mem} |")
    print("\n".join(lines))
    meta = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "jax": jax.__version__, "batch": BATCH, "ticks": args.ticks,
            "repeats": args.repeats, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
