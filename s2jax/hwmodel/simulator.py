"""The chip model: one `lax.scan` over ticks, vmapped over the batch.

Per tick t, for one sample (``SPINNAKER2.md`` sections 3 and 4):

1. synaptic input: for every projection group, the spikes of ticks t-1-d (d = 0..D-1) are
   gathered from a history ring and multiplied by the integer weight matrices (int32 sums);
   conv projections sum-pool the spikes of tick t-1, then cross-correlate;
2. every block of neurons (:class:`s2jax.kinds.Block`: the LIF family, the current-based kinds,
   ...) takes one step with the chip numerics of the chosen profile;
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

from s2jax import kinds
from s2jax.hwmodel.mapping import check_population_sizes
from s2jax.hwmodel.program import ChipProgram, Layout, compile_network
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

    A network of :class:`~s2jax.qnet.Layer` nodes (EGRU, MAC-array layers; :mod:`s2jax.hwmodel.layers`)
    records, per layer name: ``values`` its outputs ``(B, T, *out_shape)`` (EGRU: the graded events
    ``y``, int16 Q3.12 or float32), ``spikes`` where an output was sent, ``states`` its state after
    every tick (EGRU: an ``EGRUState`` of ``(B, T, H)`` arrays); ``voltages`` is empty.
    """

    spikes: dict
    voltages: dict
    synaptic_events: jnp.ndarray
    neuron_updates: jnp.ndarray
    names: tuple = field(metadata=dict(static=True))
    values: dict = field(default_factory=dict)
    states: dict = field(default_factory=dict)


