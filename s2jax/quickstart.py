"""Quickstart: build a small network the py-spinnaker2 way, run it on the chip model, print it.

Run with ``python examples/quickstart.py`` or ``s2jax quickstart``.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from s2jax import SPINNAKER2
from s2jax import hwmodel as hardware
from s2jax import qnet as snn


def build_network(seed: int = 0) -> snn.Network:
    """8 input spike sources -> 6 LIF (delays 0..3) -> 4 current-based LIF -> 2 leaky readouts."""
    rng = np.random.default_rng(seed)
    stim = snn.Population(8, "spike_list", {i: sorted(rng.choice(40, 6, replace=False).tolist()) for i in range(8)},
                          name="stim")
    hidden = snn.Population(6, "lif", {"threshold": 12.0, "alpha_decay": 0.9, "reset": "reset_by_subtraction"},
                            name="hidden", record=["spikes", "v"])
    cuba = snn.Population(4, "lif_curr_exp", {"threshold": 20.0, "alpha_decay": 0.85, "exc_decay": 0.6,
                                              "inh_decay": 0.4, "t_refrac": 2, "reset": "reset_to_v_reset"},
                          name="cuba", record=["spikes"])
    readout = snn.Population(2, "lif_no_delay", {"threshold": SPINNAKER2.readout_threshold, "alpha_decay": 0.95},
                             name="readout", record=["spikes", "v"])
    net = snn.Network("quickstart")
    net.add(stim, hidden, cuba, readout,
            snn.Projection(stim, hidden, [[i, j, int(rng.integers(-4, 15)), int(rng.integers(0, 4))]
                                          for i in range(8) for j in range(6)]),
            snn.Projection(hidden, cuba, [[i, j, int(rng.integers(-15, 16)), 1] for i in range(6) for j in range(4)]),
            snn.Projection(cuba, readout, [[i, j, int(rng.integers(-127, 128)), 0] for i in range(4) for j in range(2)]))
    return net


def main(profile: str = "float32", timesteps: int = 50) -> dict:
    net = build_network()
    chip = hardware.SpiNNaker2Chip(profile=profile)  # py-spinnaker2: hardware.SpiNNaker2Chip(eth_ip=...)
    trace = chip.run(net, timesteps)
    hidden, cuba, readout = (net.population(n) for n in ("hidden", "cuba", "readout"))
    print(f"s2jax quickstart: network '{net.name}', {timesteps} ticks, {profile} profile")
    for pop in (hidden, cuba):
        print(f"  {pop.name:8s} spikes {pop.get_spikes()}")
    v = readout.get_voltages()
    print("  readout voltage, last 5 ticks:")
    for i in sorted(v):
        print(f"    neuron {i}: " + ", ".join(f"{x:.3f}" for x in v[i][-5:]))
    events = np.asarray(trace.synaptic_events[0]).sum(axis=0)
    print("  synaptic events per population:", dict(zip(trace.names, events.tolist())))

    # The same network as a batched, jitted array program: 256 random input samples at once.
    prog = hardware.compile_network(net, profile)
    x = np.random.default_rng(1).random((256, timesteps, 8)) < 0.1
    run = jax.jit(hardware.run)
    jax.block_until_ready(run(prog, {"stim": x}))
    t0 = time.perf_counter()
    outputs, _ = jax.block_until_ready(run(prog, {"stim": x}))
    dt = time.perf_counter() - t0
    rate = x.shape[0] * timesteps / dt
    print(f"  batched run: 256 samples x {timesteps} ticks in {dt * 1e3:.1f} ms ({rate:,.0f} sample-ticks/s)")
    return {"hidden": hidden.get_spikes(), "cuba": cuba.get_spikes(), "readout_v": v}


if __name__ == "__main__":
    main()
