"""The chip model of a network of :class:`~s2jax.qnet.Layer` nodes (EGRU, MAC-array layers).

:func:`s2jax.hwmodel.run` comes here when the network holds layers. Every layer runs its kind's
``step`` (:class:`s2jax.kinds.LayerKind`) with the chip numerics of its profile over the whole
sequence in one ``lax.scan``, from its kind's initial state; a layer reading another consumes that
layer's output of the same tick (``ChipSpec.egru_layer_latency_ticks = 0``), a layer with
``pre=None`` the network input. One sequence is written unbatched and ``jax.vmap`` maps it over the
batch; wrap the call in ``jax.jit`` (the network is static).

The :class:`~s2jax.hwmodel.Trace` of such a run has, per layer: ``values[name]`` its outputs
``(B, T, *out_shape)``, ``spikes[name]`` where an output was sent (its kind's ``events``),
``states[name]`` its state after each tick (``(B, T, ...)`` leaves), ``synaptic_events``
``(B, T, L)`` and ``neuron_updates`` ``(L,)`` from its kind's counts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from typing import NamedTuple

from jax import lax

from s2jax.numerics import numerics_for, profile_name
from s2jax.qnet import Network
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["run_layers", "scan_layers", "Node", "layer_run_bytes"]


def layer_run_bytes(net: Network, batch: int, timesteps: int) -> int:
    """What a run records, in bytes (outputs, events, states as 8 bytes per unit and tick, an upper
    bound), plus the inputs."""
    units = sum(layer.size for layer in net.layers)
    inputs = sum(int(np.prod(layer.in_shape)) for layer in net.layers if layer.pre is None)
    return int(batch) * int(timesteps) * (units * 8 + inputs * 4)


def _inputs(net: Network, inputs):
    first = [layer for layer in net.layers if layer.pre is None]
    if isinstance(inputs, dict):
        if set(inputs) != {"input"}:
            raise ValueError(f"network {net.name!r}: layer inputs are one array (or {{'input': array}}), got keys "
                             f"{sorted(inputs)}")
        inputs = inputs["input"]
    if inputs is None:
        raise ValueError(f"network {net.name!r}: a network of layers needs inputs (batch, time, *features)")
    x = jnp.asarray(inputs)
    for layer in first:
        want = (layer.in_shape, layer.input_dtype)  # two input layers reading different inputs fail here
        if x.ndim != 2 + len(layer.in_shape) or tuple(x.shape[2:]) != layer.in_shape:
            raise ValueError(f"layer {layer.name!r}: inputs must be (batch, time, *{layer.in_shape}), got shape "
                             f"{tuple(x.shape)}")
        if x.dtype != want[1]:
            raise TypeError(f"layer {layer.name!r} ({layer.kind.name}, {layer.profile} profile) consumes "
                            f"{want[1].name} inputs, got {x.dtype}")
    return x


class Node(NamedTuple):
    """What :func:`scan_layers` needs of a layer besides its arrays: its name, kind, settings and the
    name of the layer it reads (None: the input)."""

    name: str
    kind: object
    settings: dict
    pre: str | None


def scan_layers(nodes, arrays, x, nums):
    """The chip model's loop: every node's kind ``step`` scanned over time, vmapped over the batch.
    ``arrays``: one dict of (possibly traced) arrays per node; ``nums``: one numerics per node;
    ``x`` ``(B, T, ...)``. Returns ``(values, states, events)``: values and states per node name,
    events ``(B, T, len(nodes))``."""

    def one_sequence(seq):
        values, states, events = {}, {}, []
        for node, arrs, num in zip(nodes, arrays, nums):
            kind, settings = node.kind, node.settings
            src = seq if node.pre is None else values[node.pre]

            def tick(s, x_t, kind=kind, arrs=arrs, settings=settings, num=num):
                s, y = kind.step(arrs, settings, s, x_t, num)
                return s, (y, s)

            s0 = kind.init_state(arrs, settings, num)
            _, (y, traj) = lax.scan(tick, s0, src)
            # the synaptic events of every tick at once, after the scan: tick t sees its input and the
            # state before it (counting inside the scan costs up to a fifth of a small layer's run)
            before = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b[:-1]]), s0, traj)
            ev = jnp.broadcast_to(jnp.asarray(kind.synaptic_events(arrs, src, before), jnp.int32), src.shape[:1])
            values[node.name], states[node.name] = y, traj
            events.append(ev)
        return values, states, jnp.stack(events, axis=-1)

    return jax.vmap(one_sequence)(x)


def run_layers(net: Network, inputs, *, profile: str | None = None, spec: ChipSpec = SPINNAKER2,
               max_bytes: int | None = None, timesteps: int | None = None):
    """Run the layers of ``net`` on ``inputs`` ``(B, T, *features)``; returns ``(outputs, trace)``,
    ``outputs`` the values of every layer no other layer reads. ``profile``, when given, must be
    the layers' own (their arrays are stored for one profile; "int" is the earlier name of
    "fixed"); ``timesteps``, when given, must be the inputs' length."""
    from s2jax.hwmodel.simulator import MAX_RUN_BYTES, Trace

    if net.populations:
        raise ValueError(f"network {net.name!r} holds both populations and layers; the chip model runs a network "
                         f"of one or the other (mixed networks are not supported yet)")
    if not net.layers:
        raise ValueError(f"network {net.name!r} has no layers")
    if profile is not None:
        profile = profile_name(profile, ("float32", "fixed"))
    for layer in net.layers:
        if profile is not None and layer.profile != profile:
            raise ValueError(f"layer {layer.name!r} ({layer.kind.name}) is stored for the {layer.profile} profile, "
                             f"not {profile!r}")
        if layer.pre is not None and layer.input_dtype != layer.pre.output_dtype:
            raise ValueError(f"layer {layer.name!r} consumes {layer.input_dtype.name}, layer {layer.pre.name!r} "
                             f"gives {layer.pre.output_dtype.name}")
    x = _inputs(net, inputs)
    if timesteps is not None and timesteps != x.shape[1]:
        raise ValueError(f"network {net.name!r}: timesteps={timesteps} but the inputs have {x.shape[1]} ticks")
    limit = MAX_RUN_BYTES if max_bytes is None else max_bytes
    need = layer_run_bytes(net, x.shape[0], x.shape[1])
    if need > limit:
        raise ValueError(f"network {net.name!r}: a run of {x.shape[0]} x {x.shape[1]} ticks records about "
                         f"{need:,} bytes, over the limit of {limit:,} (max_bytes)")
    layers = net.layers
    nodes = [Node(layer.name, layer.kind, layer.settings, None if layer.pre is None else layer.pre.name)
             for layer in layers]
    arrays = [{k: jnp.asarray(a) for k, a in layer.arrays.items()} for layer in layers]
    values, states, events = scan_layers(nodes, arrays, x, [numerics_for(layer.profile, spec) for layer in layers])
    read = {id(layer.pre) for layer in layers if layer.pre is not None}
    outputs = {layer.name: values[layer.name] for layer in layers if id(layer) not in read}
    spikes = {layer.name: layer.kind.events(values[layer.name]) for layer in layers}
    updates = jnp.asarray([layer.kind.updates(layer.arrays, layer.settings) for layer in layers], jnp.int32)
    trace = Trace(spikes, {}, events, updates, tuple(layer.name for layer in layers), values, states)
    return outputs, trace

