"""The chip model: one `lax.scan` over ticks, vmapped over the batch.

Per tick t, for one sample (``SPINNAKER2.md`` sections 3 and 4):

1. synaptic input: for every projection group, the spikes of ticks t-1-d (d = 0..D-1) are
   gathered from a history ring and multiplied by the integer weight matrices (int32 sums);
   conv projections sum-pool the spikes of tick t-1, then cross-correlate;
2. every LIF-family neuron and every current-based neuron takes one step of
   :mod:`s2jax.dynamics` with the chip numerics of the chosen profile;
3. the new spikes (inputs of tick t and neuron spikes of tick t) enter the history, so a spike
   emitted at tick t arrives at tick t + 1 + d.

Nothing here loops over ticks or neurons in Python. The library does not jit: wrap the call
(``jax.jit(lambda x: run(program, x))`` or ``jax.jit(run)`` with a compiled program as argument).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from s2jax import dynamics
from s2jax.hwmodel.program import ChipProgram, compile_network
from s2jax.qnet import Network
from s2jax.spec import SPINNAKER2, ChipSpec


@dataclass(frozen=True)
class Trace:
    """What a run recorded, batch-major.

    ``spikes[name]``: ``(B, T, n)`` bool; ``voltages[name]``: ``(B, T, n)`` after reset, float32
    (float32 profile) or raw int32 s16.15 (fixed profile); ``synaptic_events``: ``(B, T, P)``
    int32, synapses activated per tick per population (counted at the receiving population, at the
    tick the spike arrives: every ``Projection`` row counts, weight 0 included; a conv counts one
    event per input spike and non-zero kernel tap);
    ``neuron_updates``: ``(P,)`` neuron updates per tick per population (its size; inputs 0);
    ``names``: population names (the network's order) along the last axis.
    """

    spikes: dict
    voltages: dict
    synaptic_events: jnp.ndarray
    neuron_updates: jnp.ndarray
    names: tuple = field(metadata=dict(static=True))


jax.tree_util.register_dataclass(
    Trace, data_fields=["spikes", "voltages", "synaptic_events", "neuron_updates"], meta_fields=["names"]
)


def _synaptic_input(prog: ChipProgram, hist):
    """int32 input sums of every neuron (``a``: net or excitatory, ``b``: inhibitory) and events."""
    lay = prog.layout
    outs = {"a": [], "b": []}
    events = jnp.zeros(len(lay.net_names), jnp.int32)
    flat = hist.reshape(-1)
    for g, idx, w, fan, pop in zip(lay.dense, prog.dense_idx, prog.dense_w, prog.dense_fanout, prog.dense_pop):
        if g.pre_start >= 0:  # evenly spaced pre slices: one strided read
            x = hist[: g.n_delay, g.pre_start: g.pre_start + g.count * g.pre_stride]
            x = x.reshape(g.n_delay, g.count, g.pre_stride)[:, :, : g.n_pre]
            x = jnp.transpose(x, (1, 0, 2)).reshape(g.count, g.n_delay * g.n_pre)
        else:
            x = flat[idx]  # (P, D * n_pre) int8 spikes of ticks t-1-d
        y = lax.dot_general(x.astype(w.dtype), w, (((1,), (1,)), ((0,), (0,))),
                            preferred_element_type=jnp.int32)  # (P, n_post)
        outs[g.channel].append(y.reshape(-1))
        events = events.at[pop].add(jnp.sum(x.astype(jnp.int32) * fan, axis=1))
    for g, w, nz in zip(lay.conv, prog.conv_w, prog.conv_nz):
        n_pre = g.c_in * g.in_height * g.in_width
        x = lax.dynamic_slice_in_dim(hist[0], g.pre_start, n_pre).reshape(g.c_in, g.in_height, g.in_width)
        hp, wp = g.in_height // g.pool_y, g.in_width // g.pool_x
        x = x[:, : hp * g.pool_y, : wp * g.pool_x].astype(jnp.int32)
        x = x.reshape(g.c_in, hp, g.pool_y, wp, g.pool_x).sum(axis=(2, 4)).astype(jnp.int8)
        conv = lambda k: lax.conv_general_dilated(  # noqa: E731
            x[None], k, (g.stride_y, g.stride_x), g.padding, preferred_element_type=jnp.int32)[0]
        outs["a"].append(conv(w).reshape(-1))
        events = events.at[g.post_pop].add(jnp.sum(conv(nz)))
    # Gather (not scatter: cheaper on CPU) each neuron's contributions from the concatenated outputs.
    sums = []
    for channel, table in (("a", prog.gather_a), ("b", prog.gather_b)):
        if channel == "a" and lay.identity_a:
            sums.append(jnp.concatenate(outs["a"]) if len(outs["a"]) > 1 else outs["a"][0])
            continue
        flat_out = jnp.concatenate(outs[channel] + [jnp.zeros(1, jnp.int32)])
        sums.append(jnp.sum(flat_out[table], axis=1) if table.shape[1] > 1 else flat_out[table[:, 0]])
    return sums[0], sums[1], events


def _tick(prog: ChipProgram, carry, x_t):
    lay = prog.layout
    hist, lif_s, cuba_s = carry
    a, b, events = _synaptic_input(prog, hist)
    num = lay.numerics
    lif_s, z_lif = dynamics.lif_step(prog.lif_params, lif_s, a[: lay.n_lif], num)
    cuba_s, z_cuba = dynamics.cuba_step(prog.cuba_params, cuba_s, a[lay.n_lif:], b[lay.n_lif:], num,
                                        lay.cuba_order)
    spikes = jnp.concatenate([x_t.astype(jnp.int8), z_lif.astype(jnp.int8), z_cuba.astype(jnp.int8)])
    hist = jnp.concatenate([spikes[None], hist[:-1]], axis=0)
    v_all = jnp.concatenate([lif_s.v, cuba_s.v])
    rec_s = [spikes[lo:hi] for lo, hi in lay.ranges(lay.record_spikes)]
    rec_v = [v_all[lo:hi] for lo, hi in lay.ranges(lay.record_v, lay.n_in)]
    out_s = jnp.concatenate(rec_s).astype(bool) if rec_s else jnp.zeros(0, bool)
    out_v = jnp.concatenate(rec_v) if rec_v else jnp.zeros(0, v_all.dtype)
    return (hist, lif_s, cuba_s), (out_s, out_v, events)


def _split(lay, names, packed, offset=0):
    """Undo the packing of recorded populations: ``(..., total)`` -> ``{name: (..., n)}``."""
    out, pos = {}, 0
    order = sorted(names, key=lambda n: lay.slice_of(n)[0])
    for n in order:
        size = lay.sizes[lay.names.index(n)]
        out[n] = packed[..., pos: pos + size]
        pos += size
    return out


def _run_one(prog: ChipProgram, x):
    """One sample: ``x`` is ``(T, n_in)``; returns per-tick records."""
    lay = prog.layout
    dtype = lay.numerics.state_dtype
    hist = jnp.zeros((lay.hist_depth, lay.n_all), jnp.int8)
    lif_s = dynamics.LIFState(jnp.asarray(prog.lif_v0, dtype))
    zeros = jnp.zeros(lay.n_cuba, dtype)
    cuba_s = dynamics.CubaState(jnp.asarray(prog.cuba_v0, dtype), zeros, zeros, jnp.zeros(lay.n_cuba, jnp.int32))
    _, records = lax.scan(lambda c, xt: _tick(prog, c, xt), (hist, lif_s, cuba_s), x)
    return records


def _input_array(lay, inputs, timesteps):
    names = lay.input_names
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise ValueError(f"the network has input populations {list(names)}; pass inputs as a dict by name")
        inputs = {names[0]: inputs}
    unknown = sorted(set(inputs) - set(names))
    missing = [n for n in names if n not in inputs]
    if unknown or missing:
        raise ValueError(f"inputs must have exactly the spike_list populations {list(names)}; "
                         f"unknown {unknown}, missing {missing}")
    arrays = []
    for n in names:
        x = inputs[n]
        if not isinstance(x, jax.core.Tracer):
            x = np.asarray(x)  # concrete input (NumPy, JAX or a list): validated below
        size = lay.sizes[lay.names.index(n)]
        if x.ndim != 3 or x.shape[2] != size:
            raise ValueError(f"input {n!r} must have shape (batch, time, {size}), got {tuple(x.shape)}")
        if isinstance(x, np.ndarray) and not np.all((x == 0) | (x == 1)):
            raise ValueError(f"input {n!r} must hold spikes (0 or 1); found value {x[(x != 0) & (x != 1)][0]}")
        arrays.append(jnp.asarray(x).astype(bool))
    if arrays:
        shapes = {a.shape[:2] for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"inputs disagree on (batch, time): {sorted(shapes)}")
        if timesteps is not None and shapes.pop()[1] != timesteps:
            raise ValueError(f"timesteps={timesteps} disagrees with the inputs' {arrays[0].shape[1]} ticks")
        return jnp.concatenate(arrays, axis=2)
    if timesteps is None:
        raise ValueError("the network has no spike_list population: pass timesteps=")
    return jnp.zeros((1, int(timesteps), 0), bool)


def run(net: Network | ChipProgram, inputs=None, *, timesteps: int | None = None, profile: str = "float32",
        spec: ChipSpec = SPINNAKER2, record: str = "flags"):
    """Run the chip model on a batch; returns ``(outputs, trace)``.

    ``inputs``: ``{spike_list population name: (B, T, n) spikes}`` (or the array alone when there
    is one input population). ``net``: a Network (compiled here with ``profile``, ``spec``,
    ``record``) or a :class:`ChipProgram` from :func:`compile_network`. ``outputs`` maps each sink
    population (one no projection leaves) that records spikes to its ``(B, T, n)`` spikes; ``trace`` is a :class:`Trace`.
    Networks without inputs need ``timesteps`` and run a batch of one.
    """
    prog = net if isinstance(net, ChipProgram) else compile_network(net, profile, spec, record)
    lay = prog.layout
    x = _input_array(lay, inputs, timesteps)
    out_s, out_v, events = jax.vmap(lambda xi: _run_one(prog, xi))(x)
    spikes = _split(lay, lay.record_spikes, out_s)
    sink_spikes = {n: spikes[n] for n in lay.sinks if n in spikes}
    updates = jnp.asarray(lay.net_sizes, jnp.int32)
    return sink_spikes, Trace(spikes, _split(lay, lay.record_v, out_v), events, updates, lay.net_names)


def to_volts(trace_v, layout) -> np.ndarray:
    """Recorded voltages as real values: float32 as is, fixed-point s16.15 as float64 ``v / 2^15``."""
    v = np.asarray(trace_v)
    if layout.profile == "fixed":
        return v.astype(np.float64) / 2.0**layout.v_frac_bits
    return v


def spike_list_inputs(net: Network, timesteps: int) -> dict:
    """``{name: (1, timesteps, n) bool}`` for every ``spike_list`` population, from its own spike
    times (ticks at or beyond ``timesteps`` are dropped): the inputs of a py-spinnaker2 style run."""
    inputs = {}
    for pop in net.populations:
        if pop.neuron_model == "spike_list":
            x = np.zeros((1, timesteps, pop.size), bool)
            for idx, ticks in pop.params.items():
                x[0, [t for t in ticks if t < timesteps], idx] = True
            inputs[pop.name] = x
    return inputs


class Simulator:
    """Runs a Network like ``hardware.SpiNNaker2Chip().run(net, timesteps)`` and fills its populations.

    ``pop.get_spikes()`` gives ``{neuron: [ticks]}``, ``pop.get_voltages()`` gives
    ``{neuron: voltages per tick}`` (float32, or float64 ``v / 2^15`` in the fixed profile).
    The run is jitted here: this class is the outermost call of a py-spinnaker2 style script.
    """

    def __init__(self, profile: str = "float32", spec: ChipSpec = SPINNAKER2, **hardware_options):
        dynamics.numerics_for(profile, spec)  # validates the profile name
        self.profile = profile
        self.spec = spec
        self.hardware_options = hardware_options  # e.g. eth_ip: accepted and ignored by the model
        self.last_trace = None

    def run(self, net: Network, timesteps: int, sys_tick_in_s: float = 1e-3, **run_options):
        if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) or timesteps < 1:
            raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
        prog = compile_network(net, self.profile, self.spec)
        lay = prog.layout
        inputs = spike_list_inputs(net, timesteps)
        _, trace = jax.jit(run, static_argnames="timesteps")(prog, inputs or None, timesteps=timesteps)
        self.last_trace = trace
        for pop in net.populations:
            if pop.name in trace.spikes:
                s = np.asarray(trace.spikes[pop.name][0])
                pop._spikes = {int(i): np.nonzero(s[:, i])[0].tolist() for i in range(pop.size) if s[:, i].any()}
            if pop.name in trace.voltages:
                v = to_volts(trace.voltages[pop.name][0], lay)
                pop._voltages = {i: v[:, i].copy() for i in range(pop.size)}
        return trace


class SpiNNaker2Chip(Simulator):
    """Alias with py-spinnaker2's class name: ``hardware.SpiNNaker2Chip(eth_ip=...)`` works unchanged."""
