"""EGRU against nnx GRU and LSTM cells of the same size (forward + backward, one run), and the
chip model's throughput in tokens per second.

Shape: batch 16, T = 100 steps, 128 inputs, one recurrent layer of H units (H in 128, 256, 512),
loss ``sum(outputs)``; every cell scanned with ``nnx.RNN``. Timed after compilation with
``block_until_ready``, median of ``--repeats`` runs, cells interleaved run by run. The chip model
(``hwmodel.run`` of ``quant.quantize(quant.qat(stack, QuantConfig(profile=...)))``, fixed and float32
profiles, jitted with the network static) runs a 2-layer stack of H units, 90% pruned, at batch 1
and 32.

    python benchmarks/bench_egru.py            # H = 128 256 512
    python benchmarks/bench_egru.py --quick
"""

from __future__ import annotations

import argparse
import json
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

from s2jax import hwmodel, quant  # noqa: E402
from s2jax.layers.egru import EGRU, EGRUStack, prune  # noqa: E402
from s2jax.quant import QuantConfig  # noqa: E402
from s2jax.quant.egru import quantize_inputs  # noqa: E402

B, T, I = 16, 100, 128


def fwd_bwd(cell_fn):
    """``(module, forward, gradient)``: ``nnx.RNN`` of the cell, jitted with ``nnx.jit``."""
    rnn = nnx.RNN(cell_fn())
    f = nnx.jit(lambda m, x: m(x))
    g = nnx.jit(lambda m, x: nnx.grad(lambda m: jnp.sum(m(x)))(m))
    return rnn, f, g


def median_time(fn, *args, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "egru.json"))
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeats = [64], 2
    x = jax.random.normal(jax.random.key(0), (B, T, I))
    rows = []
    for h in args.sizes:
        cells = {
            "EGRU (float)": lambda: EGRU(I, h, rngs=nnx.Rngs(0)),
            "EGRU (integer QAT)": lambda: quant.qat(EGRU(I, h, rngs=nnx.Rngs(0)), QuantConfig(profile="fixed")),
            "nnx.GRUCell": lambda: nnx.GRUCell(I, h, rngs=nnx.Rngs(0)),
            "nnx.LSTMCell": lambda: nnx.LSTMCell(I, h, rngs=nnx.Rngs(0)),
        }
        compiled = {}
        for name, make in cells.items():
            rnn, f, g = fwd_bwd(make)
            jax.block_until_ready(f(rnn, x))
            jax.block_until_ready(g(rnn, x))
            compiled[name] = (rnn, f, g)
        times = {name: ([], []) for name in cells}
        for _ in range(args.repeats):
            for name, (rnn, f, g) in compiled.items():
                times[name][0].append(median_time(f, rnn, x, repeats=1))
                times[name][1].append(median_time(g, rnn, x, repeats=1))
        ref = float(np.median(times["nnx.GRUCell"][1]))
        for name, (tf, tg) in times.items():
            rows.append({"H": h, "cell": name, "forward_ms": 1e3 * float(np.median(tf)),
                         "fwd_bwd_ms": 1e3 * float(np.median(tg)), "ratio_vs_gru": float(np.median(tg)) / ref})
    lines = ["| H | cell | forward (ms) | forward + backward (ms) | ratio to nnx.GRUCell |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['H']} | {r['cell']} | {r['forward_ms']:.1f} | {r['fwd_bwd_ms']:.1f} | {r['ratio_vs_gru']:.2f} |"
              for r in rows]
    print("\n".join(lines))

    chip = []
    for h in args.sizes:
        stack = EGRUStack(I, [h, h], rngs=nnx.Rngs(0))
        prune(stack, 0.9)
        for profile in ("fixed", "float32"):
            net = quant.quantize(quant.qat(stack, QuantConfig(profile=profile)))  # layers egru0, egru1
            run = jax.jit(lambda x, net=net: hwmodel.run(net, x))  # the whole (outputs, trace), as before
            for batch in (1, 32):
                xin = jax.random.normal(jax.random.key(1), (batch, T, I)) * 0.5
                xin = quantize_inputs(xin) if profile == "fixed" else xin
                _, trace = jax.block_until_ready(run(xin))
                if trace.values["egru1"].shape != (batch, T, h):
                    raise RuntimeError(f"egru1 gave {trace.values['egru1'].shape}, expected {(batch, T, h)}")
                t = median_time(lambda: run(xin), repeats=args.repeats)
                chip.append({"H": h, "profile": profile, "batch": batch, "tokens_per_s": batch * T / t})
    print("\n| H (2 layers, 90% pruned) | profile | batch | chip-model tokens/s |\n| --- | --- | --- | --- |")
    for c in chip:
        print(f"| {c['H']} | {c['profile']} | {c['batch']} | {c['tokens_per_s']:,.0f} |")
    meta = {"machine": platform.machine(), "python": platform.python_version(), "jax": jax.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "B": B, "T": T, "I": I}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "cells": rows, "chip": chip}, indent=1))


if __name__ == "__main__":
    main()
