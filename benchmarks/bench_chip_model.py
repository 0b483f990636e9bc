"""Chip-model throughput against the scalar reference oracle, in one run, as a ratio.

Networks:
  (a) small: 64 inputs -> 128 lif (delays 0..7) -> 64 lif_curr_exp -> 10 readouts, 5% input rate;
  (b) one chip's worth: 152 populations of 250 lif_no_delay neurons, each fed by a dense 250 x 250
      projection from its own 250-neuron spike source at 5% rate (38,000 neurons, 9.5 M synapses).

The chip model is timed after compilation (median of --repeats runs, ``block_until_ready``) at
batch 1 and batch 32. The reference runs --ref-ticks ticks at batch 1 and is extrapolated
linearly (its cost per tick is flat once the first spikes have arrived). Usage, from the
repository root::

    python benchmarks/bench_chip_model.py            # both networks, prints a markdown table
    python benchmarks/bench_chip_model.py --quick    # fewer ticks, for a smoke run
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
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2jax import SPINNAKER2, hwmodel  # noqa: E402
from s2jax import qnet as snn  # noqa: E402
from tests.reference.oracle import simulate  # noqa: E402


def small_network(rng):
    inp = snn.Population(64, "spike_list", name="in", record=[])
    hid = snn.Population(128, "lif", {"threshold": 20.0, "alpha_decay": 0.9}, name="hidden", record=[])
    cub = snn.Population(64, "lif_curr_exp", {"threshold": 30.0, "alpha_decay": 0.9, "exc_decay": 0.7,
                                              "inh_decay": 0.7, "t_refrac": 1}, name="cuba", record=[])
    out = snn.Population(10, "lif_no_delay", {"threshold": SPINNAKER2.readout_threshold, "alpha_decay": 0.95},
                         name="readout", record=["v"])

    def dense(n_pre, n_post, lo, hi, max_d):
        i, j = np.meshgrid(np.arange(n_pre), np.arange(n_post), indexing="ij")
        n = i.size
        return np.stack([i.ravel(), j.ravel(), rng.integers(lo, hi + 1, n), rng.integers(0, max_d + 1, n)], 1)

    net = snn.Network("small").add(
        inp, hid, cub, out,
        snn.Projection(inp, hid, dense(64, 128, -15, 15, 7)),
        snn.Projection(hid, cub, dense(128, 64, -15, 15, 7)),
        snn.Projection(cub, out, dense(64, 10, -127, 127, 0)))
    return net, {"in": 64}


def chip_network(rng, populations=152, size=250):
    net = snn.Network("one-chip")
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    shapes = {}
    for k in range(populations):
        src = snn.Population(size, "spike_list", name=f"in{k}", record=[])
        dst = snn.Population(size, "lif_no_delay", {"threshold": 200.0, "alpha_decay": 0.95}, name=f"lif{k}",
                             record=[])
        rows = np.stack([i.ravel(), j.ravel(), rng.integers(-127, 128, i.size), np.zeros(i.size, int)], 1)
        net.add(src, dst, snn.Projection(src, dst, rows))
        shapes[f"in{k}"] = size
    return net, shapes


def time_chip_model(net, shapes, batch, ticks, repeats, rng):
    prog = hwmodel.compile_network(net, "float32")
    inputs = {n: rng.random((batch, ticks, s)) < 0.05 for n, s in shapes.items()}
    run = jax.jit(hwmodel.run)
    t0 = time.perf_counter()
    jax.block_until_ready(run(prog, inputs))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _, trace = jax.block_until_ready(run(prog, inputs))
        times.append(time.perf_counter() - t0)
    dt = float(np.median(times))
    events = int(np.asarray(trace.synaptic_events).sum())
    return {"batch": batch, "ticks": ticks, "seconds": dt, "first_call_s": first,
            "ticks_per_s": ticks / dt, "sample_ticks_per_s": batch * ticks / dt, "events_per_s": events / dt}


def time_reference(net, shapes, ticks, rng):
    inputs = {n: rng.random((ticks, s)) < 0.05 for n, s in shapes.items()}
    t0 = time.perf_counter()
    _, _, events = simulate(net, inputs, ticks, "float32")
    dt = time.perf_counter() - t0
    return {"ticks": ticks, "seconds": dt, "ticks_per_s": ticks / dt, "events_per_s": int(events.sum()) / dt}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=1000, help="ticks per chip-model run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ref-ticks-small", type=int, default=50)
    parser.add_argument("--ref-ticks-chip", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 ticks, 1 repeat, 20 / 2 reference ticks")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "chip_model.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.ticks, args.repeats, args.ref_ticks_small, args.ref_ticks_chip = 200, 1, 20, 2
    rng = np.random.default_rng(0)
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                          f"jax {jax.__version__} {jax.default_backend()}", "networks": {}}
    for name, build, ref_ticks in (("(a) small", small_network, args.ref_ticks_small),
                                   ("(b) one chip", chip_network, args.ref_ticks_chip)):
        net, shapes = build(rng)
        entry = {"chip_model": [time_chip_model(net, shapes, b, args.ticks, args.repeats, rng) for b in (1, 32)],
                 "reference": time_reference(net, shapes, ref_ticks, rng)}
        entry["speedup_batch1"] = entry["chip_model"][0]["ticks_per_s"] / entry["reference"]["ticks_per_s"]
        entry["speedup_batch32"] = entry["chip_model"][1]["sample_ticks_per_s"] / entry["reference"]["ticks_per_s"]
        results["networks"][name] = entry
        print(f"{name}: done", flush=True)
    print(f"\nmachine: {results['machine']}\n")
    print("| network | chip model, batch 1: ticks/s | batch 32: sample-ticks/s | synaptic events/s (batch 32) "
          "| reference: ticks/s (extrapolated from N ticks) | ratio batch 1 | ratio batch 32 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, e in results["networks"].items():
        c1, c32, ref = e["chip_model"][0], e["chip_model"][1], e["reference"]
        print(f"| {name} | {c1['ticks_per_s']:,.0f} | {c32['sample_ticks_per_s']:,.0f} | {c32['events_per_s']:.3g} "
              f"| {ref['ticks_per_s']:.3g} ({ref['ticks']} ticks) | {e['speedup_batch1']:,.0f}x "
              f"| {e['speedup_batch32']:,.0f}x |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(args.json)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
