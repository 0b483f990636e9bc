"""``SNN``: steps a stack of (synapse, neuron) layers tick by tick, with the chip's latency.

On SpiNNaker2 a spike emitted at tick t reaches the next population at tick t + 1: layer l at
tick t sees layer l-1's spikes of tick t-1 (and the first layer sees the input of tick t-1). With
``latency=True`` (default) the container reproduces that: before each synapse the input is
shifted one tick later. A network of L layers then needs ``T + L`` ticks to flush an input of T
ticks (:meth:`SNN.pad`). ``latency=False`` feeds every layer in the same tick, which is how most
float SNN libraries step; it trains fine but is **not chip-faithful** and ``quantize`` refuses it.

Because every layer only depends on the previous layer's past, each layer runs over all ticks
before the next one starts: one big matmul per layer (hoisted out of the time loop) and one
``lax.scan`` of the neuron. With QAT weights (integers) and spike inputs, the hoisted float32
matmul is exact, so this equals the chip's tick-by-tick order.

Memory. Backpropagation through time keeps every tick's residuals (state, surrogate inputs),
O(T) per layer. ``remat=K`` (an int) cuts the ticks into chunks of K and wraps each chunk in
``jax.checkpoint``: the backward pass keeps only the state at chunk boundaries and recomputes
one chunk at a time (synaptic currents included: each chunk runs its own matmul), about one
extra forward pass for O(T/K + K) residuals; ``remat=True`` picks K = sqrt(T). With QAT
(integer weights, spike inputs) the forward values are unchanged bit for bit; in float mode the
chunked matmul may round differently in the last bit.
"""

from __future__ import annotations

from typing import NamedTuple

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from s2jax.fixedpoint import fmul

__all__ = ["SNN", "SNNOutput"]


class SNNOutput(NamedTuple):
    """``output``: last layer's spikes, or its membrane for an ``LI`` readout (divided by the
    weight scale after QAT, so losses see float units); ``spikes`` / ``voltages``: per layer,
    ``(B, T, ...)``, voltages in chip units (raw int32 in the fixed profile)."""

    output: jnp.ndarray
    spikes: tuple
    voltages: tuple


def _delay_one_tick(x):
    return jnp.concatenate([jnp.zeros_like(x[:, :1]), x[:, :-1]], axis=1)


class SNN(nnx.Module):
    """A feed-forward stack ``[(synapse, neuron), ...]``; inputs are batch-major ``(B, T, ...)``."""

    def __init__(self, layers, *, latency: bool = True, remat: bool | int = False):
        layers = list(layers)
        if not layers:
            raise ValueError("SNN needs at least one (synapse, neuron) layer")
        self.synapses = nnx.List([syn for syn, _ in layers])
        self.neurons = nnx.List([neuron for _, neuron in layers])
        self.latency = latency
        if not isinstance(remat, bool) and (not isinstance(remat, int) or remat < 1):
            raise ValueError(f"remat must be a bool or a positive chunk length in ticks, got {remat!r}")
        self.remat = remat

    def pad(self, x):
        """Append one zero tick per layer so the last input tick reaches the output."""
        pad = jnp.zeros((x.shape[0], len(self.neurons), *x.shape[2:]), x.dtype)
        return jnp.concatenate([x, pad], axis=1)

    def __call__(self, x) -> SNNOutput:
        h = jnp.asarray(x, jnp.float32)
        spikes, voltages = [], []
        for syn, neuron in zip(self.synapses, self.neurons):
            if self.latency:
                h = _delay_one_tick(h)
            h, v = self._run_layer(syn, neuron, h)
            spikes.append(h)
            voltages.append(v)
        out = h
        last = self.neurons[-1]
        if last.readout and last.quant_scale is not None:
            # times the reciprocal (XLA rewrites a division by a constant into that multiply), as a
            # product no later add can fuse with: callers doing the same on chip-model voltages
            # (e.g. s2jax.recipes.dqn.chip_q) then round exactly alike, jitted or not
            out = fmul(out, jnp.float32(1.0) / jnp.broadcast_to(last.quant_scale[...], last.shape))
        return SNNOutput(out, tuple(spikes), tuple(voltages))

    def _run_layer(self, syn, neuron, h):
        """One layer over all ticks: ``h`` ``(B, T, ...)`` in, spikes (or membrane) and voltages out."""

        def currents(h_bt):  # (B, T', ...) -> the synapse's output, batch-major
            return syn.split(h_bt) if neuron.channels == 2 else syn(h_bt)

        first = jax.tree_util.tree_leaves(jax.eval_shape(currents, h[:, :1]))[0]
        carry = neuron.initialize_carry(first.shape[:1] + first.shape[2:])

        def body(carry, x_t):
            carry, y = neuron(carry, x_t)
            return carry, (y, neuron.voltage(carry))

        if self.remat is False:
            y, v = lax.scan(body, carry, jax_tree_time_major(currents(h)))[1]
        else:
            y, v = _chunked_scan(body, carry, jnp.swapaxes(h, 0, 1), currents, self.remat)
        return jnp.swapaxes(y, 0, 1), jnp.swapaxes(v, 0, 1)


def _chunked_scan(body, carry, h, currents, remat):
    """The neuron scan in checkpointed chunks of K ticks; each chunk computes its own synaptic
    currents, so neither the currents nor the per-tick residuals are stored for the backward
    pass, only ``h`` and the carry at chunk boundaries. ``h`` is time-major ``(T, B, ...)``."""
    t = h.shape[0]
    k = max(1, math.isqrt(t)) if remat is True else min(int(remat), t)
    pad = (-t) % k  # zero ticks appended at the end cannot change earlier ticks
    if pad:
        h = jnp.concatenate([h, jnp.zeros((pad, *h.shape[1:]), h.dtype)])
    h = h.reshape((t + pad) // k, k, *h.shape[1:])

    @jax.checkpoint
    def chunk(c, hc):
        return lax.scan(body, c, jax_tree_time_major(currents(jnp.swapaxes(hc, 0, 1))))

    _, ys = lax.scan(chunk, carry, h)
    return jax.tree_util.tree_map(lambda a: a.reshape(t + pad, *a.shape[2:])[:t], ys)


def jax_tree_time_major(current):
    if isinstance(current, tuple):
        return tuple(jnp.swapaxes(c, 0, 1) for c in current)
    return jnp.swapaxes(current, 0, 1)