jax.tree_util.register_dataclass(
    Trace, data_fields=["spikes", "voltages", "synaptic_events", "neuron_updates", "values", "states"],
    meta_fields=["names"]
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
    hist, states = carry
    a, b, events = _synaptic_input(prog, hist)
    new_states, zs, start = [], [x_t.astype(jnp.int8)], 0
    for (name, n), block, params, state in zip(lay.blocks, lay.block_defs, prog.block_params, states):
        state, z = block.step(params, state, a[start: start + n], b[start: start + n], lay.numerics, lay)
        new_states.append(state)
        zs.append(z.astype(jnp.int8))
        start += n
    spikes = jnp.concatenate(zs)
    hist = jnp.concatenate([spikes[None], hist[:-1]], axis=0)
    v_all = jnp.concatenate([block.voltage(s) for block, s in zip(lay.block_defs, new_states)])
    rec_s = [spikes[lo:hi] for lo, hi in lay.ranges(lay.record_spikes)]
    rec_v = [v_all[lo:hi] for lo, hi in lay.ranges(lay.record_v, lay.n_in)]
    out_s = jnp.concatenate(rec_s).astype(bool) if rec_s else jnp.zeros(0, bool)
    out_v = jnp.concatenate(rec_v) if rec_v else jnp.zeros(0, v_all.dtype)
    return (hist, tuple(new_states)), (out_s, out_v, events)


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
    states = tuple(block.init_state(v0, dtype) for block, v0 in zip(lay.block_defs, prog.block_v0))
    _, records = lax.scan(lambda c, xt: _tick(prog, c, xt), (hist, states), x)
    return records


MAX_RUN_BYTES = 4 * 2**30
"""Default limit of :func:`check_run_size`'s memory estimate of one run: 4 GiB."""


def _positive_int(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_run_size(net, batch: int, timesteps: int, *, record: str = "flags", max_bytes: int | None = None) -> int:
    """Memory estimate in bytes of running ``net`` (a Network, ChipProgram or Layout) on ``batch``
    samples for ``timesteps`` ticks; raises a ``ValueError`` naming the timesteps, the batch, the
    estimate and the limit when it exceeds ``max_bytes`` (default :data:`MAX_RUN_BYTES`). Nothing is
    allocated: call it before a run.

    The estimate is ``2 x batch x timesteps x`` the bytes of one tick of one sample: the input
    spikes (1 byte per input neuron), the recorded spikes (1 byte per neuron recorded) and voltages
    (4 bytes), and the synaptic event counters (4 bytes per population); each is held about twice
    (the run's output and its NumPy copy). ``record``: as :func:`~s2jax.hwmodel.compile_network`,
    for a Network.
    """
    batch = _positive_int(batch, "batch")
    timesteps = _positive_int(timesteps, "timesteps")
    limit = MAX_RUN_BYTES if max_bytes is None else _positive_int(max_bytes, "max_bytes")
    if isinstance(net, ChipProgram):
        net = net.layout
    if isinstance(net, Layout):
        size = dict(zip(net.names, net.sizes))
        n_in = net.n_in
        spikes = sum(size[n] for n in net.record_spikes)
        volts = sum(size[n] for n in net.record_v)
        pops = len(net.net_names)
    elif isinstance(net, Network):
        if record not in ("flags", "all"):
            raise ValueError(f"record must be 'flags' or 'all', got {record!r}")
        check_population_sizes(net)
        pops = net.populations
        n_in = sum(p.size for p in pops if kinds.get(p.neuron_model).is_input)
        spikes = sum(p.size for p in pops if record == "all" or "spikes" in p.record)
        volts = sum(p.size for p in pops if not kinds.get(p.neuron_model).is_input
                    and (record == "all" or "v" in p.record))
        pops = len(pops)
    else:
        raise ValueError(f"check_run_size needs a qnet.Network, ChipProgram or Layout, got {type(net).__name__}")
    per_tick = n_in + spikes + 4 * volts + 4 * pops
    estimate = 2 * batch * timesteps * per_tick
    if estimate > limit:
        raise ValueError(
            f"a run of {timesteps:,} timesteps x batch {batch:,} needs about {estimate:,} bytes (2 x {per_tick:,} "
            f"bytes per tick and sample: {n_in:,} input neurons, {spikes:,} neurons recording spikes, {volts:,} "
            f"recording voltages, {pops} event counters), over the limit of {limit:,} bytes (max_bytes=, default "
            f"MAX_RUN_BYTES); run fewer timesteps or a smaller batch, or record less")
    return estimate


def _input_array(lay, inputs, timesteps, max_bytes=None):
    """The ``(B, T, n_in)`` bool input of a run, shapes and the run's memory estimate
    (:func:`check_run_size`) checked before the inputs are converted."""
    names = lay.input_names
    if timesteps is not None:
        timesteps = _positive_int(timesteps, "timesteps")
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
        if not isinstance(x, (jax.core.Tracer, jax.Array)):
            x = np.asarray(x)  # concrete input (NumPy or a list): validated below
        size = lay.sizes[lay.names.index(n)]
        if x.ndim != 3 or x.shape[2] != size:
            raise ValueError(f"input {n!r} must have shape (batch, time, {size}), got {tuple(x.shape)}")
        arrays.append(x)
    if arrays:
        shapes = {tuple(a.shape[:2]) for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"inputs disagree on (batch, time): {sorted(shapes)}")
        batch, ticks = shapes.pop()
        if timesteps is not None and ticks != timesteps:
            raise ValueError(f"timesteps={timesteps} disagrees with the inputs' {ticks} ticks")
        if batch < 1 or ticks < 1:
            raise ValueError(f"inputs have batch {batch} and {ticks} ticks; both must be at least 1")
        check_run_size(lay, batch, ticks, max_bytes=max_bytes)
        out = []
        for n, x in zip(names, arrays):
            if not isinstance(x, jax.core.Tracer):
                x = np.asarray(x)  # concrete input (NumPy or JAX): must hold spikes
                if not np.all((x == 0) | (x == 1)):
                    raise ValueError(f"input {n!r} must hold spikes (0 or 1); found value "
                                     f"{x[(x != 0) & (x != 1)][0]}")
            out.append(jnp.asarray(x).astype(bool))
        return jnp.concatenate(out, axis=2)
    if timesteps is None:
        raise ValueError("the network has no spike_list population: pass timesteps=")
    check_run_size(lay, 1, timesteps, max_bytes=max_bytes)
    return jnp.zeros((1, timesteps, 0), bool)


def run(net: Network | ChipProgram, inputs=None, *, timesteps: int | None = None, profile: str | None = None,
        spec: ChipSpec = SPINNAKER2, record: str = "flags", max_bytes: int | None = None):
    """Run the chip model on a batch; returns ``(outputs, trace)``.

    ``inputs``: ``{spike_list population name: (B, T, n) spikes}`` (or the array alone when there
    is one input population). ``net``: a Network (compiled here with ``profile``, ``spec``,
    ``record``) or a :class:`ChipProgram` from :func:`compile_network`. ``outputs`` maps each sink
    population (one no projection leaves) that records spikes to its ``(B, T, n)`` spikes; ``trace`` is a :class:`Trace`.
    Networks without inputs need ``timesteps`` and run a batch of one.

    Before anything is allocated, a Network's size and the run's memory estimate
    (:func:`check_run_size`: batch x timesteps x what is recorded plus the inputs) are checked
    against ``max_bytes`` (default :data:`MAX_RUN_BYTES`); a larger run raises a ``ValueError``
    naming the timesteps, the estimate and the limit.

    ``profile``: "float32" (default) or "fixed" for populations. A network of
    :class:`~s2jax.qnet.Layer` nodes (EGRU, MAC-array layers) runs in the profile its arrays are
    stored for (``profile``, when given, must match) on ``inputs`` ``(B, T, *features)``;
    ``outputs`` are then the values of every layer no other layer reads
    (:func:`s2jax.hwmodel.layers.run_layers`).
    """
    if isinstance(net, Network) and net.layers:
        from s2jax.hwmodel.layers import run_layers

        return run_layers(net, inputs, profile=profile, spec=spec, max_bytes=max_bytes, timesteps=timesteps)
    profile = "float32" if profile is None else profile
    if timesteps is not None:
        timesteps = _positive_int(timesteps, "timesteps")
    if not isinstance(net, ChipProgram):
        if not isinstance(net, Network):
            raise ValueError(f"run needs a qnet.Network or a ChipProgram, got {type(net).__name__}")
        if inputs is None and timesteps is not None:
            check_run_size(net, 1, timesteps, record=record, max_bytes=max_bytes)  # before compiling
        net = compile_network(net, profile, spec, record)
    prog = net
    lay = prog.layout
    x = _input_array(lay, inputs, timesteps, max_bytes)
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


def spike_list_inputs(net: Network, timesteps: int, *, max_bytes: int | None = None) -> dict:
    """``{name: (1, timesteps, n) bool}`` for every input population (``spike_list`` and any input
    kind, whose parameters are spike times in ``spike_list``'s format), from its own spike
    times (ticks at or beyond ``timesteps`` are dropped): the inputs of a py-spinnaker2 style run.
    The run's memory estimate (:func:`check_run_size`) is checked first against ``max_bytes``."""
    timesteps = _positive_int(timesteps, "timesteps")
    check_run_size(net, 1, timesteps, max_bytes=max_bytes)
    inputs = {}
    for pop in net.populations:
        if kinds.get(pop.neuron_model).is_input:
            x = np.zeros((1, timesteps, pop.size), bool)
            for idx, ticks in pop.params.items():
                x[0, [t for t in ticks if t < timesteps], idx] = True
            inputs[pop.name] = x
    return inputs
